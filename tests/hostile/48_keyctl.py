# expect: seccomp
# what: read the kernel keyring (add_key/keyctl)
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 250, "aarch64": 219}[platform.machine()]
r = libc.syscall(nr, 0, -3, 0, 0, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
print("ESCAPED: keyctl returned", r)
