# expect: exited
# what: open files until the descriptor limit, then try to spawn a child
import os

fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("stopped at", len(fds), "fds:", e.strerror)
if len(fds) > 1000:
    print("ESCAPED: no descriptor limit")
