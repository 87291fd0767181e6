# expect: memory
# what: grow a list of 8 MiB blocks, touching every page
# limits: memory=64M
blocks = []
while True:
    blocks.append(bytearray(8 * 1024 * 1024))
    blocks[-1][::4096] = b"x" * len(blocks[-1][::4096])
