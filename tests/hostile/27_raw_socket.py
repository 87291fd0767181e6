# expect: seccomp
# what: open raw and packet sockets to sniff or forge traffic (AF_PACKET is outside the socket allow-list)
import socket

for fam, typ, proto in [
    (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
]:
    try:
        socket.socket(fam, typ, proto)
        print("ESCAPED: opened raw socket", fam)
    except OSError as e:
        print("contained:", fam, e.strerror)
socket.create_connection(("10.0.0.1", 80), timeout=1)
