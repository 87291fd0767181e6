# expect: seccomp
# what: modify_ldt to install a 16-bit code segment (espfix and LDT kernel bugs)
import ctypes
import struct

libc = ctypes.CDLL(None, use_errno=True)
# struct user_desc: entry 0, base 0, limit 0xfffff, seg_32bit 0, contents code, limit in pages
desc = ctypes.create_string_buffer(struct.pack("<IIII", 0, 0, 0xFFFFF, 0b1011000))
r = libc.syscall(154, 1, desc, 16)  # modify_ldt(1 = write, ...)
print("ESCAPED: modify_ldt returned", r, ctypes.get_errno())
