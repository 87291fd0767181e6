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
   memory/pids cgroups (on cgroup v1 it was born there: the launcher thread lives in them), set its
   rlimits and opened its network namespace's counters; nothing of the payload runs outside them.
5. A seccomp filter (`seccomp.py`) kills the payload on system calls it has no business making.
6. The runner kills the whole jail on wall time or output overflow: killing bubblewrap's monitor kills pid 1
   (die-with-parent), and pid 1's death takes every process of the pid namespace with it.

If any layer cannot be set up the run is refused with `SandboxError`; nothing ever runs unsandboxed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import queue
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rote.sandbox_runner.cgroup import CgroupManager, SlotCgroup, SlotUsage
from rote.sandbox_runner.launcher import SlotLauncher
from rote.sandbox_runner.limits import Limits
from rote.sandbox_runner.seccomp import build_filter
from rote.streams.schemas import StopReason

from rote.errors import SandboxError

__all__ = ["Jail", "JobSpec", "Limits", "RunResult", "classify"]

WORKDIR = "/work"
#: Total bytes of argv plus environment a job may hand the payload; the kernel's own cap is larger, but a
#: job this big is a bug or an attack, and refusing it early gives a clear error instead of E2BIG.
MAX_ARGV_ENV_BYTES = 128 * 1024
MAX_FILES_BYTES = 32 * 1024 * 1024
MAX_COLLECT_BYTES = 8 * 1024 * 1024
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MNT_DETACH = 0x2
_NETWORK_ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One thing to run: files placed in the workspace, the command, and which files to bring back."""

    files: dict[str, bytes]
    argv: list[str]
    collect: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What happened. `stop_reason` is the single cause the runner attributes the end of the run to."""

    exit_code: int | None
    signal: int | None
    stop_reason: StopReason
    detail: str
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int
    output_bytes: int
    stdout: bytes
    stderr: bytes
    collected: dict[str, bytes]
    uid: int | None = None

    @property
    def ok(self) -> bool:
        """The payload ran to completion and exited 0."""
        return self.stop_reason == "exited" and self.exit_code == 0


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """Everything the runner observed about a finished run, as input to `classify`."""

    limits: Limits
    exit_code: int | None
    signal: int | None
    killed_for: str | None  # "timeout" | "output" | None
    cpu_seconds: float
    usage: SlotUsage
    loopback_packets: int
    workspace_full: bool
    file_limit_hit: bool
    stderr_tail: bytes


_NETWORK_MARKERS = (b"Network is unreachable", b"Temporary failure in name resolution",
                    b"Name or service not known", b"No address associated with hostname")
_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"cannot allocate memory", b"out of memory")


