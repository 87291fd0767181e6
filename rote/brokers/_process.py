"""Child-process plumbing shared by the brokers: spawn, log, stop, and never leak.

A test run or a `rote run` that dies half-way must not leave a JVM or a Tansu process holding ports
and memory on a machine that eight people share. Three layers make sure of that: the broker runs in
its own process group (so stopping it also stops anything it forked), a Linux parent-death signal
kills it if this Python process is killed outright, and an atexit hook stops whatever is still
running at a normal interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from rote.errors import BrokerError


class BrokerUnavailable(BrokerError):
    """Something the broker needs (binary, Java, Maven) is not on this machine.

    Kept apart from other start failures so that tests may skip on a bare laptop but still fail loudly
    when a broker that *is* installed refuses to start.
    """


_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now.

    Another process can still grab it before the broker binds, so callers retry with a new port when
    the broker dies at start-up.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A pre-exec hook that asks the kernel to SIGKILL the child when its parent goes away.

    This is the only layer that survives `kill -9` of the Python process (atexit does not run then).
    The check of getppid() closes the race where the parent died between fork and prctl.
    """

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


class ManagedProcess:
    """One long-running child with its output in a log file and a bounded, escalating stop."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        preexec = None
        if die_with_parent and sys.platform.startswith("linux"):
            # PDEATHSIG fires when the *thread* that forked exits; starting from the main thread (or a
            # thread that outlives the broker) is the caller's side of the bargain.
            preexec = _die_with_parent(os.getpid())
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            self._log.close()
            raise BrokerError(f"could not start {self.argv[0]}: {exc}") from exc
        self.pid = self.popen.pid
        _LIVE.add(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            self._log.flush()
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        # The child is its own session leader, so its pid is the process-group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, *, timeout: float) -> int:
        """SIGTERM the group, wait at most `timeout` s, then SIGKILL; returns the exit code."""
        try:
            if self.alive():
                self._signal_group(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.popen.wait(timeout=10)
            # Anything the broker forked into its group goes too, even if the leader exited by itself.
            self._signal_group(signal.SIGKILL)
            return self.popen.returncode
        finally:
            _LIVE.discard(self)
            if not self._log.closed:
                self._log.close()


class _LiveSet:
    """Processes still running, for the atexit sweep; a lock because fixtures may run in threads."""

    def __init__(self) -> None:
        self._items: set[ManagedProcess] = set()
        self._lock = threading.Lock()

    def add(self, proc: ManagedProcess) -> None:
        with self._lock:
            self._items.add(proc)

    def discard(self, proc: ManagedProcess) -> None:
        with self._lock:
            self._items.discard(proc)

    def snapshot(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._items)


_LIVE = _LiveSet()


def _stop_all_at_exit() -> None:
    for proc in _LIVE.snapshot():
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


atexit.register(_stop_all_at_exit)


def live_processes() -> list[ManagedProcess]:
    """Brokers this process started and has not stopped yet (tests use it to prove nothing leaks)."""
    return _LIVE.snapshot()


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
