# expect: exited
# what: reach other runs' workspaces, the runner's state dir and cgroups
for p in /run/rote-sandbox /run /sys/fs/cgroup /var/run /tmp/../run; do
  if ls "$p"/ 2>/dev/null | grep -q .; then
    if [ "$p" = /run ] || [ "$p" = /var/run ] || [ "$p" = /tmp/../run ]; then
      ls "$p"/rote-sandbox >/dev/null 2>&1 && echo "ESCAPED: saw $p/rote-sandbox"
    else
      echo "ESCAPED: listed $p"
    fi
  fi
done
echo "contained"
