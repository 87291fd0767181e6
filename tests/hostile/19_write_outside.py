# expect: exited
# what: write to /usr, /etc, /, /proc, /var, /root and /home
import os

targets = [
    "/usr/pwned",
    "/usr/bin/pwned",
    "/etc/pwned",
    "/pwned",
    "/proc/pwned",
    "/var/pwned",
    "/root/pwned",
    "/home/pwned",
    "/lib/pwned",
    "/dev/pwned",
]
for t in targets:
    try:
        with open(t, "w") as f:
            f.write("x")
        print("ESCAPED: wrote", t)
    except OSError as e:
        print("contained:", t, e.strerror)
for d in ("/usr", "/"):
    try:
        os.mkdir(os.path.join(d, "pwned-dir"))
        print("ESCAPED: mkdir in", d)
    except OSError as e:
        print("contained: mkdir", d, e.strerror)
