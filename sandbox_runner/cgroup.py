"""Per-slot control groups: memory and pids limits the kernel enforces on the whole jail, and the counters
that tell afterwards *why* a run stopped (an OOM kill, a refused fork) and what it used.

Hosts differ: cgroup v1 hierarchies (this machine), a unified v2 tree with delegation, or no writable
cgroups at all (an unprivileged container). Each controller is set up where the host allows it and skipped
where it does not; the jail then leans on rlimits alone for that resource and says so in `describe()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rote.errors import SandboxError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str, proc_cgroup: str) -> str | None:
    """This process's cgroup in `controller`'s v1 hierarchy, or the v2 path for controller ''."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",") if controllers else [""]
        if controller in names:
            return path
    return None


@dataclass
class SlotUsage:
    """Counters read after a run, as differences from before it where the kernel cannot reset them."""

    peak_memory_bytes: int | None = None
    oom_kills: int = 0
    memory_limit_hits: int = 0
    pids_limit_hits: int = 0
    cpu_seconds: float | None = None
    #: Time the CFS quota held the jail back (cpu.stat throttled time); 0 where there is no quota.
    cpu_throttled_seconds: float = 0.0


@dataclass
class _Dir:
    path: Path
    kind: str  # "memory-v1", "pids-v1", "cpuacct-v1", "cpu-v1", "v2"
    controller: str = ""  # as named in /proc/PID/cgroup; "" for the v2 tree
    hier_path: str = ""  # the group's path as /proc/PID/cgroup shows it


