# expect: memory
# what: bash string doubling until the allocator fails
# limits: memory=64M wall=5
s=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
while :; do s="$s$s"; done
