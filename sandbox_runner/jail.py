"""The jail: run one untrusted script under bubblewrap and say exactly what it did and why it stopped.

Layers, outermost first (docs/sandbox.md has the full design and the hostile suite):

1. A non-root uid of its own per concurrent run (claimed with a lock file, so two runner processes on one
   host never share one). Root inside a bubblewrap jail can remount read-only binds writable; a plain uid
   cannot, and it owns nothing on the host.
2. The slot's launcher thread (`launcher.py`) has dropped to that uid (no groups, no capabilities,
   no_new_privs) and starts bubblewrap directly; once bubblewrap holds pid 1 it sets the rlimits (CPU,
   address space, file size, open files, processes) on it: every jailed process inherits them and none may
   raise them.
3. bubblewrap: all namespaces unshared (network too, unless the policy allows it), `--die-with-parent
   --new-session --as-pid-1 --cap-drop ALL --clearenv`, a read-only /usr (and only the interpreter's own
   prefix when it is not under /usr), a fresh /proc and minimal /dev, a read-only root, and a size-capped
   tmpfs workspace mounted by the runner, so the runner can collect files and see a full disk afterwards.
4. bubblewrap stops before exec (`--block-fd`) until the runner has checked that pid 1 is in the slot's
   memory/pids/cpu cgroups (on cgroup v1 it was born there: the launcher thread lives in them), set its
   rlimits, opened its network namespace's counters and a pidfd that keeps its exact exit status; nothing
   of the payload runs outside them.
5. A seccomp filter (`seccomp.py`) kills the payload on system calls it has no business making.
6. The runner kills the whole jail on wall time, output overflow, or when all its processes together have
   used their CPU time (the slot's CPU cgroup counter; the CFS quota caps the cores it may use at once).
   It kills pid 1, and pid 1's death takes every process of the pid namespace with it.

If any layer cannot be set up the run is refused with `SandboxError`; nothing ever runs unsandboxed.

This module is the privileged part: slots, uids, launching and watching. What a finished run means is
`verdict.py` (pure), the job's data types are `job.py`, the workspace's host side is `workspace.py`, and
what the kernel says about the jail's processes is `proc.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rote.errors import SandboxError
from rote.sandbox_runner import workspace
from rote.sandbox_runner.caps import missing_capabilities
from rote.sandbox_runner.cgroup import CgroupManager, SlotCgroup
from rote.sandbox_runner.job import JobSpec, RunResult, check_job
from rote.sandbox_runner.launcher import SlotLauncher
from rote.sandbox_runner.limits import (
    CPU_CHECK_MIN_SECONDS,
    PROC_CPU_CHECK_MIN_SECONDS,
    Limits,
    cpu_check_delay,
)
from rote.sandbox_runner.proc import (
    PidExit,
    check_uid,
    loopback_packets,
    processes_of,
    read_child_pid,
    uid_cpu_seconds,
)
from rote.sandbox_runner.seccomp import build_filter
from rote.sandbox_runner.verdict import Evidence, classify, decode_monitor_status, decode_wait_status

__all__ = ["Evidence", "Jail", "JobSpec", "Limits", "RunResult", "classify"]

WORKDIR = "/work"
_NETWORK_ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates")


# ----------------------------------------------------------------------------------------------------------
# the host side
# ----------------------------------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin")


def _find_python() -> tuple[str, str | None]:
    """The interpreter jailed Python runs on, and a prefix to bind when it is not under /usr.

    Debian's /usr/bin/python3 needs nothing beyond /usr. A pyenv interpreter lives under root's home; then
    only its own prefix is bound, never the rest of the home.
    """
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(cand, os.X_OK):
            return cand, None
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if not exe.startswith(prefix + "/"):
        raise SandboxError(f"cannot find a Python interpreter to bind into the jail ({exe})")
    return exe, prefix


@dataclass
class _Slot:
    uid: int
    lock_fd: int
    cgroup: SlotCgroup
    workspace: Path
    #: Set once the slot is in use; `None` only while the jail is being built.
    launcher: SlotLauncher | None = None


class Jail:
    """Runs `JobSpec`s, at most `max_concurrency` at once, each in its own jail with its own uid.

    Thread-safe: the service calls `run` from a thread pool. Construction checks every prerequisite
    (root, bubblewrap, seccomp, uids, launcher threads) and raises `SandboxError` if one is missing.
    """

    #: Where uids are claimed: host-wide whatever the state dir, so runners never share a uid.
    UID_LOCK_DIR = Path("/run/rote-sandbox-uids") if Path("/run").is_dir() else Path("/tmp/rote-sandbox-uids")
    #: Workspace mount points and other runner state (a deployment with a read-only root gives it a tmpfs).
    DEFAULT_STATE_DIR = (
        Path("/run/rote-sandbox") if Path("/run").is_dir() else Path(tempfile.gettempdir()) / "rote-sandbox"
    )
    _instances = 0

    def __init__(
        self,
        *,
        max_concurrency: int = 2,
        uid_base: int = 61000,
        uid_count: int = 1000,
        state_dir: Path | None = None,
        cgroups: bool = True,
        bwrap: str | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise SandboxError("max_concurrency must be at least 1")
        if os.geteuid() != 0:
            raise SandboxError(
                "the sandbox runner must start as root: it gives each run its own unprivileged uid "
                "(see docs/sandbox.md); refusing to run scripts under the invoking user's uid"
            )
        missing = missing_capabilities()
        if missing:
            raise SandboxError(
                f"the sandbox runner lacks the capabilities {', '.join(missing)} (it needs exactly those "
                "in rote.sandbox_runner.caps.REQUIRED; see docs/sandbox.md, 'Deploying')"
            )
        found = bwrap or _which("bwrap")
        if not found:
            raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        self.bwrap = found
        self.seccomp_program = build_filter()
        self.python, self.python_prefix = _find_python()
        self.bash = _which("bash")
        self.max_concurrency = max_concurrency
        self.state_dir = state_dir or self.DEFAULT_STATE_DIR
        self._closed = False
        self._prepare_state_dir()
        Jail._instances += 1
        self._cgroups = CgroupManager(group=f"rote-sandbox-{os.getpid()}-{Jail._instances}", enabled=cgroups)
        self._slots: queue.Queue[_Slot] = queue.Queue()
        self._all_slots: list[_Slot] = []
        try:
            for uid in self._claim_uids(uid_base, uid_count, max_concurrency):
                self._all_slots.append(uid)
                self._slots.put(uid)
            for slot in self._all_slots:
                slot.launcher = SlotLauncher(uid=slot.uid, cgroup=slot.cgroup)
        except BaseException:
            self.close()
            raise
        self._base_args = self._static_args()

    # -- set-up -------------------------------------------------------------------------------------------

    def _prepare_state_dir(self) -> None:
        for d in (self.state_dir, self.UID_LOCK_DIR, self.state_dir / "ws"):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, 0)
            # Slot uids must traverse to their workspace mount point, and see nothing else.
            os.chmod(d, 0o711)
        for ws in (self.state_dir / "ws").iterdir():
            owner_pid = ws.name.split("-", 1)[0]
            if owner_pid.isdigit() and not Path(f"/proc/{owner_pid}").exists():
                workspace.umount(ws)
                with contextlib.suppress(OSError):
                    ws.rmdir()

    def _claim_uids(self, base: int, count: int, want: int) -> list[_Slot]:
        slots: list[_Slot] = []
        for uid in range(base, base + count):
            if len(slots) == want:
                break
            lock = self.UID_LOCK_DIR / f"{uid}.lock"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if any(True for _ in processes_of(uid)):
                # Somebody else's process owns this uid: not ours to share.
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                continue
            ws = self.state_dir / "ws" / f"{os.getpid()}-{uid}"
            ws.mkdir(exist_ok=True)
            os.chmod(ws, 0o711)
            slots.append(_Slot(uid=uid, lock_fd=fd, cgroup=self._cgroups.slot(f"uid-{uid}"), workspace=ws))
        if len(slots) < want:
            for s in slots:
                os.close(s.lock_fd)
            raise SandboxError(
                f"only {len(slots)} of {want} sandbox uids in {base}..{base + count - 1} are free"
            )
        return slots

    def _static_args(self) -> list[str]:
        args = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--hostname",
            "rote-sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        if Path("/etc/ld.so.cache").exists():
            args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        if self.python_prefix:
            args += ["--ro-bind", self.python_prefix, self.python_prefix]
        args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
        args += ["--symlink", f"{WORKDIR}/.tmp", "/tmp"]
        return args

    def describe(self) -> dict[str, Any]:
        """What isolation this host gives, for `rote sandbox info` and the logs."""
        return {
            "bwrap": self.bwrap,
            "python": self.python,
            "python_prefix_bound": self.python_prefix,
            "uids": [s.uid for s in self._all_slots],
            "cgroups": self._cgroups.describe(),
            # "thread": each slot's jails are started by a thread living in its cgroups (born inside);
            # "migrate": each run's bubblewrap is moved in (cgroup v2, or a v1 thread move failed).
            "cgroup_entry": sorted(
                {
                    ("thread" if s.launcher and s.launcher.in_cgroups else "migrate")
                    for s in self._all_slots
                    if s.cgroup.dirs
                }
            ),
            "seccomp_instructions": len(self.seccomp_program) // 8,
            "state_dir": str(self.state_dir),
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for slot in self._all_slots:
            if slot.launcher is not None:
                slot.launcher.close()
            slot.cgroup.remove()
            workspace.umount(slot.workspace)
            with contextlib.suppress(OSError):
                slot.workspace.rmdir()
            os.close(slot.lock_fd)
        self._all_slots = []
        self._cgroups.close()

    def __enter__(self) -> Jail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _slot(self) -> Iterator[_Slot]:
        if self._closed:
            raise SandboxError("the jail is closed")
        slot = self._slots.get()
        try:
            yield slot
        finally:
            self._slots.put(slot)

    def resolve_argv(self, argv: list[str]) -> list[str]:
        """Map interpreter names to the binaries that exist inside the jail."""
        if not argv:
            raise SandboxError("empty argv")
        head = argv[0]
        if head in ("python", "python3"):
            head = self.python
        elif head in ("bash", "sh") and self.bash and head == "bash":
            head = self.bash
        elif head == "sh":
            head = "/bin/sh"
        return [head, *argv[1:]]

    @staticmethod
    def payload_env(job: JobSpec) -> dict[str, str]:
        """The payload's whole environment (bubblewrap clears the rest); the benchmark gives its unjailed
        runs the same one, so both sides start the interpreter alike."""
        return {
            "HOME": WORKDIR,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            # one malloc arena per thread would reserve 64 MiB of address space each
            "MALLOC_ARENA_MAX": "2",
            **job.env,
        }

    def run(self, job: JobSpec) -> RunResult:
        """Run one job to the end and report; raises `SandboxError` if the jail cannot be built, or if the
        runner cannot make sense of a run (never any other exception: the service turns every
        `SandboxError` into a result, so no test is ever lost to a runner bug)."""
        check_job(job)
        with self._slot() as slot:
            try:
                return self._run_in(slot, job)
            except SandboxError:
                raise
            except Exception as exc:
                raise SandboxError(f"the runner failed on this job: {type(exc).__name__}: {exc}") from exc

    def _run_in(self, slot: _Slot, job: JobSpec) -> RunResult:
        lim = job.limits
        started = time.monotonic()
        ws = slot.workspace
        workspace.mount_tmpfs(ws, size=lim.workspace_bytes)
        try:
            workspace.populate(ws, job.files, uid=slot.uid)
            # bubblewrap's monitor, and the launcher thread where there is one, share the slot's pids cgroup
            # with the jail: the payload still gets `pids` processes and threads of its own.
            extra = 1 + (slot.launcher is not None and slot.launcher.in_cgroups)
            slot.cgroup.prepare(
                memory_bytes=lim.memory_bytes, pids=lim.pids + extra, cpu_quota_us=lim.cpu_quota_us
            )
            return self._spawn_and_watch(slot, job, started)
        finally:
            slot.cgroup.kill_all()
            workspace.umount(ws)

    def _spawn_and_watch(self, slot: _Slot, job: JobSpec, started: float) -> RunResult:
        lim = job.limits
        env = self.payload_env(job)
        launcher = slot.launcher
        if launcher is None:
            raise SandboxError("the slot has no launcher")
        seccomp_r, seccomp_w = os.pipe()
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        os.write(seccomp_w, self.seccomp_program)
        os.close(seccomp_w)
        args = list(self._base_args)
        if lim.network:
            # --unshare-all gave the jail an empty network namespace; only a policy shares the host's.
            args += ["--share-net"]
            for etc in _NETWORK_ETC:
                if os.path.exists(etc):
                    args += ["--ro-bind", etc, etc]
        args += ["--bind", str(slot.workspace), WORKDIR, "--remount-ro", "/", "--chdir", WORKDIR]
        for k, v in env.items():
            args += ["--setenv", k, v]
        args += [
            "--seccomp",
            str(seccomp_r),
            "--info-fd",
            str(info_w),
            "--block-fd",
            str(block_r),
            "--",
            *self.resolve_argv(job.argv),
        ]
        proc: subprocess.Popen[bytes] | None = None
        net_dev: Any = None
        pid_exit: PidExit | None = None
        try:
            try:
                proc = launcher.launch(args, (seccomp_r, info_w, block_r))
            except OSError as exc:
                raise SandboxError(f"cannot start the jail: {exc}") from exc
            finally:
                os.close(seccomp_r)
                os.close(info_w)
                os.close(block_r)
            if not launcher.in_cgroups:
                # Move bubblewrap at once, so that the migration's wait (an RCU grace period on cgroup v1)
                # overlaps its start-up, and pid 1 is usually forked inside; `ensure` makes sure.
                slot.cgroup.attach(proc.pid, early=True)
            child = read_child_pid(info_r, proc, deadline=time.monotonic() + 10)
            slot.cgroup.ensure(child)
            launcher.set_rlimits(
                child, lim.rlimits(cgroup_memory=slot.cgroup.memory, cgroup_pids=slot.cgroup.pids)
            )
            with contextlib.suppress(OSError):
                net_dev = open(f"/proc/{child}/net/dev", "rb")  # noqa: SIM115 - read after the run
            # Opened while pid 1 is blocked: the pidfd keeps its exact wait status after the monitor reaps it.
            pid_exit = PidExit(child)
            check_uid(child, slot.uid)
            slot.cgroup.mark_start()
            released = time.monotonic()
            os.write(block_w, b"1")
            return self._watch(proc, child, slot, job, started, released, net_dev, pid_exit)
        except BaseException:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                slot.cgroup.kill_all()
                proc.wait()
            raise
        finally:
            os.close(block_w)
            os.close(info_r)
            if net_dev is not None:
                net_dev.close()
            if pid_exit is not None:
                pid_exit.close()
            if proc is not None:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()

    def _watch(
        self,
        proc: subprocess.Popen[bytes],
        child: int,
        slot: _Slot,
        job: JobSpec,
        started: float,
        released: float,
        net_dev: Any,
        pid_exit: PidExit,
    ) -> RunResult:
        lim = job.limits
        deadline = released + lim.wall_seconds
        out = bytearray()
        err = bytearray()
        total = 0
        killed_for: str | None = None
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        for stream, buf in ((proc.stdout, out), (proc.stderr, err)):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream.fileno(), selectors.EVENT_READ, buf)
        open_streams = 2
        # CPU across every process of the jail: RLIMIT_CPU is per process, so a payload that forks fresh
        # workers would get a new allowance with each. The slot's counter covers them all; it is read when
        # the jail could first have spent its budget, given how many cores it may use at once.
        # Without a CPU cgroup (an unprivileged container) the processes of the slot's uid are summed from
        # /proc instead: dearer to read, so less often, and blind to children reaped behind its back
        # (SIGCHLD ignored); docs/sandbox.md says so.
        cores = lim.cpu_cores if slot.cgroup.cpu_quota else float(len(os.sched_getaffinity(0)))
        if slot.cgroup.cpu_counter:
            floor = CPU_CHECK_MIN_SECONDS

            def cpu_used() -> float:
                return slot.cgroup.cpu_seconds() or 0.0
        else:
            floor = PROC_CPU_CHECK_MIN_SECONDS
            base = uid_cpu_seconds(slot.uid)

            def cpu_used() -> float:
                return uid_cpu_seconds(slot.uid) - base

        next_cpu = released + cpu_check_delay(lim.cpu_seconds, cores, minimum=floor)
        cpu_seen = 0.0  # the most the budget check saw; /proc loses the time of processes killed unwaited

        def kill(reason: str) -> None:
            # Kill pid 1, not the monitor: pid 1's exit kills and *waits for* every process of its pid
            # namespace, and only then lets the monitor exit, so when wait4 returns nothing is left.
            nonlocal killed_for
            if killed_for is None:
                killed_for = reason
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

        while open_streams:
            now = time.monotonic()
            if killed_for is None and now >= deadline:
                kill("timeout")
            if killed_for is None and now >= next_cpu:
                used = cpu_seen = max(cpu_seen, cpu_used())
                if used >= lim.cpu_seconds:
                    kill("cpu")
                else:
                    next_cpu = now + cpu_check_delay(lim.cpu_seconds - used, cores, minimum=floor)
            # After a kill, wait a little for the pipes to close (the pid namespace is going away).
            timeout = max(0.0, min(deadline, next_cpu) - now) if killed_for is None else 2.0
            events = sel.select(timeout)
            if not events and killed_for is not None:
                break
            for key, _ in events:
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    open_streams -= 1
                    continue
                total += len(chunk)
                sink: bytearray = key.data
                room = lim.output_bytes - len(out) - len(err)
                if room > 0:
                    sink += chunk[:room]
                if total > lim.output_bytes and killed_for is None:
                    kill("output")
        sel.close()
        # pid 1 has exited or been killed; the monitor follows at once. A monitor that lingers is killed.
        wait_deadline = time.monotonic() + 5
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > wait_deadline:
                kill(killed_for or "timeout")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.001)
        proc.returncode = os.waitstatus_to_exitcode(status)
        ended = time.monotonic()
        slot.cgroup.kill_all()
        own = pid_exit.status()
        ended_as = decode_wait_status(own) if own is not None else decode_monitor_status(status)
        usage = slot.cgroup.usage()
        cpu = max(usage.cpu_seconds or 0.0, rusage.ru_utime + rusage.ru_stime, cpu_seen)
        peak = usage.peak_memory_bytes if usage.peak_memory_bytes else rusage.ru_maxrss * 1024
        disk = workspace.disk_state(slot.workspace, lim.file_bytes)
        collected = workspace.collect(slot.workspace, job.collect)
        stop, detail = classify(
            Evidence(
                limits=lim,
                exit_code=ended_as.exit_code,
                signal=ended_as.signal,
                killed_for=killed_for,
                cpu_seconds=cpu,
                usage=usage,
                loopback_packets=loopback_packets(net_dev),
                workspace_full=disk.full,
                file_limit_hit=disk.file_limit_hit,
                stderr_tail=bytes(err[-4096:]),
                status_exact=ended_as.exact,
                scan_note=disk.truncated,
            )
        )
        return RunResult(
            exit_code=ended_as.exit_code,
            signal=ended_as.signal,
            stop_reason=stop,
            detail=detail,
            wall_seconds=ended - started,
            cpu_seconds=cpu,
            peak_memory_bytes=int(peak),
            output_bytes=total,
            stdout=bytes(out),
            stderr=bytes(err),
            collected=collected,
            uid=slot.uid,
        )
