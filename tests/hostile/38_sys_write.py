# expect: exited
# what: reach /sys (cgroups, kernel knobs, devices) and raw devices under /dev
import os

for path in [
    "/sys/fs/cgroup/cgroup.procs",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/pids/pids.max",
    "/sys/class/net/lo/mtu",
]:
    try:
        with open(path, "w") as f:
            f.write("1")
        print("ESCAPED: wrote", path)
    except OSError as e:
        print("contained:", path, e.strerror)
for dev in ["/dev/mem", "/dev/kmem", "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/port", "/dev/fuse"]:
    try:
        fd = os.open(dev, os.O_RDONLY)
        os.close(fd)
        print("ESCAPED: opened", dev)
    except OSError as e:
        print("contained:", dev, e.strerror)
print("/dev holds", sorted(os.listdir("/dev")))
