"""The jail library: seccomp filter, limits, stop-reason classification, and real runs under bubblewrap."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rote.errors import ConfigError, SandboxError
from rote.sandbox_runner import launcher, seccomp
from rote.sandbox_runner.cgroup import SlotUsage
from rote.sandbox_runner.hostile import load_suite, parse_limits
from rote.sandbox_runner.jail import Evidence, Jail, JobSpec, Limits, classify

X86 = seccomp.AUDIT_ARCH_X86_64
NR = seccomp.SYSCALLS[X86]

needs_jail = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the jail needs root and bubblewrap"
)


# -- seccomp ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program() -> bytes:
    return seccomp.build_filter(arch=X86)


@pytest.mark.parametrize(
    "name",
    [
        "ptrace",
        "mount",
        "unshare",
        "setns",
        "bpf",
        "keyctl",
        "io_uring_setup",
        "process_vm_readv",
        "kexec_load",
        "init_module",
        "userfaultfd",
    ],
)
def test_filter_kills_denied_calls(program: bytes, name: str) -> None:
    assert seccomp.evaluate(program, nr=NR[name], arch=X86) == seccomp.SECCOMP_RET_KILL_PROCESS


# read write open close mmap fork execve exit exit_group
@pytest.mark.parametrize("nr", [0, 1, 2, 3, 9, 57, 59, 60, 231])
def test_filter_allows_ordinary_calls(program: bytes, nr: int) -> None:
    assert seccomp.evaluate(program, nr=nr, arch=X86) == seccomp.SECCOMP_RET_ALLOW


def test_filter_checks_clone_flags_and_ioctl_requests(program: bytes) -> None:
    fork_like = 0x01200011  # CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD, what glibc's fork passes
    assert seccomp.evaluate(program, nr=NR["clone"], arch=X86, args=(fork_like,)) == seccomp.SECCOMP_RET_ALLOW
    for flag in (0x10000000, 0x00020000, 0x40000000):
        got = seccomp.evaluate(program, nr=NR["clone"], arch=X86, args=(fork_like | flag,))
        assert got == seccomp.SECCOMP_RET_KILL_PROCESS
    assert seccomp.evaluate(program, nr=NR["clone3"], arch=X86) == seccomp.SECCOMP_RET_ERRNO | seccomp.ENOSYS
    assert seccomp.evaluate(program, nr=NR["ioctl"], arch=X86, args=(0, seccomp.TIOCSTI)) == (
        seccomp.SECCOMP_RET_KILL_PROCESS
    )
    assert seccomp.evaluate(program, nr=NR["ioctl"], arch=X86, args=(0, 0x5401)) == seccomp.SECCOMP_RET_ALLOW


def test_filter_kills_foreign_arch_and_x32(program: bytes) -> None:
    assert seccomp.evaluate(program, nr=0, arch=0x40000003) == seccomp.SECCOMP_RET_KILL_PROCESS  # i386
    assert seccomp.evaluate(program, nr=0x40000000 | 0, arch=X86) == seccomp.SECCOMP_RET_KILL_PROCESS


def test_aarch64_filter_builds_and_uses_its_own_numbers() -> None:
    arm = seccomp.AUDIT_ARCH_AARCH64
    prog = seccomp.build_filter(arch=arm)
    assert seccomp.evaluate(prog, nr=117, arch=arm) == seccomp.SECCOMP_RET_KILL_PROCESS  # ptrace on arm64
    assert seccomp.evaluate(prog, nr=101, arch=arm) == seccomp.SECCOMP_RET_ALLOW  # nanosleep on arm64


def test_unknown_arch_fails_closed() -> None:
    with pytest.raises(SandboxError):
        seccomp.build_filter(arch=0x1234)


# -- limits and classification ----------------------------------------------------------------------------


def test_limits_validate_and_render_rlimits() -> None:
    lim = Limits(cpu_seconds=1.5, memory_bytes=64 << 20, pids=10)
    limits = dict(lim.rlimits(cgroup_memory=False, cgroup_pids=False))
    assert limits[resource.RLIMIT_CPU] == 2 and limits[resource.RLIMIT_AS] == 64 << 20
    assert limits[resource.RLIMIT_NPROC] == 14 and limits[resource.RLIMIT_CORE] == 0
    assert dict(lim.rlimits(cgroup_memory=False, cgroup_pids=True))[resource.RLIMIT_NPROC] == 16
    assert lim.address_space_bytes(cgroup_memory=True) > lim.memory_bytes
    with pytest.raises(ConfigError):
        Limits(wall_seconds=0)
    with pytest.raises(ConfigError):
        Limits(memory_bytes=1024)


def test_parse_limits_short_forms() -> None:
    lim = parse_limits("wall=2 memory=64M pids=8 network=on workspace=512k")
    assert (lim.wall_seconds, lim.memory_bytes, lim.pids, lim.network, lim.workspace_bytes) == (
        2.0,
        64 << 20,
        8,
        True,
        512 << 10,
    )


def _ev(**kw: object) -> Evidence:
    base: dict[str, object] = dict(
        limits=Limits(),
        exit_code=0,
        signal=None,
        killed_for=None,
        cpu_seconds=0.1,
        usage=SlotUsage(),
        loopback_packets=0,
        workspace_full=False,
        file_limit_hit=False,
        stderr_tail=b"",
    )
    base.update(kw)
    return Evidence(**base)


def test_classify_orders_causes() -> None:
    assert classify(_ev())[0] == "exited"
    assert classify(_ev(signal=signal.SIGSYS, usage=SlotUsage(oom_kills=1)))[0] == "seccomp"
    assert classify(_ev(signal=signal.SIGKILL, usage=SlotUsage(oom_kills=1)))[0] == "memory"
    assert classify(_ev(signal=signal.SIGKILL, killed_for="output"))[0] == "output"
    assert classify(_ev(signal=signal.SIGKILL, cpu_seconds=5.0))[0] == "cpu"
    assert classify(_ev(signal=signal.SIGKILL, killed_for="timeout", cpu_seconds=0.0))[0] == "timeout"
    forked_out = _ev(signal=signal.SIGKILL, killed_for="timeout", usage=SlotUsage(pids_limit_hits=3))
    assert classify(forked_out)[0] == "pids"
    assert classify(_ev(exit_code=1, workspace_full=True))[0] == "disk"
    assert classify(_ev(exit_code=1, loopback_packets=2))[0] == "network"
    assert classify(_ev(exit_code=1, stderr_tail=b"MemoryError"))[0] == "memory"
    assert classify(_ev(signal=signal.SIGTERM))[0] == "signal"


def test_a_limit_hit_by_a_successful_run_is_noted_not_blamed() -> None:
    reason, detail = classify(_ev(exit_code=0, usage=SlotUsage(pids_limit_hits=2)))
    assert reason == "exited" and "pids limit" in detail


def test_network_is_not_blamed_when_the_policy_allows_it() -> None:
    assert classify(_ev(exit_code=1, loopback_packets=5, limits=Limits(network=True)))[0] == "exited"


# -- real runs ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jail() -> Iterator[Jail]:
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        pytest.skip("the jail needs root and bubblewrap")
    with Jail(max_concurrency=2) as j:
        yield j


@needs_jail
def test_runs_python_collects_files_and_reports_usage(jail: Jail) -> None:
    src = b"import os\nopen('out/result.txt', 'w').write(open('in.txt').read().upper())\nprint(os.getuid())\n"
    files = {"s.py": src, "in.txt": b"hello", "out/.keep": b""}
    res = jail.run(JobSpec(files=files, argv=["python3", "s.py"], collect=("out/result.txt", "missing.txt")))
    assert res.ok, res
    assert res.collected == {"out/result.txt": b"HELLO"}
    assert int(res.stdout) == res.uid and res.uid is not None and res.uid >= 61000
    assert res.cpu_seconds > 0 and res.peak_memory_bytes > 1 << 20 and res.output_bytes == len(res.stdout)


@needs_jail
def test_bash_exit_status_and_signal_are_reported(jail: Jail) -> None:
    res = jail.run(JobSpec(files={"s.sh": b"echo hi >&2; exit 7\n"}, argv=["bash", "s.sh"]))
    assert (res.exit_code, res.signal, res.stop_reason, res.stderr) == (7, None, "exited", b"hi\n")
    # A forced signal kills even a pid 1: a segfault is a signal, not exit status 139.
    crash = JobSpec(files={}, argv=["python3", "-c", "import ctypes; ctypes.string_at(0)"])
    res = jail.run(crash)
    assert (res.exit_code, res.signal, res.stop_reason) == (None, signal.SIGSEGV, "signal"), res


@needs_jail
def test_an_exit_status_above_128_is_not_read_as_a_signal(jail: Jail) -> None:
    for code in (129, 137, 159, 192):
        res = jail.run(JobSpec(files={}, argv=["sh", "-c", f"exit {code}"]))
        assert (res.exit_code, res.signal, res.stop_reason) == (code, None, "exited"), res
        assert "cannot tell" not in res.detail
    res = jail.run(JobSpec(files={}, argv=["python3", "-c", "import socket; socket.socket(40, 1)"]))
    assert (res.exit_code, res.signal, res.stop_reason) == (None, signal.SIGSYS, "seccomp"), res


FORK_WORKERS = b"""
import os
def burn():
    while True:
        pass
