# expect: disk
# what: fill /tmp (which lives inside the capped workspace) with dd
# limits: workspace=2M file=64M
set -e
dd if=/dev/zero of=/tmp/big bs=64k count=100000 2>&1
