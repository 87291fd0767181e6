# expect: cpu
# what: CPU workers that fork a fresh replacement whenever RLIMIT_CPU kills one, then exit 0
# limits: cpu=1 wall=10
import os
import sys


def burn():
    while True:
        pass


workers = set()
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        burn()
    workers.add(pid)
replaced = 0
while replaced < 3:
    pid, _status = os.wait()
    workers.discard(pid)
    replaced += 1
    new = os.fork()
    if new == 0:
        burn()
    workers.add(new)
for pid in workers:
    os.kill(pid, 9)
print(f"ESCAPED: {replaced} workers replaced, CPU budget never enforced across processes")
sys.exit(0)