def classify(ev: Evidence) -> tuple[StopReason, str]:
    """Attribute the end of a run to one cause.

    Order matters: the kernel's own verdicts (a seccomp kill, an OOM kill) are certain and come first;
    the runner's kills (output, wall time) next; then limits that were hit and most likely made the payload
    fail. A limit that was hit by a script that still exited 0 is mentioned in the detail, not blamed.
    """
    lim = ev.limits
    failed = ev.killed_for is not None or ev.signal is not None or (ev.exit_code or 0) != 0
    notes: list[str] = []
    if ev.usage.pids_limit_hits:
        notes.append(f"the pids limit ({lim.pids}) refused {ev.usage.pids_limit_hits} forks")
    if ev.usage.memory_limit_hits and not ev.usage.oom_kills:
        notes.append(f"the memory limit was reached {ev.usage.memory_limit_hits} times")
    note = ("; " + "; ".join(notes)) if notes else ""

    if ev.signal == signal.SIGSYS:
        return "seccomp", "killed by the seccomp filter: a forbidden system call (see docs/sandbox.md)" + note
    if ev.usage.oom_kills:
        return "memory", f"killed by the OOM killer at the {lim.memory_bytes} byte memory limit" + note
    if ev.killed_for == "output":
        return "output", f"output passed the {lim.output_bytes} byte limit; the jail was killed" + note
    if ev.signal == signal.SIGXCPU or (
        # RLIMIT_CPU's hard limit is a SIGKILL nobody else sends; cgroup CPU accounting can lag the
        # kernel's per-task clock that enforces it, so the check is lenient.
        ev.signal == signal.SIGKILL and ev.killed_for is None and ev.cpu_seconds >= 0.5 * lim.cpu_rlimit
    ):
        return "cpu", f"CPU time limit of {lim.cpu_rlimit} s reached ({ev.cpu_seconds:.2f} s used)" + note
    if failed and ev.usage.pids_limit_hits:
        return "pids", f"the pids limit ({lim.pids}) refused {ev.usage.pids_limit_hits} forks" + (
            "; then the wall-time limit killed the jail" if ev.killed_for == "timeout" else ""
        )
    if failed and (ev.usage.memory_limit_hits or any(m in ev.stderr_tail for m in _MEMORY_MARKERS)):
        return "memory", f"an allocation failed at the {lim.memory_bytes} byte memory limit" + note
    if ev.signal == signal.SIGXFSZ or (failed and ev.file_limit_hit):
        return "disk", f"a file reached the {lim.file_bytes} byte file-size limit" + note
    if failed and ev.workspace_full:
        return "disk", f"the {lim.workspace_bytes} byte workspace filled up" + note
    if failed and not lim.network and ev.loopback_packets:
        return "network", (
            f"network use denied: the jail has no network ({ev.loopback_packets} packets went nowhere)" + note
        )
    if failed and not lim.network and any(m in ev.stderr_tail for m in _NETWORK_MARKERS):
        return "network", "network use denied: the jail has no network (no route to the address)" + note
    if ev.killed_for == "timeout":
        return "timeout", f"wall-time limit of {lim.wall_seconds:g} s reached; the jail was killed" + note
    if ev.signal is not None:
        name = signal.Signals(ev.signal).name if ev.signal in signal.Signals._value2member_map_ else "?"
        return "signal", f"killed by signal {ev.signal} ({name})" + note
    return "exited", f"exited with status {ev.exit_code}" + note


# ----------------------------------------------------------------------------------------------------------
# the host side
# ----------------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(path: Path, *, size: int, uid: int) -> None:
    opts = f"size={size},mode=0700,uid={uid},gid={uid},nr_inodes=16384".encode()
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"cannot mount the workspace tmpfs at {path}: {os.strerror(err)}")


