# expect: cpu
# what: `while :; do :; done` in bash
# limits: cpu=1 wall=5
while :; do :; done
