"""What the runner learns about the jail's processes from the kernel: who runs as a uid, pid 1's uid, its
loopback counters, and how pid 1 really ended.

The last one matters because bubblewrap's monitor is the jail's pid 1's parent, not the runner, and it
reports pid 1's death by signal N as exit status 128+N: a payload that itself exits with 159 looks like a
seccomp kill (SIGSYS is 31). Since Linux 6.15 a pidfd keeps its process's wait status after the process has
been reaped (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`), so the runner opens one on pid 1 while bubblewrap
still holds it before exec and reads the exact status afterwards; on older kernels it falls back to the
monitor's status and says the two cannot be told apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rote.errors import SandboxError

__all__ = ["PidExit", "check_uid", "loopback_packets", "processes_of", "read_child_pid", "uid_cpu_seconds"]

_libc = ctypes.CDLL(None, use_errno=True)

# include/uapi/linux/pidfd.h: struct pidfd_info (version 0, 64 bytes) and its ioctl.
_PIDFD_INFO_SIZE = 64
_PIDFD_INFO_EXIT = 1 << 3
_PIDFD_GET_INFO = (3 << 30) | (_PIDFD_INFO_SIZE << 16) | (0xFF << 8) | 11  # _IOWR(0xFF, 11, pidfd_info)
_EXIT_CODE_OFFSET = 16 + 11 * 4  # mask, cgroupid, then eleven u32 ids before `__s32 exit_code`


def processes_of(uid: int) -> Iterator[int]:
    """Pids of every host process owned by `uid` (the jail's processes are all visible from the host)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    yield int(entry.name)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def uid_cpu_seconds(uid: int) -> float:
    """CPU time of every live process of `uid` plus what their waited-for children used (/proc/PID/stat
    utime + stime + cutime + cstime): the jail's CPU where there is no CPU cgroup to count it. A child
    reaped without a wait (SIGCHLD ignored) takes its time with it, which is why the cgroup is preferred.
    """
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid != uid:
                continue
            with open(f"{entry.path}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rpartition(b") ")[2].split()
        with contextlib.suppress(ValueError, IndexError):
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / _CLK_TCK


def check_uid(pid: int, uid: int) -> None:
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


def loopback_packets(net_dev: Any) -> int:
    """Packets on the jail's own loopback: with no network that is where every connection attempt lands."""
    if net_dev is None:
        return 0
    try:
        net_dev.seek(0)
        text = net_dev.read().decode()
    except (OSError, UnicodeDecodeError):
        return 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            fields = rest.split()
            with contextlib.suppress(ValueError):
                return int(fields[9]) if len(fields) > 9 else 0  # tx packets
    return 0


class PidExit:
    """A pidfd on one process, opened while it lives, that yields its exact wait status once it is gone."""

    def __init__(self, pid: int) -> None:
        self.fd: int | None = None
        with contextlib.suppress(OSError):
            self.fd = os.pidfd_open(pid)

    def status(self) -> int | None:
        """The waitpid(2)-format status, or None where the kernel does not keep it (before 6.15)."""
        if self.fd is None:
            return None
        buf = bytearray(_PIDFD_INFO_SIZE)
        struct.pack_into("<Q", buf, 0, _PIDFD_INFO_EXIT)
        cbuf = (ctypes.c_char * _PIDFD_INFO_SIZE).from_buffer(buf)
        if _libc.ioctl(self.fd, _PIDFD_GET_INFO, cbuf) != 0:
            return None
        (mask,) = struct.unpack_from("<Q", buf, 0)
        if not mask & _PIDFD_INFO_EXIT:
            return None
        (code,) = struct.unpack_from("<i", buf, _EXIT_CODE_OFFSET)
        return int(code)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def read_child_pid(fd: int, proc: subprocess.Popen[bytes], *, deadline: float) -> int:
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
