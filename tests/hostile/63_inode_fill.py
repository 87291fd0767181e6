# expect: disk
# what: create empty files until the workspace runs out of inodes (thousands of entries for the post-run scan)
# limits: wall=10
import os

os.mkdir("many")
i = 0
while True:
    open(f"many/{i}", "w").close()
    i += 1
