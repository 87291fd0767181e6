# expect: seccomp
# what: load a kernel module with finit_module
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 313, "aarch64": 273}[platform.machine()]
r = libc.syscall(nr, 0, b"", 0)
print("ESCAPED: finit_module returned", r)
