# expect: seccomp
# what: ptrace(PTRACE_ATTACH) to the parent (to inject code into it)
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
r = libc.ptrace(PTRACE_ATTACH, os.getppid() or 1, None, None)
print("ESCAPED: ptrace returned", r)
