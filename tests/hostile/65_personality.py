# expect: seccomp
# what: personality(ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC) to switch off ASLR and NX for what it execs next
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
old = libc.personality(0x0040000 | 0x0400000)
print("ESCAPED: personality changed, was", old, "now", libc.personality(0xFFFFFFFF))
