# expect: exited
# what: leave background, nohup'd and disowned processes behind, then exit 0 at once
# limits: wall=5
(sleep 300 &)
nohup sleep 300 >/dev/null 2>&1 &
disown
setsid sleep 300 >/dev/null 2>&1 < /dev/null &
echo "left three sleepers behind"
exit 0
