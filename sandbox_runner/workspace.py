"""The jail's workspace on the host side: a size-capped tmpfs per run, filled with the job's files before the
run, and after it scanned for what the payload did to it and read for the files the job collects.

Everything here treats the workspace as hostile once the payload has run: it may hold symlinks to host
files, FIFOs, devices, 16 000 entries or directories nested thousands deep (paths longer than PATH_MAX).
So nothing follows a link, every directory is opened relative to its parent (`O_NOFOLLOW`, `dir_fd`),
nothing recurses on the Python stack, and the scan stops at a depth and an entry cap. The runner needs no
capability to write here beyond CAP_CHOWN: the tmpfs is mounted owned by root, filled, and only then
handed to the run's uid; reading it back after the run takes CAP_DAC_READ_SEARCH (the payload may have
chmod'ed things 000).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rote.errors import SandboxError

__all__ = [
    "MAX_COLLECT_BYTES",
    "SCAN_MAX_DEPTH",
    "SCAN_MAX_ENTRIES",
    "DiskState",
    "collect",
    "disk_state",
    "mount_tmpfs",
    "populate",
    "safe_relpath",
    "umount",
]

MAX_COLLECT_BYTES = 8 * 1024 * 1024
#: The post-run scan looks this deep and at this many entries, then stops and says so. The tmpfs has
#: 16 384 inodes, so the entry cap is reached only by a workspace that is almost all entries; the depth
#: cap keeps the scan's open directories (one descriptor per level) bounded.
SCAN_MAX_DEPTH = 64
SCAN_MAX_ENTRIES = 20_000
WORKSPACE_INODES = 16_384

_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MNT_DETACH = 0x2
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(path: Path, *, size: int) -> None:
    """Mount the run's workspace: root-owned until `populate` hands it to the run's uid."""
    opts = f"size={size},mode=0700,uid=0,gid=0,nr_inodes={WORKSPACE_INODES}".encode()
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"cannot mount the workspace tmpfs at {path}: {os.strerror(err)}")


def umount(path: Path) -> None:
    """Detach the workspace (lazily: a process still holding it cannot keep the runner waiting)."""
    _libc.umount2(str(path).encode(), _MNT_DETACH)


def safe_relpath(name: str) -> PurePosixPath:
    """A job's file name as a path that cannot leave the workspace, or SandboxError."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\0" in name:
        raise SandboxError(f"workspace path {name!r} must be relative and stay inside the workspace")
    return p


def populate(ws: Path, files: dict[str, bytes], *, uid: int) -> None:
    """Write the job's files into the fresh (root-owned) workspace, then give all of it to the run's uid.

    Created as root and chowned afterwards, so the runner needs CAP_CHOWN only, not CAP_DAC_OVERRIDE or
    CAP_FOWNER; the payload cannot interfere, it has not started yet.
    """
    made: list[Path] = []
    tmp = ws / ".tmp"
    tmp.mkdir(mode=0o700)
    made.append(tmp)
    for name, data in files.items():
        rel = safe_relpath(name)
        parent = ws
        for part in rel.parts[:-1]:
            parent = parent / part
            if not parent.exists():
                parent.mkdir(mode=0o755)
                made.append(parent)
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
    for path in made:
        os.chown(path, uid, uid, follow_symlinks=False)
    os.chown(ws, uid, uid)


@dataclass(frozen=True)
class DiskState:
    """What the payload left in its workspace, as evidence for the stop reason."""

    full: bool
    file_limit_hit: bool
    entries: int = 0
    #: Why the scan stopped early ("" when it saw everything), for the run's detail.
    truncated: str = ""


def disk_state(ws: Path, file_bytes: int) -> DiskState:
    """Whether the workspace filled up (bytes or inodes) and whether any file reached `file_bytes`.

    Iterative, descriptor-relative and capped: a payload that nests 1,100 (or 100,000) directories makes
    this stop at `SCAN_MAX_DEPTH` and say so; it never recurses, never follows a link and never builds a
    path longer than one name.
    """
    try:
        st = os.statvfs(ws)
    except OSError:
        return DiskState(full=False, file_limit_hit=False)
    full = st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0
    if not file_bytes:
        return DiskState(full=full, file_limit_hit=False)
    try:
        root = os.open(ws, _DIR_FLAGS | os.O_NOFOLLOW)
    except OSError:
        return DiskState(full=full, file_limit_hit=False)
    hit = False
    entries = 0
    truncated = ""
    stack: list[tuple[int, Any]] = []  # (directory fd, its os.scandir iterator)
    try:
        stack.append((root, os.scandir(root)))
        while stack:
            fd, it = stack[-1]
            entry = next(it, None)
            if entry is None:
                it.close()
                os.close(fd)
                stack.pop()
                continue
            entries += 1
            if entries > SCAN_MAX_ENTRIES:
                truncated = f"the workspace scan stopped at {SCAN_MAX_ENTRIES} entries"
                break
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(est.st_mode) and est.st_size >= file_bytes:
                hit = True
                break
            if not stat.S_ISDIR(est.st_mode):
                continue
            if len(stack) >= SCAN_MAX_DEPTH:
                truncated = f"the workspace scan did not look deeper than {SCAN_MAX_DEPTH} directories"
                continue
            try:
                child = os.open(entry.name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                continue
            try:
                stack.append((child, os.scandir(child)))
            except OSError:
                os.close(child)
    finally:
        for fd, it in reversed(stack):
            with contextlib.suppress(OSError):
                it.close()
            os.close(fd)
    return DiskState(full=full, file_limit_hit=hit, entries=entries, truncated=truncated)


def collect(ws: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read result files without following anything the payload planted: every component is opened with
    O_NOFOLLOW relative to its parent, and only regular files are read, up to a cap."""
    out: dict[str, bytes] = {}
    for name in names:
        rel = safe_relpath(name)
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
            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
                raise SandboxError(f"cannot collect {name!r}: {exc}") from exc
        finally:
            for fd in reversed(fds):
                os.close(fd)
    return out
