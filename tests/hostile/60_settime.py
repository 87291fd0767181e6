# expect: seccomp
# what: set the system clock with clock_settime
import ctypes
import time

libc = ctypes.CDLL(None, use_errno=True)


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


r = libc.clock_settime(0, ctypes.byref(Timespec(int(time.time()) - 86400, 0)))
print("ESCAPED: clock_settime returned", r)
