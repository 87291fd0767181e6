# expect: exited
# exit: 159
# what: exit with status 159 (128 + SIGSYS) to be reported as a seccomp kill
exit 159
