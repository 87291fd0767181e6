# expect: seccomp
# what: raw clone() with CLONE_NEWUSER|CLONE_NEWNS flags (bypassing unshare)
import ctypes
import platform
import signal

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 56, "aarch64": 220}[platform.machine()]
flags = 0x10000000 | 0x00020000 | signal.SIGCHLD
r = libc.syscall(nr, flags, 0, 0, 0, 0)
if r == 0:
    libc._exit(0)
print("ESCAPED: clone with namespace flags returned", r)
