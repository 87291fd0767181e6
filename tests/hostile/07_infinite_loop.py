# expect: cpu
# what: `while True: pass`
# limits: cpu=1 wall=5
while True:
    pass
