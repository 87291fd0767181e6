# expect: exited
# what: 1,100 nested directories, past Python's recursion limit, to crash the runner's disk scan
import os

for _ in range(1100):
    os.mkdir("d")
    os.chdir("d")
with open("leaf.txt", "w") as f:
    f.write("deep")
print("made 1100 levels")
