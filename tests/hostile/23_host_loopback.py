# expect: network
# what: connect to a service listening on the host's 127.0.0.1
import os
import socket

port = int(os.environ["ROTE_HOST_PORT"])
s = socket.create_connection(("127.0.0.1", port), timeout=1)
print("ESCAPED: connected to the host loopback service")
