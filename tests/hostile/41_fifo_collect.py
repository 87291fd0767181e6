# expect: exited
# what: make the collected file a FIFO and a /dev/zero link so the root collector hangs or floods
# collect: result.txt zero.txt
import os

os.mkfifo("result.txt")
os.symlink("/dev/zero", "zero.txt")
print("planted")
