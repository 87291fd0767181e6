# expect: seccomp
# what: create, bind and listen on an AF_VSOCK socket (a path to the hypervisor on a VM)
import socket

s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, 4242))
s.listen(1)
print("ESCAPED: AF_VSOCK socket listening")
