# expect: seccomp
# what: io_uring_setup (bypasses per-syscall filtering, frequent kernel CVEs)
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
r = libc.syscall(425, 8, params)
print("ESCAPED: io_uring_setup returned", r)
