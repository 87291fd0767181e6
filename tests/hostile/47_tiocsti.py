# expect: seccomp
# what: TIOCSTI to push commands into the controlling terminal's input
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
r = libc.ioctl(0, 0x5412, ctypes.c_char_p(b"x"))
print("ESCAPED: TIOCSTI returned", r)
