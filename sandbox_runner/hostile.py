"""The hostile suite: programs that try to break out of, or take down, the jail, each with the stop reason
it must end with.

A program is one file (`.py` or `.sh`) whose header comments say what is expected:

    # expect: pids                       the stop reason the run must report
    # what: classic bash fork bomb       one line for docs/sandbox.md
    # limits: wall=2 pids=32             overrides of the suite's limits (Limits field names, short forms)
    # collect: result.txt                files the runner is asked to bring back (for symlink tricks)
    # exit: 159                          the exact exit status the run must report (no signal)

A program that gets somewhere it must not prints a line starting with `ESCAPED`. Containment means: the
expected stop reason, no ESCAPED line, and the host invariants checked around every run hold (the canary
file untouched and unread, the victim process alive, no connection reached the host's loopback service,
no process of the run's uid left behind, nothing collected that the payload did not write itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rote.errors import SandboxError
from rote.sandbox_runner.jail import Jail, JobSpec, Limits, RunResult
from rote.sandbox_runner.proc import processes_of

#: Limits every hostile program runs under unless its header says otherwise: small, so the suite is quick.
SUITE_LIMITS = Limits(
    wall_seconds=3.0,
    cpu_seconds=2.0,
    memory_bytes=96 * 1024 * 1024,
    pids=32,
    output_bytes=256 * 1024,
    file_bytes=4 * 1024 * 1024,
    open_files=64,
    workspace_bytes=8 * 1024 * 1024,
)

_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_SHORT = {
    "wall": "wall_seconds",
    "cpu": "cpu_seconds",
    "memory": "memory_bytes",
    "pids": "pids",
    "output": "output_bytes",
    "file": "file_bytes",
    "files": "open_files",
    "workspace": "workspace_bytes",
    "network": "network",
}


@dataclass(frozen=True, kw_only=True)
class HostileCase:
    name: str
    path: Path
    language: str
    expect: str
    what: str
    limits: Limits
    collect: tuple[str, ...] = ()
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class HostileOutcome:
    case: HostileCase
    result: RunResult
    problems: list[str] = field(default_factory=list)

    @property
    def contained(self) -> bool:
        return not self.problems


def _size(text: str) -> int:
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def parse_limits(spec: str, base: Limits = SUITE_LIMITS) -> Limits:
    changes: dict[str, Any] = {}
    for item in spec.split():
        key, _, value = item.partition("=")
        name = _SHORT.get(key, key)
        if name in ("wall_seconds", "cpu_seconds"):
            changes[name] = float(value)
        elif name == "network":
            changes[name] = value.lower() in ("1", "true", "yes", "on")
        elif name in ("pids", "open_files"):
            changes[name] = int(value)
        else:
            changes[name] = _size(value)
    return replace(base, **changes)


def load_suite(directory: Path) -> list[HostileCase]:
    cases = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".py", ".sh"):
            continue
        header: dict[str, str] = {}
        for line in path.read_text().splitlines()[:12]:
            if line.startswith("# ") and ":" in line:
                key, _, value = line[2:].partition(":")
                header.setdefault(key.strip(), value.strip())
        if "expect" not in header:
            raise SandboxError(f"{path.name}: no '# expect:' header")
        cases.append(
            HostileCase(
                name=path.stem,
                path=path,
                language="python" if path.suffix == ".py" else "bash",
                expect=header["expect"],
                what=header.get("what", ""),
                limits=parse_limits(header.get("limits", "")),
                collect=tuple(header.get("collect", "").split()),
                exit_code=int(header["exit"]) if "exit" in header else None,
            )
        )
    return cases


class HostBait:
    """Things on the host a hostile program goes after, and the checks that they were left alone."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rote-hostile-"))
        self.canary = self.dir / "canary.txt"
        self.secret = hashlib.sha256(os.urandom(16)).hexdigest()
        self.canary.write_text(self.secret)
        os.chmod(self.dir, 0o755)
        os.chmod(self.canary, 0o644)  # world-readable on purpose: only the jail's mount view may hide it
        self._canary_stat = self.canary.stat()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        self.victim = subprocess.Popen(["sleep", "3600"])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def env(self) -> dict[str, str]:
        return {
            "ROTE_HOST_PORT": str(self.port),
            "ROTE_CANARY_FILE": str(self.canary),
            "ROTE_CANARY_DIR": str(self.dir),
            "ROTE_HOST_HOME": str(Path.home()),
            "ROTE_HOST_PID": str(os.getpid()),
            "ROTE_VICTIM_PID": str(self.victim.pid),
            "ROTE_SECRET_HINT": self.secret[:8],
        }

    def problems(self, result: RunResult) -> list[str]:
        out = []
        if self.canary.read_text() != self.secret:
            out.append("the host canary file was modified")
        if sorted(p.name for p in self.dir.iterdir()) != ["canary.txt"]:
            out.append("a file appeared in the host canary directory")
        if self.victim.poll() is not None:
            out.append("the host victim process was killed")
        if self.connections:
            out.append(f"{self.connections} connections reached the host loopback service")
        blob = result.stdout + result.stderr + b"".join(result.collected.values())
        if self.secret.encode() in blob:
            out.append("the host canary's secret leaked into the run's output")
        return out

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=2)
        self.victim.kill()
        self.victim.wait()
        with contextlib.suppress(OSError):
            self.canary.unlink()
            self.dir.rmdir()


