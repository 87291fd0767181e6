# expect: exited
# what: look for file descriptors leaked from the runner (pipes, the seccomp or block fds)
import os

fds = sorted(int(x) for x in os.listdir("/proc/self/fd"))
extra = [fd for fd in fds if fd > 2]
for fd in extra:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if "/proc/" in target and "/fd" in target:
        continue  # the directory listdir itself opened
    print("ESCAPED: inherited fd", fd, target)
print("fds:", fds)