def _umount(path: Path) -> None:
    _libc.umount2(str(path).encode(), _MNT_DETACH)


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
        found = bwrap or _which("bwrap")
        if not found:
            raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        self.bwrap = found
        self.seccomp_program = build_filter()
        self.python, self.python_prefix = _find_python()
        self.bash = _which("bash")
        self.max_concurrency = max_concurrency
        self.state_dir = state_dir or (Path("/run/rote-sandbox") if Path("/run").is_dir() else
                                       Path(tempfile.gettempdir()) / "rote-sandbox")
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
                _umount(ws)
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
            if any(True for _ in _processes_of(uid)):
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
            "--cap-drop", "ALL",
            "--clearenv",
            "--hostname", "rote-sandbox",
            "--ro-bind", "/usr", "/usr",
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
            "cgroup_entry": sorted({("thread" if s.launcher and s.launcher.in_cgroups else "migrate")
                                    for s in self._all_slots if s.cgroup.dirs}),
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
            _umount(slot.workspace)
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
        return {"HOME": WORKDIR, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
                "PYTHONDONTWRITEBYTECODE": "1",
                # one malloc arena per thread would reserve 64 MiB of address space each
                "MALLOC_ARENA_MAX": "2", **job.env}

    def run(self, job: JobSpec) -> RunResult:
        """Run one job to the end and report; raises `SandboxError` if the jail cannot be built."""
        _check_job(job)
        with self._slot() as slot:
            return self._run_in(slot, job)

    def _run_in(self, slot: _Slot, job: JobSpec) -> RunResult:
        lim = job.limits
        started = time.monotonic()
        ws = slot.workspace
        _mount_tmpfs(ws, size=lim.workspace_bytes, uid=slot.uid)
        try:
            _populate(ws, job.files, uid=slot.uid)
            # bubblewrap's monitor, and the launcher thread where there is one, share the slot's pids cgroup
            # with the jail: the payload still gets `pids` processes and threads of its own.
            extra = 1 + (slot.launcher is not None and slot.launcher.in_cgroups)
            slot.cgroup.prepare(memory_bytes=lim.memory_bytes, pids=lim.pids + extra)
            return self._spawn_and_watch(slot, job, started)
        finally:
            slot.cgroup.kill_all()
            _umount(ws)

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
        args += ["--seccomp", str(seccomp_r), "--info-fd", str(info_w), "--block-fd", str(block_r),
                 "--", *self.resolve_argv(job.argv)]
        proc: subprocess.Popen[bytes] | None = None
        net_dev: Any = None
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
            child = _read_child_pid(info_r, proc, deadline=time.monotonic() + 10)
            slot.cgroup.ensure(child)
            launcher.set_rlimits(
                child, lim.rlimits(cgroup_memory=slot.cgroup.memory, cgroup_pids=slot.cgroup.pids)
            )
            with contextlib.suppress(OSError):
                net_dev = open(f"/proc/{child}/net/dev", "rb")  # noqa: SIM115 - read after the run
            _check_uid(child, slot.uid)
            slot.cgroup.mark_start()
            released = time.monotonic()
            os.write(block_w, b"1")
            return self._watch(proc, child, slot, job, started, released, net_dev)
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
            # After a kill, wait a little for the pipes to close (the pid namespace is going away).
            timeout = max(0.0, deadline - now) if killed_for is None else 2.0
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
        exit_code, sig = _decode_status(status)
        usage = slot.cgroup.usage()
        cpu = max(usage.cpu_seconds or 0.0, rusage.ru_utime + rusage.ru_stime)
        peak = usage.peak_memory_bytes if usage.peak_memory_bytes else rusage.ru_maxrss * 1024
        packets = _loopback_packets(net_dev)
        ws_full, file_hit = _disk_state(slot.workspace, lim)
        collected = _collect(slot.workspace, job.collect)
        stop, detail = classify(
            Evidence(
                limits=lim,
                exit_code=exit_code,
                signal=sig,
                killed_for=killed_for,
                cpu_seconds=cpu,
                usage=usage,
                loopback_packets=packets,
                workspace_full=ws_full,
                file_limit_hit=file_hit,
                stderr_tail=bytes(err[-4096:]),
            )
        )
        return RunResult(
            exit_code=exit_code,
            signal=sig,
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


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _check_job(job: JobSpec) -> None:
    if not job.argv:
        raise SandboxError("the job has no command")
    size = sum(len(a.encode()) + 1 for a in job.argv) + sum(len(k) + len(v) + 2 for k, v in job.env.items())
    if size > MAX_ARGV_ENV_BYTES:
        raise SandboxError(f"argv and environment are {size} bytes; the limit is {MAX_ARGV_ENV_BYTES}")
    if any("\0" in a for a in job.argv) or any("\0" in k + v or "=" in k for k, v in job.env.items()):
        raise SandboxError("argv or environment contains a NUL byte or a bad variable name")
    if sum(len(b) for b in job.files.values()) > min(MAX_FILES_BYTES, job.limits.workspace_bytes):
        raise SandboxError("the job's files do not fit in the workspace")
    for name in (*job.files, *job.collect):
        _safe_relpath(name)


def _safe_relpath(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\0" in name:
        raise SandboxError(f"workspace path {name!r} must be relative and stay inside the workspace")
    return p


def _populate(ws: Path, files: dict[str, bytes], *, uid: int) -> None:
    """Write the job's files into the fresh workspace, owned by the run's uid."""
    tmp = ws / ".tmp"
    tmp.mkdir()
    os.chown(tmp, uid, uid)
    os.chmod(tmp, 0o700)
    for name, data in files.items():
        rel = _safe_relpath(name)
        parent = ws
        for part in rel.parts[:-1]:
            parent = parent / part
            if not parent.exists():
                parent.mkdir()
                os.chown(parent, uid, uid)
        target = ws / rel
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fchown(fd, uid, uid)
        finally:
            os.close(fd)


def _read_child_pid(fd: int, proc: subprocess.Popen[bytes], *, deadline: float) -> int:
    """bubblewrap writes `{"child-pid": N, ...}` once the jail's pid 1 exists; EOF means it failed."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxError("bubblewrap did not report the jail's pid within 10 s")
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        ready = sel.select(remaining)
        sel.close()
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            info = json.loads(data)
        except json.JSONDecodeError:
            continue
        if isinstance(info, dict) and isinstance(info.get("child-pid"), int):
            return int(info["child-pid"])
    proc.wait(timeout=10)
    err = b""
    if proc.stderr is not None:
        with contextlib.suppress(OSError):
            err = proc.stderr.read(4096) or b""
    msg = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
    raise SandboxError(f"bubblewrap could not set up the jail: {msg}")


def _check_uid(pid: int, uid: int) -> None:
    """Belt and braces: never release a jail whose pid 1 is not the slot's uid on the host."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise SandboxError(f"the jail's pid 1 vanished before release: {exc}") from exc
    for line in status.splitlines():
        if line.startswith("Uid:"):
            ids = {int(x) for x in line.split()[1:]}
            if ids != {uid}:
                raise SandboxError(f"the jail's pid 1 runs as uids {sorted(ids)}, expected only {uid}")
            return
    raise SandboxError("cannot read the jail's uid")


def _processes_of(uid: int) -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    yield int(entry.name)


def _decode_status(status: int) -> tuple[int | None, int | None]:
    """bubblewrap's monitor exits 128+N when pid 1 died of signal N (the shell convention)."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    code = os.WEXITSTATUS(status)
    if 128 < code < 128 + 65:
        return None, code - 128
    return code, None


def _loopback_packets(net_dev: Any) -> int:
    """Packets on the jail's own loopback: with no network that is where every connection attempt lands."""
    if net_dev is None:
        return 0
    try:
        net_dev.seek(0)
        text = net_dev.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            fields = rest.split()
            return int(fields[9]) if len(fields) > 9 else 0  # tx packets
    return 0


def _disk_state(ws: Path, lim: Limits) -> tuple[bool, bool]:
    try:
        st = os.statvfs(ws)
    except OSError:
        return False, False
    full = st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0
    file_hit = False
    if lim.file_bytes:
        for root, _dirs, files in os.walk(ws, followlinks=False):
            for name in files:
                with contextlib.suppress(OSError):
                    if os.lstat(os.path.join(root, name)).st_size >= lim.file_bytes:
                        file_hit = True
                        break
            if file_hit:
                break
    return full, file_hit


def _collect(ws: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read result files without following anything the payload planted: every component is opened with
    O_NOFOLLOW relative to its parent, and only regular files are read, up to a cap."""
    out: dict[str, bytes] = {}
    for name in names:
        rel = _safe_relpath(name)
        fds: list[int] = []
        try:
            dir_fd = os.open(ws, _DIR_FLAGS)
            fds.append(dir_fd)
            for part in rel.parts[:-1]:
                dir_fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
                fds.append(dir_fd)
            fd = os.open(rel.parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
            fds.append(fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            chunks = []
            size = 0
            while size < MAX_COLLECT_BYTES:
                chunk = os.read(fd, min(65536, MAX_COLLECT_BYTES - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            out[name] = b"".join(chunks)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                raise SandboxError(f"cannot collect {name!r}: {exc}") from exc
        finally:
            for fd in reversed(fds):
                os.close(fd)
    return out

