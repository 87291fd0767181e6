# expect: disk
# what: write one file past the file-size rlimit
# limits: file=1M workspace=8M
with open("big.bin", "wb") as f:
    for _ in range(4):
        f.write(b"\0" * (1 << 20))
print("ESCAPED: wrote 4 MiB past a 1 MiB file limit")
