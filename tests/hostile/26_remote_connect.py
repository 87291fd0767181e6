# expect: network
# what: connect straight to a public IP (no DNS), TCP and UDP
import socket

try:
    socket.create_connection(("1.1.1.1", 443), timeout=1)
    print("ESCAPED: reached 1.1.1.1")
finally:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("8.8.8.8", 53))
