# expect: timeout
# what: sleep far past the wall-time limit
# limits: wall=1
import time

time.sleep(600)
