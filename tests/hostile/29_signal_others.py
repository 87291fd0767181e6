# expect: exited
# what: SIGKILL every pid up to 65536 (the host victim process included)
import os
import signal

victim = int(os.environ["ROTE_VICTIM_PID"])
hit = 0
for pid in range(2, 65536):
    if pid == os.getpid():
        continue
    try:
        os.kill(pid, signal.SIGKILL)
        hit += 1
    except OSError:
        pass
print("signalled", hit, "processes; victim visible:", os.path.exists(f"/proc/{victim}"))
