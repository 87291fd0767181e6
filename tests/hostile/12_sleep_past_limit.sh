# expect: timeout
# what: `sleep 600` in bash
# limits: wall=1
sleep 600
