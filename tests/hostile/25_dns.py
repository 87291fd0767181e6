# expect: network
# what: resolve a public name (DNS)
import socket

addrs = socket.getaddrinfo("example.com", 443)
print("ESCAPED: resolved", addrs[:1])
