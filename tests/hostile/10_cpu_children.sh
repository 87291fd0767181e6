# expect: cpu
# what: CPU spin in background child processes and report how the first one ended
# limits: cpu=1 wall=10
for i in 1 2 3; do ( while :; do :; done ) & done
wait -n
exit $?
