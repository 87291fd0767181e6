# expect: seccomp
# what: read another process's memory with process_vm_readv
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 310, "aarch64": 270}[platform.machine()]
buf = ctypes.create_string_buffer(64)


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


local = IOVec(ctypes.addressof(buf), 64)
remote = IOVec(0x400000, 64)
r = libc.syscall(nr, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("ESCAPED: process_vm_readv returned", r)