def run_case(jail: Jail, case: HostileCase, bait: HostBait) -> HostileOutcome:
    script = case.path.read_bytes()
    name = "prog.py" if case.language == "python" else "prog.sh"
    argv = ["python3", name] if case.language == "python" else ["bash", name]
    job = JobSpec(files={name: script}, argv=argv, collect=case.collect, limits=case.limits, env=bait.env())
    result = jail.run(job)
    problems: list[str] = []
    if result.stop_reason != case.expect:
        problems.append(f"stop reason {result.stop_reason!r}, expected {case.expect!r} ({result.detail})")
    if case.exit_code is not None and (result.exit_code, result.signal) != (case.exit_code, None):
        problems.append(
            f"ended with exit status {result.exit_code} / signal {result.signal}, "
            f"expected exit {case.exit_code}"
        )
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith(b"ESCAPED"):
            problems.append(line.decode(errors="replace")[:200])
    problems += bait.problems(result)
    if result.uid is not None:
        leftovers = list(processes_of(result.uid))
        if leftovers:
            problems.append(f"processes of uid {result.uid} survived the run: {leftovers}")
    for key, value in result.collected.items():
        if not value.startswith(b"payload:"):
            problems.append(f"collected {key!r} holds something the payload did not write: {value[:60]!r}")
    return HostileOutcome(case=case, result=result, problems=problems)


def run_suite(
    jail: Jail, cases: list[HostileCase], *, progress: Callable[[HostileOutcome], None] | None = None
) -> list[HostileOutcome]:
    bait = HostBait()
    try:
        outcomes = []
        for case in cases:
            outcome = run_case(jail, case, bait)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
        return outcomes
    finally:
        bait.close()


def outcome_row(o: HostileOutcome) -> dict[str, Any]:
    r = o.result
    return {
        "program": o.case.path.name,
        "what": o.case.what,
        "expected": o.case.expect,
        "stop_reason": r.stop_reason,
        "contained": o.contained,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "wall_seconds": round(r.wall_seconds, 3),
        "detail": r.detail,
        "problems": o.problems,
    }


def markdown_table(outcomes: list[HostileOutcome]) -> str:
    lines = [
        "| # | program | attack | expected | outcome | contained |",
        "|---|---|---|---|---|---|",
    ]
    for i, o in enumerate(outcomes, 1):
        r = o.result
        status = f"exit {r.exit_code}" if r.signal is None else f"signal {r.signal}"
        detail = r.detail.replace("|", "\\|")
        lines.append(
            f"| {i} | `{o.case.path.name}` | {o.case.what} | {o.case.expect} | "
            f"{r.stop_reason} ({status}, {r.wall_seconds:.2f} s): {detail} | "
            f"{'yes' if o.contained else 'NO'} |"
        )
    return "\n".join(lines)


def iter_default_suite() -> Iterator[Path]:
    """The checkout's tests/hostile/, when running from a source tree."""
    here = Path(__file__).resolve().parent.parent / "tests" / "hostile"
    if here.is_dir():
        yield here