@dataclass
class SlotCgroup:
    """The cgroups of one jail slot (one uid); reused run after run and removed on close."""

    name: str
    dirs: list[_Dir] = field(default_factory=list)
    _baseline: dict[str, int] = field(default_factory=dict)
    _limits_set: tuple[int, int, int] | None = None

    @property
    def memory(self) -> bool:
        return any(d.kind == "memory-v1" for d in self.dirs) or self._v2_has("memory")

    @property
    def pids(self) -> bool:
        return any(d.kind == "pids-v1" for d in self.dirs) or self._v2_has("pids")

    @property
    def cpu_quota(self) -> bool:
        """A CFS quota caps how many cores the jail uses at once."""
        return any(d.kind == "cpu-v1" for d in self.dirs) or self._v2_has("cpu")

    @property
    def cpu_counter(self) -> bool:
        """A CPU counter covers every process of the jail, forks and their forks included."""
        return any(d.kind == "cpuacct-v1" for d in self.dirs) or any(
            d.kind == "v2" and (d.path / "cpu.stat").exists() for d in self.dirs
        )

    def _v2_has(self, ctrl: str) -> bool:
        return any(d.kind == "v2" and (d.path / f"{ctrl}.max").exists() for d in self.dirs)

    def prepare(
        self, *, memory_bytes: int, pids: int, cpu_quota_us: int, cpu_period_us: int = 100_000
    ) -> None:
        """Set this run's limits and remember counters that only grow."""
        self._baseline = {}
        # The slot's groups are the runner's alone: limits the previous run set are still in force, and
        # rewriting the same values on every run only costs time. Forgotten if a write fails half-way.
        same = self._limits_set == (memory_bytes, pids, cpu_quota_us)
        self._limits_set = None
        for d in self.dirs:
            if d.kind == "memory-v1":
                if not same:
                    # memory.limit_in_bytes may never exceed memsw's limit: lift memsw, set memory, memsw.
                    memsw = d.path / "memory.memsw.limit_in_bytes"
                    if memsw.exists():
                        _write(memsw, "-1")
                    _write(d.path / "memory.limit_in_bytes", str(memory_bytes))
                    if memsw.exists():
                        _write(memsw, str(memory_bytes))
                _write(d.path / "memory.max_usage_in_bytes", "0")
                _write(d.path / "memory.failcnt", "0")
                self._baseline["oom_kill"] = _kv(d.path / "memory.oom_control").get("oom_kill", 0)
            elif d.kind == "pids-v1":
                if not same:
                    _write(d.path / "pids.max", str(pids))
                self._baseline["pids_max"] = _kv(d.path / "pids.events").get("max", 0)
            elif d.kind == "cpuacct-v1":
                self._baseline["cpu_ns"] = _int(d.path / "cpuacct.usage")
            elif d.kind == "cpu-v1":
                if not same:
                    _write(d.path / "cpu.cfs_period_us", str(cpu_period_us))
                    _write(d.path / "cpu.cfs_quota_us", str(cpu_quota_us))
                self._baseline["throttled_ns"] = _kv(d.path / "cpu.stat").get("throttled_time", 0)
            elif d.kind == "v2":
                if (d.path / "cpu.max").exists() and not same:
                    _write(d.path / "cpu.max", f"{cpu_quota_us} {cpu_period_us}")
                if (d.path / "memory.max").exists():
                    _write(d.path / "memory.max", str(memory_bytes))
                    if (d.path / "memory.swap.max").exists():
                        with contextlib.suppress(OSError):
                            _write(d.path / "memory.swap.max", "0")
                    if (d.path / "memory.peak").exists():
                        with contextlib.suppress(OSError):
                            _write(d.path / "memory.peak", "0")  # resettable since Linux 6.12
                    events = _kv(d.path / "memory.events")
                    self._baseline["oom_kill"] = events.get("oom_kill", 0)
                    self._baseline["mem_max"] = events.get("max", 0)
                if (d.path / "pids.max").exists():
                    _write(d.path / "pids.max", str(pids))
                    self._baseline["pids_max"] = _kv(d.path / "pids.events").get("max", 0)
                stat = _kv(d.path / "cpu.stat")
                self._baseline["cpu_usec"] = stat.get("usage_usec", 0)
                self._baseline["throttled_usec"] = stat.get("throttled_usec", 0)
        self._limits_set = (memory_bytes, pids, cpu_quota_us)

    def attach(self, pid: int, *, early: bool = False) -> None:
        """Move `pid` into every cgroup of the slot.

        On cgroup v1 the first migration after a quiet spell waits for an RCU grace period (5-10 ms here,
        sleeping, not computing). `early=True` is the runner moving the jail's launcher while it is still
        exec'ing into bubblewrap, so the wait overlaps bubblewrap's own start-up; the launcher may already be
        gone (bubblewrap failed), which is then not an error here: `ensure` on the jail's pid 1 is the check.
        """
        for d in self.dirs:
            try:
                _write(d.path / "cgroup.procs", str(pid))
            except ProcessLookupError:
                if early:
                    return
                raise SandboxError(f"cannot move the jail into cgroup {d.path}: no process {pid}") from None
            except OSError as exc:
                raise SandboxError(f"cannot move the jail into cgroup {d.path}: {exc}") from exc

    def missing(self, pid: int) -> list[Path]:
        """The slot's cgroups `pid` is not in, read from /proc/PID/cgroup (no lock, unlike a migration)."""
        if not self.dirs:
            return []
        try:
            text = _read(Path(f"/proc/{pid}/cgroup"))
        except OSError as exc:
            raise SandboxError(f"cannot read the cgroups of the jail's pid {pid}: {exc}") from exc
        return [d.path for d in self.dirs if _own_path(d.controller, text) != d.hier_path]

    def ensure(self, pid: int) -> None:
        """Make sure `pid` is in every cgroup of the slot, and prove it; the jail is not released otherwise.

        Children inherit their parent's cgroups at fork, so the jail's pid 1 is usually in them already
        (its launcher was moved early); if bubblewrap forked it before that move finished, it is moved now.
        """
        todo = self.missing(pid)
        if not todo:
            return
        self.attach(pid)
        still = self.missing(pid)
        if still:
            raise SandboxError(f"the jail's pid 1 is not in cgroup(s) {', '.join(map(str, still))}")

    def enter_thread(self) -> bool:
        """Move the calling thread (only it) into the slot's v1 cgroups; False where that is not possible.

        Processes this thread starts are born in the slot's cgroups, so a run needs no migration at all
        (cgroup v1 lets single threads move; v2 keeps memory and pids per process, so there each run's
        launcher is moved instead). The thread's user memory stays charged to the runner's own memory
        cgroup (the mm owner's); it counts once in pids.current, and its CPU before `mark_start` is not
        the run's.
        """
        if not self.dirs or any(not d.kind.endswith("-v1") for d in self.dirs):
            return False
        tid = str(threading.get_native_id())
        entered: list[_Dir] = []
        try:
            for d in self.dirs:
                _write(d.path / "tasks", tid)
                entered.append(d)
        except OSError:
            for d in entered:
                with contextlib.suppress(OSError):
                    _write(d.path.parent / "tasks", tid)
            return False
        return True

    def mark_start(self) -> None:
        """Take the CPU counter's baseline at release, so the run's CPU is the payload's, not the jail's
        start-up (the launcher and bubblewrap's monitor are in the slot's cgroups too)."""
        for d in self.dirs:
            if d.kind == "cpuacct-v1":
                self._baseline["cpu_ns"] = _int(d.path / "cpuacct.usage")
            elif d.kind == "v2":
                self._baseline["cpu_usec"] = _kv(d.path / "cpu.stat").get("usage_usec", 0)

    def cpu_seconds(self) -> float | None:
        """CPU time of the whole jail since `mark_start`, read cheaply while it runs; None without a
        counter."""
        for d in self.dirs:
            if d.kind == "cpuacct-v1":
                return (_int(d.path / "cpuacct.usage") - self._baseline.get("cpu_ns", 0)) / 1e9
            if d.kind == "v2" and (d.path / "cpu.stat").exists():
                usage = _kv(d.path / "cpu.stat").get("usage_usec", 0) - self._baseline.get("cpu_usec", 0)
                return usage / 1e6
        return None

    def usage(self) -> SlotUsage:
        out = SlotUsage()
        for d in self.dirs:
            if d.kind == "memory-v1":
                out.peak_memory_bytes = _int(d.path / "memory.max_usage_in_bytes")
                out.memory_limit_hits = _int(d.path / "memory.failcnt")
                out.oom_kills = _kv(d.path / "memory.oom_control").get("oom_kill", 0) - self._baseline.get(
                    "oom_kill", 0
                )
            elif d.kind == "pids-v1":
                hits = _kv(d.path / "pids.events").get("max", 0)
                out.pids_limit_hits = hits - self._baseline.get("pids_max", 0)
            elif d.kind == "cpuacct-v1":
                out.cpu_seconds = (_int(d.path / "cpuacct.usage") - self._baseline.get("cpu_ns", 0)) / 1e9
            elif d.kind == "cpu-v1":
                throttled = _kv(d.path / "cpu.stat").get("throttled_time", 0) - self._baseline.get(
                    "throttled_ns", 0
                )
                out.cpu_throttled_seconds = max(0, throttled) / 1e9
            elif d.kind == "v2":
                if (d.path / "memory.max").exists():
                    events = _kv(d.path / "memory.events")
                    out.oom_kills = events.get("oom_kill", 0) - self._baseline.get("oom_kill", 0)
                    out.memory_limit_hits = events.get("max", 0) - self._baseline.get("mem_max", 0)
                    if (d.path / "memory.peak").exists():
                        out.peak_memory_bytes = _int(d.path / "memory.peak")
                if (d.path / "pids.max").exists():
                    out.pids_limit_hits = _kv(d.path / "pids.events").get("max", 0) - self._baseline.get(
                        "pids_max", 0
                    )
                stat = _kv(d.path / "cpu.stat")
                out.cpu_seconds = (stat.get("usage_usec", 0) - self._baseline.get("cpu_usec", 0)) / 1e6
                throttled = stat.get("throttled_usec", 0) - self._baseline.get("throttled_usec", 0)
                out.cpu_throttled_seconds = max(0, throttled) / 1e6
        return out

    def kill_all(self) -> None:
        """SIGKILL anything still in the slot's cgroups (the pid namespace normally leaves nothing).

        The runner itself is never a target: its launcher thread lives in the slot's v1 cgroups, which
        makes cgroup.procs list the runner's pid."""
        for d in self.dirs:
            if d.kind == "v2" and (d.path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    _write(d.path / "cgroup.kill", "1")
                continue
            for _ in range(50):
                pids = _pids(d.path)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, 9)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.path.rmdir()
        self.dirs = []


