# expect: exited
# what: setuid(0)/setgid(0), a setuid-root copy in the workspace, and running su
import functools
import os
import shutil
import subprocess

for attempt in (
    functools.partial(os.setuid, 0),
    functools.partial(os.setgid, 0),
    functools.partial(os.seteuid, 0),
    functools.partial(os.setgroups, [0]),
):
    try:
        attempt()
        print("ESCAPED:", attempt.func.__name__, "succeeded")
    except (OSError, PermissionError) as e:
        print("contained:", attempt.func.__name__, e)
shutil.copy("/usr/bin/id", "myid")
try:
    os.chown("myid", 0, 0)
    print("ESCAPED: chown to root")
except OSError as e:
    print("contained: chown", e.strerror)
os.chmod("myid", 0o4755)
out = subprocess.run(["./myid", "-u"], capture_output=True, text=True).stdout.strip()
if out == "0":
    print("ESCAPED: setuid copy ran as root")
for tool in ("/usr/bin/su", "/usr/bin/sudo", "/usr/bin/newgrp", "/usr/bin/passwd"):
    if os.path.exists(tool):
        r = subprocess.run(
            [tool, "-c", "id -u"] if tool.endswith("su") else [tool],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=2,
        )
        if r.stdout.strip().startswith("0") or "uid=0" in r.stdout:
            print("ESCAPED:", tool, "gave root")
print("euid is", os.geteuid())
