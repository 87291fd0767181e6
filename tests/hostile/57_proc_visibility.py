# expect: exited
# what: enumerate /proc for host processes, their command lines and environments
import os

pids = [p for p in os.listdir("/proc") if p.isdigit()]
for p in pids:
    try:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        continue
    if b"pytest" in cmd or b"sleep\x003600" in cmd or b"rote" in cmd:
        print("ESCAPED: host process visible", p, cmd[:80])
if len(pids) > 8:
    print("ESCAPED: sees", len(pids), "processes")
print("visible pids:", pids)