class CgroupManager:
    """Finds the writable controllers once; makes one `SlotCgroup` per jail slot under a run-owned group."""

    def __init__(self, *, group: str, enabled: bool = True, root: Path = CGROUP_ROOT) -> None:
        self.group = group
        self.root = root
        self.bases: dict[str, Path] = {}
        self.problems: list[str] = []
        if enabled:
            self._discover()

    def _discover(self) -> None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError as exc:
            self.problems.append(f"cannot read /proc/self/cgroup: {exc}")
            return
        v1 = {"memory": "memory-v1", "pids": "pids-v1", "cpuacct": "cpuacct-v1", "cpu": "cpu-v1"}
        for ctrl, kind in v1.items():
            mount = self.root / ctrl
            own = _own_path(ctrl, proc_cgroup)
            if own is None or not (mount / "cgroup.procs").exists():
                continue
            _remove_stale(mount / own.lstrip("/"))
            base = mount / own.lstrip("/") / self.group
            try:
                base.mkdir(exist_ok=True)
            except OSError as exc:
                self.problems.append(f"{ctrl}: cannot create {base}: {exc}")
                continue
            self.bases[kind] = base
        if self.bases:
            return
        # Pure cgroup v2: needs a delegated subtree with the controllers enabled.
        controllers = self.root / "cgroup.controllers"
        own = _own_path("", proc_cgroup)
        if not controllers.exists() or own is None:
            return
        parent = self.root / own.lstrip("/")
        base = parent / self.group
        try:
            base.mkdir(exist_ok=True)
            available = (base / "cgroup.controllers").read_text().split()
            wanted = [c for c in ("memory", "pids", "cpu") if c in available]
            if wanted:
                _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            self.bases["v2"] = base
        except OSError as exc:
            self.problems.append(f"cgroup v2: cannot delegate under {parent}: {exc}")
            with contextlib.suppress(OSError):
                base.rmdir()

    def slot(self, name: str) -> SlotCgroup:
        slot = SlotCgroup(name=name)
        for kind, base in self.bases.items():
            path = base / name
            try:
                path.mkdir(exist_ok=True)
            except OSError as exc:
                self.problems.append(f"{kind}: cannot create {path}: {exc}")
                continue
            controller = kind.removesuffix("-v1") if kind != "v2" else ""
            mount = self.root / controller if controller else self.root
            hier = "/" + str(path.relative_to(mount))
            slot.dirs.append(_Dir(path=path, kind=kind, controller=controller, hier_path=hier))
        return slot

    def describe(self) -> dict[str, object]:
        return {
            "controllers": sorted(k.removesuffix("-v1") for k in self.bases),
            "bases": {k: str(v) for k, v in self.bases.items()},
            "problems": list(self.problems),
        }

    def close(self) -> None:
        for base in self.bases.values():
            for child in base.iterdir() if base.exists() else ():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()
        self.bases = {}


# Plain os calls, not pathlib and text files: a run reads and writes some twenty of these files, and at
# tens of microseconds each the Python wrappers were a visible part of the jail's per-run overhead.


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def _int(path: Path) -> int:
    try:
        return int(_read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def _pids(path: Path) -> list[int]:
    me = os.getpid()
    try:
        return [pid for pid in map(int, _read(path / "cgroup.procs").split()) if pid != me]
    except (OSError, ValueError):
        return []


def _remove_stale(parent: Path) -> None:
    """Groups left by runners that died without closing (`rote-sandbox-PID-N` with PID gone)."""
    with contextlib.suppress(OSError):
        for base in parent.glob("rote-sandbox-*"):
            pid = base.name.split("-")[2] if base.name.count("-") >= 3 else ""
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue
            for child in base.iterdir():
                if child.is_dir() and not _pids(child):
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()
