# expect: pids
# what: start threads until the kernel refuses, then keep trying
# limits: wall=2
import threading
import time

threads = []
while True:
    try:
        t = threading.Thread(target=time.sleep, args=(60,), daemon=True)
        t.start()
        threads.append(t)
    except RuntimeError as e:
        print(len(threads), e, flush=True)
        time.sleep(0.5)
