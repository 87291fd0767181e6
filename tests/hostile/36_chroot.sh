# expect: seccomp
# what: chroot out of the jail (the classic double-chroot escape starts with one)
mkdir -p sub
exec /usr/bin/python3 -c 'import os; os.chroot("sub"); print("ESCAPED: chroot")'
