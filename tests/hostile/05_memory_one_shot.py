# expect: memory
# what: one 8 GiB allocation
# limits: memory=64M
buf = bytearray(8 * 1024**3)
print("ESCAPED: allocated 8 GiB")
