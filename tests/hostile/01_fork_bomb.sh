# expect: pids
# what: the classic bash fork bomb `:(){ :|:& };:`
# limits: wall=2
:(){ :|:& };:
sleep 10