for _ in range(2):
    if os.fork() == 0:
        burn()
for _ in range(3):  # every worker RLIMIT_CPU kills is replaced by a fresh one
    os.wait()
    if os.fork() == 0:
        burn()
os._exit(0)
"""


@needs_jail
def test_cpu_time_is_counted_across_forked_workers(jail: Jail) -> None:
    res = jail.run(
        JobSpec(
            files={"w.py": FORK_WORKERS},
            argv=["python3", "w.py"],
            limits=Limits(cpu_seconds=1, wall_seconds=8),
        )
    )
    assert res.stop_reason == "cpu" and res.signal == signal.SIGKILL, res
    assert "all its processes together" in res.detail
    # Killed within a few checks of the budget, not after the 3+ CPU-s the workers would burn.
    assert 1.0 <= res.cpu_seconds < 1.3, res.cpu_seconds


@needs_jail
def test_each_jail_gets_a_cpu_quota(jail: Jail) -> None:
    slot_dirs = [d for s in jail._all_slots for d in s.cgroup.dirs if d.kind in ("cpu-v1", "v2")]
    if not slot_dirs:
        pytest.skip("no writable cpu controller on this host")
    spin = (
        b"import threading\n"
        b"def s():\n    while True: pass\n"
        b"for _ in range(3): threading.Thread(target=s, daemon=True).start()\n"
        b"s()\n"
    )
    res = jail.run(
        JobSpec(
            files={"s.py": spin},
            argv=["python3", "s.py"],
            limits=Limits(cpu_cores=0.5, cpu_seconds=0.4, wall_seconds=5),
        )
    )
    slot = next(s.cgroup for s in jail._all_slots if s.uid == res.uid)
    quota = next(d for d in slot.dirs if d.kind in ("cpu-v1", "v2"))
    text = (quota.path / ("cpu.cfs_quota_us" if quota.kind == "cpu-v1" else "cpu.max")).read_text()
    assert text.split()[0] == "50000"
    # Half a core for four spinning threads: 0.4 CPU-s take at least 0.8 s of wall time, however idle
    # the machine (the quota caps it; on a busy one it gets less still).
    assert res.stop_reason == "cpu" and res.wall_seconds >= 0.75, res


@needs_jail
def test_a_deeply_nested_workspace_gets_a_result(jail: Jail) -> None:
    deep = b"import os\nfor _ in range(1100):\n    os.mkdir('d'); os.chdir('d')\nopen('f', 'w').write('x')\n"
    res = jail.run(JobSpec(files={"d.py": deep}, argv=["python3", "d.py"]))
    assert res.ok and "did not look deeper than" in res.detail, res


@needs_jail
def test_payload_runs_under_the_rlimits_and_inside_the_slot_cgroups(jail: Jail) -> None:
    lim = Limits(cpu_seconds=3, memory_bytes=96 << 20, pids=20, file_bytes=1 << 20, open_files=40)
    script = "cat /proc/self/limits; echo ==; cat /proc/self/cgroup"
    res = jail.run(JobSpec(files={}, argv=["sh", "-c", script], limits=lim))
    assert res.ok, res
    limits_text, cgroups_text = res.stdout.decode().split("==\n")
    rows = {line[:26].strip(): line[26:].split()[:2] for line in limits_text.splitlines()[1:]}
    assert rows["Max cpu time"] == ["3", "3"]
    assert rows["Max file size"] == [str(1 << 20)] * 2
    assert rows["Max open files"] == ["40", "40"]
    assert rows["Max core file size"] == ["0", "0"]
    slot = next(s.cgroup for s in jail._all_slots if s.uid == res.uid)
    nproc = lim.nproc_rlimit() + (2 if slot.pids else 0)
    assert rows["Max processes"] == [str(nproc)] * 2
    assert rows["Max address space"] == [str(lim.address_space_bytes(cgroup_memory=slot.memory))] * 2
    # The jail has its own cgroup namespace, rooted where bubblewrap was when it unshared it. Started by
    # the slot's launcher thread, that is the slot's group ("/"); a migrated launcher may have unshared it
    # before its move finished, and then the path is the slot's, seen from an ancestor.
    born_inside = jail.describe()["cgroup_entry"] == ["thread"]
    for d in slot.dirs:
        line = next(ln for ln in cgroups_text.splitlines() if d.controller in ln.split(":")[1].split(","))
        path = line.split(":", 2)[2]
        assert path == "/" or (
            not born_inside and d.hier_path.endswith(path) and path.endswith(f"/{slot.name}")
        ), line


@needs_jail
def test_jails_start_as_the_slot_uid_while_the_runner_stays_root(jail: Jail) -> None:
    script = (
        "grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|NoNewPrivs):' /proc/self/status;"
        " ulimit -H -n 9999 && echo RAISED"
    )
    res = jail.run(JobSpec(files={}, argv=["sh", "-c", script]))
    status = dict(line.split(":", 1) for line in res.stdout.decode().splitlines() if ":" in line)
    assert status["Uid"].split() == [str(res.uid)] * 4 and status["Gid"].split() == [str(res.uid)] * 4
    assert status["Groups"].split() == [] and int(status["CapPrm"], 16) == int(status["CapEff"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1" and b"RAISED" not in res.stdout
    # Only the launcher threads changed credentials; this (main) thread and what it starts are root.
    assert os.getresuid() == (0, 0, 0)
    with pytest.raises(SandboxError, match="launcher thread is not uid"):
        launcher._check_thread_credentials(61000)


@needs_jail
def test_env_is_cleared_and_set(jail: Jail) -> None:
    res = jail.run(JobSpec(files={}, argv=["sh", "-c", "echo $FOO:$HOME:$USER"], env={"FOO": "bar"}))
    assert res.stdout == b"bar:/work:\n"


@needs_jail
def test_bad_jobs_are_refused(jail: Jail) -> None:
    with pytest.raises(SandboxError):
        jail.run(JobSpec(files={"../x": b""}, argv=["true"]))
    with pytest.raises(SandboxError):
        jail.run(JobSpec(files={}, argv=["true"], collect=("/etc/shadow",)))
    with pytest.raises(SandboxError):
        jail.run(JobSpec(files={}, argv=["true", "A" * 200_000]))
    with pytest.raises(SandboxError):
        jail.run(JobSpec(files={}, argv=[]))


@needs_jail
def test_fails_closed_when_bubblewrap_cannot_start(tmp_path: Path) -> None:
    # bubblewrap is started as the slot's uid, so it must be able to reach the fake one.
    reachable = Path(tempfile.mkdtemp(prefix="rote-fake-bwrap-", dir="/tmp"))
    try:
        reachable.chmod(0o755)
        broken = reachable / "bwrap"
        broken.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
        broken.chmod(0o755)
        with (
            Jail(max_concurrency=1, bwrap=str(broken), state_dir=tmp_path / "state") as j,
            pytest.raises(SandboxError, match="could not set up the jail: bwrap: setting up uid map"),
        ):
            j.run(JobSpec(files={}, argv=["true"]))
        hidden = tmp_path / "bwrap"  # under pytest's 0700 directory: the slot's uid cannot execute it
        shutil.copy(broken, hidden)
        with (
            Jail(max_concurrency=1, bwrap=str(hidden), state_dir=tmp_path / "state") as j,
            pytest.raises(SandboxError, match="cannot start the jail"),
        ):
            j.run(JobSpec(files={}, argv=["true"]))
    finally:
        shutil.rmtree(reachable)


@needs_jail
def test_concurrent_runs_get_distinct_uids(jail: Jail) -> None:
    from concurrent.futures import ThreadPoolExecutor

    job = JobSpec(files={}, argv=["sh", "-c", "id -u; sleep 0.3"])
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(jail.run, [job, job])
    assert a.ok and b.ok and a.stdout != b.stdout


def test_hostile_suite_is_large_and_well_formed() -> None:
    cases = load_suite(Path(__file__).parent / "hostile")
    assert len(cases) >= 35
    reasons = {c.expect for c in cases}
    assert {"pids", "memory", "cpu", "timeout", "output", "disk", "network", "seccomp", "exited"} <= reasons


@needs_jail
def test_cpu_budget_without_cgroups_sums_the_uids_processes() -> None:
    # As in a container whose cgroups are read-only: the runner counts the slot uid's processes in /proc.
    with Jail(max_concurrency=1, cgroups=False) as j:
        assert not j.describe()["cgroups"]["controllers"]
        res = j.run(
            JobSpec(
                files={"w.py": FORK_WORKERS},
                argv=["python3", "w.py"],
                limits=Limits(cpu_seconds=1, wall_seconds=8),
            )
        )
    assert res.stop_reason == "cpu" and "all its processes together" in res.detail, res
    assert 1.0 <= res.cpu_seconds < 1.6, res.cpu_seconds
