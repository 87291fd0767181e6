# expect: seccomp
# what: userfaultfd (used to win kernel race conditions)
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 323, "aarch64": 282}[platform.machine()]
r = libc.syscall(nr, 0)
print("ESCAPED: userfaultfd returned", r)
