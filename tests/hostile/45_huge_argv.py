# expect: exited
# what: exec a program with 64 MiB of arguments
import os

try:
    os.execv("/bin/true", ["true"] + ["A" * 4096] * 16384)
except OSError as e:
    print("contained:", e.strerror)
