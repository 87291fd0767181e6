# expect: exited
# what: hard-link system binaries and the canary into the workspace
import os

for src in ["/usr/bin/python3", "/etc/ld.so.cache", os.environ["ROTE_CANARY_FILE"]]:
    try:
        os.link(src, "linked")
        print("ESCAPED: hard-linked", src)
        os.unlink("linked")
    except OSError as e:
        print("contained:", src, e.strerror)
