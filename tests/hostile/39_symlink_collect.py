# expect: exited
# what: plant result files as symlinks to host files, hoping the root-run collector follows them
# collect: result.txt sub/result.txt link/etc/passwd
import os

os.symlink(os.environ["ROTE_CANARY_FILE"], "result.txt")
os.symlink("/", "link")
os.mkdir("real")
os.symlink("/etc", "sub")
print("planted")
