# expect: cpu
# what: CPU spin in 4 threads (hashing releases the GIL, so all cores burn)
# limits: cpu=1 wall=5
import hashlib
import threading

data = b"x" * (1 << 20)


def spin():
    while True:
        hashlib.sha256(data).digest()


for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
spin()
