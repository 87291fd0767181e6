"""The executor's side of the run host: start it under the runner's uid, hand it runs, enforce the timeout.

One `HostProcess` serves one automation version (one host per automation: runs of different automations,
possibly of different people, never share a browser or a process). It is reused for that automation's
next runs (a fresh browser context each run), recycled after `max_runs` runs, and killed together with
its whole process group (Playwright's driver and every Chromium process) when a run exceeds its wall
timeout or the host dies. Talking to it is blocking I/O on pipes; the asyncio executor calls it from a
worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Isolation:
    """How a run host is confined (docs/automation.md, "Isolation policy")."""

    #: uid/gid the host runs as when the executor is root (None: the executor's own, which must not be 0).
    uid: int | None = 60999
    gid: int | None = 60999
    #: CPU seconds for the host's whole life (recycled before it adds up), open files, bytes per file,
    #: processes+threads of the uid (Chromium needs a few hundred).
    cpu_seconds: int = 900
    nofile: int = 4096
    fsize_bytes: int = 256 << 20
    nproc: int = 2048
    #: Seconds for Chromium to start.
    start_timeout: float = 60.0


@dataclass
class HostResult:
    outcome: str  # succeeded | failed | timeout | error
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    failed_step: int | None = None
    cpu_seconds: float | None = None


class HostError(Exception):
    """The host could not be started or died: the run did not happen (or not completely)."""


def _effective_ids(iso: Isolation) -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None  # an unprivileged executor runs hosts under its own uid
    if iso.uid is None or iso.uid == 0:
        raise HostError("refusing to run automations as root: set ROTE_RUNNER_UID to an unprivileged uid")
    return iso.uid, iso.gid if iso.gid is not None else iso.uid


def _others_can_run(path: str) -> bool:
    """Whether a user who is neither owner nor in the group can reach and run `path` (mode bits only)."""
    p = Path(os.path.realpath(path))
    try:
        for d in p.parents:
            if not d.stat().st_mode & 0o001:
                return False
        return bool(p.stat().st_mode & 0o005 == 0o005)
    except OSError:
        return False


def host_python(unprivileged: bool) -> tuple[str, list[str]]:
    """The interpreter for run hosts and its module path (the venv's packages, not the base's stdlib).

    An unprivileged uid cannot run an interpreter under root's home (a pyenv build in /root): then the
    system's /usr/bin/python3 of the same minor version runs the host on the same venv packages (same
    CPython ABI, so compiled wheels load).
    """
    base = os.path.realpath(sys.base_prefix)
    paths = [
        p
        for p in sys.path
        if p
        and Path(p).is_dir()
        and not (sys.base_prefix != sys.prefix and os.path.realpath(p).startswith(base + os.sep))
    ]
    if unprivileged:
        import rote

        home = Path(rote.__file__).resolve().parent.parent
        if not _others_can_run(str(home)):
            raise HostError(
                f"an unprivileged uid cannot read rote's code under {home}: install or check out rote "
                "where other users can read it (not under root's home)"
            )
    if not unprivileged or _others_can_run(sys.executable):
        return sys.executable, paths
    system = "/usr/bin/python3"
    if _others_can_run(system):
        probe = subprocess.run(
            [system, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.stdout.strip() == "{}.{}".format(*sys.version_info[:2]):
            return system, paths
    raise HostError(
        f"the interpreter {sys.executable} is not reachable by an unprivileged uid and no system "
        f"python{sys.version_info[0]}.{sys.version_info[1]} exists: install rote outside root's home"
    )


class HostProcess:
    def __init__(
        self,
        *,
        root: Path,
        sites: list[str],
        allowed: set[tuple[str, int]],
        browser: bool,
        step_timeout: float,
        chromium: str,
        isolation: Isolation,
        max_runs: int = 50,
    ) -> None:
        self.root = root
        self.sites = sites
        self.allowed = allowed
        self.browser = browser
        self.step_timeout = step_timeout
        self.chromium = chromium
        self.isolation = isolation
        self.max_runs = max_runs
        self.runs = 0
        self.work: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=20)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        uid, gid = _effective_ids(self.isolation)
        self.work = Path(tempfile.mkdtemp(prefix="rote-run-host-"))
        if uid is not None:
            os.chown(self.work, uid, gid if gid is not None else uid)
        os.chmod(self.work, 0o700)
        python, pypath = host_python(uid is not None)
        argv = [
            python,
            "-m",
            "rote.runner.host",
            "--root",
            str(self.root),
            "--work",
            str(self.work),
            "--chromium",
            self.chromium,
            "--step-timeout",
            str(self.step_timeout),
            "--cpu",
            str(self.isolation.cpu_seconds),
            "--nofile",
            str(self.isolation.nofile),
            "--fsize",
            str(self.isolation.fsize_bytes),
            "--nproc",
            str(self.isolation.nproc if uid is not None else 0),
        ]
        for s in self.sites:
            argv += ["--site", s]
        for host, port in sorted(self.allowed):
            argv += ["--allow", f"{host}:{port}"]
        if self.browser:
            argv.append("--browser")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(pypath),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        kwargs: dict[str, Any] = {}
        if uid is not None:
            kwargs.update(user=uid, group=gid, extra_groups=[])
        try:
            self._proc = self._spawn(argv, env, kwargs)
        except OSError as exc:
            self._cleanup()
            raise HostError(f"the run host could not be started: {exc}") from None
        assert self._proc.stdout is not None and self._proc.stderr is not None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()
        first = self._next(self.isolation.start_timeout)
        if first is None or first.get("event") != "ready":
            why = (first or {}).get("error") or self._why_dead()
            self.kill()
            raise HostError(f"the run host did not start: {why}")

    def _spawn(self, argv: list[str], env: dict[str, str], kwargs: dict[str, Any]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=str(self.work),
            start_new_session=True,  # its own process group: a timeout kills Chromium too
            **kwargs,
        )

    def _read(self, stream: IO[str]) -> None:
        # each reader closes its pipe at end of file (left to the garbage collector it is a ResourceWarning
        # in the run log of every `rote run` whose executor replaced a host)
        with stream:
            for line in stream:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    self._lines.put(obj)
        self._lines.put(None)

    def _drain(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._stderr.append(line.rstrip()[:300])

    def _next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return {"event": "timeout"}

    def _why_dead(self) -> str:
        code = self._proc.poll() if self._proc else None
        tail = " | ".join(list(self._stderr)[-3:])
        return f"exit status {code}" + (f": {tail}" if tail else "")

    def run(self, run_id: str, script: str, params: dict[str, str], timeout: float) -> HostResult:
        """One run; never raises for what the run did, only `HostError` when the host is unusable."""
        if not self.alive:
            self.start()
        assert self._proc is not None and self._proc.stdin is not None and self.work is not None
        self.runs += 1
        path = self.work / f"automation-{self.runs}.py"
        path.write_text(script, encoding="utf-8")
        if self.isolation.uid is not None and os.geteuid() == 0:
            os.chown(path, self.isolation.uid, self.isolation.gid or self.isolation.uid)
        try:
            self._proc.stdin.write(
                json.dumps({"run_id": run_id, "script": str(path), "params": params}) + "\n"
            )
            self._proc.stdin.flush()
        except OSError:
            self.kill()
            raise HostError(f"the run host died: {self._why_dead()}") from None
        deadline = time.monotonic() + timeout
        current: int | None = None
        while True:
            msg = self._next(deadline - time.monotonic())
            if msg is None:
                why = self._why_dead()
                self.kill()
                return HostResult(outcome="error", error=f"the run host died: {why}", failed_step=current)
            if msg.get("event") == "step":
                current = int(msg["step"])
                continue
            if msg.get("event") == "timeout":
                self.kill()
                where = f" at step {current}" if current is not None else ""
                return HostResult(
                    outcome="timeout", error=f"run exceeded {timeout:g} s{where}", failed_step=current
                )
            if msg.get("event") == "done":
                with contextlib.suppress(OSError):
                    path.unlink()
                if self.runs >= self.max_runs:
                    self.close()
                return HostResult(
                    outcome=str(msg.get("outcome")),
                    steps=list(msg.get("steps") or []),
                    error=msg.get("error"),
                    failed_step=msg.get("failed_step"),
                    cpu_seconds=msg.get("cpu_seconds"),
                )

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        self._lines = queue.Queue()
        self._cleanup()

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            self._cleanup()
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        self.kill()

    def _cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
        self.runs = 0
