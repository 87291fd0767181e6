# expect: exited
# what: write /proc/sys, /proc/sysrq-trigger, core_pattern and lower our OOM score
targets = {
    "/proc/sys/kernel/core_pattern": "|/tmp/pwn",
    "/proc/sys/kernel/hostname": "pwned",
    "/proc/sysrq-trigger": "b",
    "/proc/sys/vm/drop_caches": "3",
    "/proc/self/oom_score_adj": "-1000",
    "/proc/1/oom_score_adj": "-1000",
}
for path, value in targets.items():
    try:
        with open(path, "w") as f:
            f.write(value)
        print("ESCAPED: wrote", path)
    except OSError as e:
        print("contained:", path, e.strerror)
