"""Why a run stopped: the pure policy that turns what the runner observed into one stop reason.

Nothing here touches the system. The jail gathers `Evidence` (the exit status, who killed it and why,
the cgroup counters, the workspace's state) and `classify` attributes the end of the run to exactly one
cause, so the same facts always give the same verdict and every rule is tested directly.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from rote.sandbox_runner.cgroup import SlotUsage
from rote.sandbox_runner.limits import Limits
from rote.streams.schemas import StopReason

__all__ = ["Evidence", "ExitStatus", "classify", "decode_monitor_status", "decode_wait_status"]

_NETWORK_MARKERS = (
    b"Network is unreachable",
    b"Temporary failure in name resolution",
    b"Name or service not known",
    b"No address associated with hostname",
)
_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"cannot allocate memory", b"out of memory")
_FILE_SIZE_MARKERS = (b"File too large",)


@dataclass(frozen=True)
class ExitStatus:
    """How the jail's pid 1 ended, and whether that is known or inferred.

    `exact` is True when the kernel said so (the pid 1's own wait status, read through its pidfd) and
    False when it had to be decoded from bubblewrap's monitor, whose exit status is 128+N both for a
    death by signal N and for a payload that itself exited with 128+N.
    """

    exit_code: int | None
    signal: int | None
    exact: bool = True


def decode_wait_status(status: int) -> ExitStatus:
    """A waitpid(2)-format status of the payload itself: unambiguous."""
    if os.WIFSIGNALED(status):
        return ExitStatus(None, os.WTERMSIG(status))
    if os.WIFEXITED(status):
        return ExitStatus(os.WEXITSTATUS(status), None)
    return ExitStatus(None, None)


def decode_monitor_status(status: int) -> ExitStatus:
    """bubblewrap's monitor's wait status, when the payload's own is unavailable (kernels before 6.15).

    The monitor exits 128+N when pid 1 died of signal N (the shell's convention), so 129-192 is read as a
    signal and marked inexact: a script that runs `exit 159` is indistinguishable here from a SIGSYS.
    """
    if os.WIFSIGNALED(status):
        return ExitStatus(None, os.WTERMSIG(status), exact=False)
    code = os.WEXITSTATUS(status)
    if 128 < code < 128 + 65:
        return ExitStatus(None, code - 128, exact=False)
    return ExitStatus(code, None, exact=True)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """Everything the runner observed about a finished run, as input to `classify`."""

    limits: Limits
    exit_code: int | None
    signal: int | None
    killed_for: str | None  # "timeout" | "output" | "cpu" | None
    cpu_seconds: float
    usage: SlotUsage
    loopback_packets: int
    workspace_full: bool
    file_limit_hit: bool
    stderr_tail: bytes
    #: False when the exit status was decoded from bubblewrap's monitor (128+N ambiguity).
    status_exact: bool = True
    #: A note from the workspace scan when it stopped at its depth or entry cap.
    scan_note: str = ""


def _signal_name(sig: int) -> str:
    return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else "?"


def classify(ev: Evidence) -> tuple[StopReason, str]:
    """Attribute the end of a run to one cause.

    Order matters: the kernel's own verdicts (a seccomp kill, an OOM kill) are certain and come first;
    the runner's kills (output, CPU budget, wall time) next; then limits that were hit and most likely made
    the payload fail. A limit that was hit by a script that still exited 0 is mentioned in the detail, not
    blamed.
    """
    lim = ev.limits
    failed = ev.killed_for is not None or ev.signal is not None or (ev.exit_code or 0) != 0
    notes: list[str] = []
    if ev.usage.pids_limit_hits:
        notes.append(f"the pids limit ({lim.pids}) refused {ev.usage.pids_limit_hits} forks")
    if ev.usage.memory_limit_hits and not ev.usage.oom_kills:
        notes.append(f"the memory limit was reached {ev.usage.memory_limit_hits} times")
    if ev.usage.cpu_throttled_seconds:
        notes.append(
            f"the {lim.cpu_cores:g}-core CPU quota held it back {ev.usage.cpu_throttled_seconds:.2f} s"
        )
    if not ev.status_exact and ev.signal is not None:
        notes.append(f"or it exited with status {128 + ev.signal}: this kernel cannot tell the two apart")
    if ev.scan_note:
        notes.append(ev.scan_note)
    note = ("; " + "; ".join(notes)) if notes else ""

    if ev.signal == signal.SIGSYS:
        return "seccomp", "killed by the seccomp filter: a forbidden system call (see docs/sandbox.md)" + note
    if ev.usage.oom_kills:
        return "memory", f"killed by the OOM killer at the {lim.memory_bytes} byte memory limit" + note
    if ev.killed_for == "output":
        return "output", f"output passed the {lim.output_bytes} byte limit; the jail was killed" + note
    if ev.killed_for == "cpu":
        return "cpu", (
            f"CPU time limit of {lim.cpu_seconds:g} s reached by all its processes together "
            f"({ev.cpu_seconds:.2f} s used); the jail was killed" + note
        )
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
    if ev.signal == signal.SIGXFSZ or (
        failed and (ev.file_limit_hit or any(m in ev.stderr_tail for m in _FILE_SIZE_MARKERS))
    ):
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
        return "signal", f"killed by signal {ev.signal} ({_signal_name(ev.signal)})" + note
    return "exited", f"exited with status {ev.exit_code}" + note
