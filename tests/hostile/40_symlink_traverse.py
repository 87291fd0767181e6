# expect: exited
# what: follow ../.. and /proc/1/root symlinks out of the workspace inside the jail
import os

for path in [
    "../../../../etc/shadow",
    "/proc/1/root/etc/shadow",
    "/proc/self/root/../../etc/shadow",
    "/proc/1/cwd/../../root",
    os.environ["ROTE_CANARY_FILE"],
]:
    try:
        with open(path) as f:
            f.read()
        print("ESCAPED: read", path)
    except OSError as e:
        print("contained:", path, e.strerror)
os.symlink("/usr/bin", "bin")
try:
    with open("bin/pwned", "w") as f:
        f.write("x")
    print("ESCAPED: wrote through a symlink into /usr/bin")
except OSError as e:
    print("contained: write via symlink", e.strerror)
