# expect: exited
# what: overwrite a world-readable file in the host's /tmp by its absolute path
import os

path = os.environ["ROTE_CANARY_FILE"]
for mode in ("w", "a"):
    try:
        with open(path, mode) as f:
            f.write("pwned")
        print("ESCAPED: wrote the host canary")
    except OSError as e:
        print("contained:", e.strerror)
try:
    with open(os.path.join(os.environ["ROTE_CANARY_DIR"], "dropped.txt"), "w") as f:
        f.write("x")
    print("ESCAPED: dropped a file in the host directory")
except OSError as e:
    print("contained:", e.strerror)
