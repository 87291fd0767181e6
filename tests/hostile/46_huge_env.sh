# expect: exited
# what: export a 1 MiB environment variable and exec a child
big=$(head -c 1048576 /dev/zero | tr '\0' 'x')
export BIG="$big"
/bin/true && echo "ESCAPED: exec with a 1 MiB environment variable"
echo "contained"
exit 0
