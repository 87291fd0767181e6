# expect: seccomp
# what: unshare(CLONE_NEWUSER) to gain a full capability set in a new user namespace
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
r = libc.unshare(CLONE_NEWUSER)
print("ESCAPED: unshare returned", r)
