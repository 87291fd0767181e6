# expect: timeout
# what: block every catchable signal, then sleep past the limit
# limits: wall=1
import contextlib
import signal
import time

for s in signal.Signals:
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        signal.signal(s, signal.SIG_IGN)
time.sleep(600)
