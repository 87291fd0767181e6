"""A slot's launcher: one runner thread that becomes the slot's uid, lives in the slot's cgroups, and starts
every jail of that slot with bubblewrap directly.

Why a thread. Starting a jail used to be `setpriv` (drop to the uid) exec'ing `prlimit` (set the rlimits)
exec'ing bubblewrap, and then moving bubblewrap's pid 1 into the slot's cgroups. The two helper execs cost
about 2 ms of CPU per run, and on cgroup v1 each move waits for an RCU grace period (5-11 ms here). On
Linux credentials and cgroup membership belong to each thread, and a child starts with those of the
thread that made it:

- the thread enters the slot's v1 cgroups once (cgroup v1 lets single threads move), so every jail it
  starts is born inside them: no migration per run (on cgroup v2, where memory and pids are per process,
  the runner still moves each run's bubblewrap, see `jail.py`);
- it drops its own credentials once, with raw system calls (glibc's setresuid() would change every thread
  of the runner): no supplementary groups, real/effective/saved gid and uid the slot's, no capabilities
  left, and no_new_privs. What it starts runs as the slot's uid from the first instruction, as `setpriv`
  made it before;
- being that uid, it may set the rlimits of its own jail's pid 1 with prlimit(2) while bubblewrap holds
  it before exec. The runner's root threads could not: that needs CAP_SYS_RESOURCE, which a runner in a
  container (this machine) may not have. Limits can only be lowered without it, never raised, so the
  payload cannot undo them.

Side effects, all intended: changing a thread's uid makes the whole runner process non-dumpable, so no
unprivileged process, the slot's uid included, can ptrace it or read its /proc files; and the thread's
own user memory stays charged to the runner's memory cgroup (the mm owner's), not the slot's.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from rote.errors import SandboxError
from rote.sandbox_runner.cgroup import SlotCgroup

__all__ = ["SlotLauncher"]

T = TypeVar("T")

#: (setgroups, setresgid, setresuid) per machine: x86_64 from asm/unistd_64.h, aarch64 from
#: asm-generic/unistd.h. The seccomp filter supports the same two architectures.
_CRED_SYSCALLS: dict[str, tuple[int, int, int]] = {
    "x86_64": (116, 119, 117),
    "amd64": (116, 119, 117),
    "aarch64": (159, 149, 147),
    "arm64": (159, 149, 147),
}
_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)


def _drop_thread_credentials(uid: int) -> None:
    """Make the calling thread (only it) `uid`/`uid` with no groups, no capabilities and no_new_privs."""
    numbers = _CRED_SYSCALLS.get(platform.machine().lower())
    if numbers is None:
        raise SandboxError(f"no credential system call numbers for {platform.machine()!r}")
    setgroups, setresgid, setresuid = numbers
    for name, nr, args in (
        ("setgroups", setgroups, (0, None)),
        ("setresgid", setresgid, (uid, uid, uid)),
        ("setresuid", setresuid, (uid, uid, uid)),
    ):
        if _libc.syscall(nr, *args) != 0:
            err = ctypes.get_errno()
            raise SandboxError(f"cannot drop the launcher thread to uid {uid}: {name}: {os.strerror(err)}")
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"cannot set no_new_privs on the launcher thread: {os.strerror(err)}")
    _check_thread_credentials(uid)


def _check_thread_credentials(uid: int) -> None:
    """The thread is the slot's uid and nothing else; checked before every launch (fail closed)."""
    ids = (uid, uid, uid)
    if os.getresuid() != ids or os.getresgid() != ids or os.getgroups():
        raise SandboxError(
            f"the launcher thread is not uid/gid {uid} without groups: uids {os.getresuid()}, "
            f"gids {os.getresgid()}, groups {os.getgroups()}"
        )
    with open("/proc/thread-self/status") as fh:
        for line in fh:
            if line.startswith(("CapPrm:", "CapEff:", "NoNewPrivs:")):
                key, value = line.split(":", 1)
                wanted = "1" if key == "NoNewPrivs" else "0"
                if int(value.strip(), 16 if key != "NoNewPrivs" else 10) != int(wanted):
                    raise SandboxError(f"the launcher thread has {key} {value.strip()}")


def _launch(uid: int, args: list[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    _check_thread_credentials(uid)
    # vfork + exec straight into bubblewrap: the child has this thread's credentials and cgroups.
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=fds,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )


def _set_rlimits(pid: int, limits: list[tuple[int, int]]) -> None:
    for res, value in limits:
        try:
            resource.prlimit(pid, res, (value, value))
            got = resource.prlimit(pid, res)
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot set rlimit {res} to {value} on the jail's pid 1: {exc}") from exc
        if got != (value, value):
            raise SandboxError(f"rlimit {res} of the jail's pid 1 is {got}, expected {value}")


class SlotLauncher:
    """The thread that starts one slot's jails. Construction raises `SandboxError` if it cannot be the
    slot's uid; whether it is in the slot's cgroups is `in_cgroups`."""

    def __init__(self, *, uid: int, cgroup: SlotCgroup) -> None:
        self.uid = uid
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"rote-jail-{uid}")
        try:
            # Cgroups first: moving a thread takes root, which the thread gives up next.
            self.in_cgroups = self._call(cgroup.enter_thread)
            self._call(_drop_thread_credentials, uid)
        except BaseException:
            self._pool.shutdown()
            raise

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        return self._pool.submit(fn, *args).result()

    def launch(self, args: list[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
        """Start bubblewrap as the slot's uid (in the slot's cgroups when `in_cgroups`)."""
        return self._call(_launch, self.uid, args, fds)

    def set_rlimits(self, pid: int, limits: list[tuple[int, int]]) -> None:
        """Set `(resource, value)` as soft and hard limit on `pid` (the jail's blocked pid 1) and read them
        back; any failure is a `SandboxError`."""
        self._call(_set_rlimits, pid, limits)

    def close(self) -> None:
        # The thread exits, and so leaves the slot's cgroups, before they are removed.
        self._pool.shutdown(wait=True)
