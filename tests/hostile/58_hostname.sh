# expect: exited
# what: change the hostname and the clock
hostname pwned 2>&1 && echo "ESCAPED: hostname changed to $(hostname)"
date -s "2001-01-01" >/dev/null 2>&1 && echo "ESCAPED: clock changed"
echo "hostname is $(cat /proc/sys/kernel/hostname)"
exit 0
