# expect: disk
# what: fill the workspace with one growing file per 1 MiB until the tmpfs is full
# limits: workspace=2M file=64M
i = 0
while True:
    with open(f"fill{i}.bin", "wb") as f:
        f.write(b"\0" * (1 << 20))
    i += 1
