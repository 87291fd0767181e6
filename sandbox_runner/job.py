"""What the jail is asked to run (`JobSpec`) and what it reports (`RunResult`), and the checks a job must
pass before anything is set up for it. Plain data, no system calls: the service and the tests build and
read these without a jail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rote.errors import SandboxError
from rote.sandbox_runner.limits import Limits
from rote.sandbox_runner.workspace import safe_relpath
from rote.streams.schemas import StopReason

__all__ = ["MAX_ARGV_ENV_BYTES", "MAX_FILES_BYTES", "JobSpec", "RunResult", "check_job"]

#: Total bytes of argv plus environment a job may hand the payload; the kernel's own cap is larger, but a
#: job this big is a bug or an attack, and refusing it early gives a clear error instead of E2BIG.
MAX_ARGV_ENV_BYTES = 128 * 1024
MAX_FILES_BYTES = 32 * 1024 * 1024


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


def check_job(job: JobSpec) -> None:
    """Refuse a job that is itself bad (a bug or an attack in what asked for the run), before any set-up."""
    if not job.argv:
        raise SandboxError("the job has no command")
    size = sum(len(a.encode()) + 1 for a in job.argv) + sum(
        len(k.encode()) + len(v.encode()) + 2 for k, v in job.env.items()
    )
    if size > MAX_ARGV_ENV_BYTES:
        raise SandboxError(f"argv and environment are {size} bytes; the limit is {MAX_ARGV_ENV_BYTES}")
    if any("\0" in a for a in job.argv) or any(
        "\0" in k + v or "=" in k or not k for k, v in job.env.items()
    ):
        raise SandboxError("argv or environment contains a NUL byte or a bad variable name")
    if sum(len(b) for b in job.files.values()) > min(MAX_FILES_BYTES, job.limits.workspace_bytes):
        raise SandboxError("the job's files do not fit in the workspace")
    for name in (*job.files, *job.collect):
        safe_relpath(name)
