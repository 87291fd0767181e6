# expect: exited
# what: read the invoking user's home (root's, with the pyenv Python under it), /home and the canary
import os

home = os.environ["ROTE_HOST_HOME"]
for path in [
    home,
    "/root",
    "/home",
    os.path.join(home, ".bashrc"),
    os.path.join(home, ".ssh"),
    os.path.join(home, ".pyenv"),
    os.environ["ROTE_CANARY_FILE"],
]:
    try:
        if os.path.isdir(path):
            print("ESCAPED: listed", path, os.listdir(path)[:5])
        else:
            with open(path) as f:
                f.read()
            print("ESCAPED: read", path)
    except OSError as e:
        print("contained:", path, e.strerror)
print("HOME in the jail is", os.environ.get("HOME"))
