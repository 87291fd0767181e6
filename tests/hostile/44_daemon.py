# expect: exited
# what: double-fork daemon that would keep writing after the test ends
# limits: wall=5
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(100):
            with open("daemon.log", "a") as f:
                f.write("alive\n")
            time.sleep(0.1)
        os._exit(0)
    os._exit(0)
time.sleep(0.05)
print("parent exits; the daemon must die with the jail")
