# expect: exited
# what: read /etc/shadow, /etc/passwd and the host's SSH host keys
import glob

for path in ["/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/sudoers", *glob.glob("/etc/ssh/*key")]:
    try:
        with open(path) as f:
            data = f.read()
        print("ESCAPED: read", path, len(data))
    except OSError as e:
        print("contained:", path, e.strerror)
