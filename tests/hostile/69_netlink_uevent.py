# expect: seccomp
# what: a NETLINK_KOBJECT_UEVENT socket to watch the host's device events (only route netlink is allowed)
import socket

s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
s.bind((0, 1))
print("ESCAPED: uevent socket bound")
