# expect: exited
# what: look for the runner's environment (credentials, paths, HOME) in the jail
import os

OURS = ("HOME", "PATH", "LANG", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "MALLOC_ARENA_MAX", "PWD", "LC_CTYPE")
leaked = {k: v for k, v in os.environ.items() if not k.startswith("ROTE_") and k not in OURS}
if leaked:
    print("ESCAPED: environment leaked", sorted(leaked))
if os.environ.get("HOME", "").startswith("/root"):
    print("ESCAPED: HOME points into root's home")
print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups())
if os.getuid() == 0 or os.getgid() == 0 or 0 in os.getgroups():
    print("ESCAPED: running with a root id")
