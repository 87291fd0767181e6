# expect: output
# what: `yes` to stderr forever
yes flood >&2
