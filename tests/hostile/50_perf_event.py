# expect: seccomp
# what: perf_event_open (side channels, kernel bugs)
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 298, "aarch64": 241}[platform.machine()]
attr = ctypes.create_string_buffer(128)
r = libc.syscall(nr, attr, 0, -1, -1, 0)
print("ESCAPED: perf_event_open returned", r)
