# expect: seccomp
# what: load an eBPF program (kernel attack surface)
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 321, "aarch64": 280}[platform.machine()]
attr = ctypes.create_string_buffer(128)
r = libc.syscall(nr, 5, attr, 128)  # BPF_PROG_LOAD
print("ESCAPED: bpf returned", r)
