"""The lifecycle both local brokers share: a work directory, a start that retries port races, a stop.

Tansu and Apache Kafka differ only in how one attempt is launched; how attempts are retried, how a
stop is bounded and timed, and when the temporary directory goes must not drift apart between them,
because the tests and `rote run` treat the two as interchangeable.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from rote.brokers._process import ManagedProcess
from rote.brokers.admin import wait_ready
from rote.brokers.security import KafkaSecurity
from rote.errors import BrokerError


class ManagedConfig(Protocol):
    """The settings of `TansuConfig` and `KafkaConfig` that the shared lifecycle reads."""

    @property
    def port(self) -> int | None: ...

    @property
    def start_timeout(self) -> float: ...

    @property
    def stop_timeout(self) -> float: ...

    @property
    def start_attempts(self) -> int: ...

    @property
    def work_dir(self) -> Path | None: ...

    @property
    def keep_work_dir(self) -> bool: ...


ConfigT = TypeVar("ConfigT", bound=ManagedConfig)


class ManagedBroker(Generic[ConfigT]):
    """A broker child process owned by this Python process, usable as a context manager.

    Subclasses implement `start()` with `_prepare_work_dir()` and `_start_attempts()`.
    """

    kind = ""

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self.bootstrap = ""
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._process: ManagedProcess | None = None
        self._work_dir: Path | None = None
        self._own_work_dir = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive()

    def start(self) -> Self:
        raise NotImplementedError

    def _check_not_started(self) -> None:
        if self._process is not None:
            raise BrokerError(f"this {type(self).__name__} is already started")

    def _prepare_work_dir(self, prefix: str) -> Path:
        """The configured work directory, or a fresh temporary one that `stop()` will remove."""
        if self.config.work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=prefix))
            self._own_work_dir = True
        else:
            self._work_dir = self.config.work_dir
            self._work_dir.mkdir(parents=True, exist_ok=True)
        return self._work_dir

    def admin_security(self) -> KafkaSecurity | None:
        """Credentials that may administer this broker; None: this process's own Kafka security."""
        return None

    def _start_attempts(
        self, launch: Callable[[], tuple[ManagedProcess, str]], *, what: str
    ) -> BrokerError | None:
        """Launch until the broker answers; None on success, else the last readiness error.

        `launch` spawns one attempt and returns the process with its bootstrap address. Only a
        broker that exited by itself on a port we picked is worth another try: a fixed port or a
        hang will not get better.
        """
        cfg = self.config
        began = time.monotonic()
        last_error: BrokerError | None = None
        for attempt in range(1, max(1, cfg.start_attempts) + 1):
            proc, bootstrap = launch()
            self._process = proc
            self.bootstrap = bootstrap
            try:
                wait_ready(
                    bootstrap,
                    timeout=cfg.start_timeout,
                    process=proc,
                    what=what,
                    security=self.admin_security(),
                )
            except BrokerError as exc:
                last_error = exc
                exited_by_itself = not proc.alive()
                proc.stop(timeout=cfg.stop_timeout)
                if cfg.port is not None or not exited_by_itself or attempt == cfg.start_attempts:
                    break
                continue
            self.start_seconds = time.monotonic() - began
            return None
        self._process = None
        return last_error

    def stop(self) -> None:
        if self._process is None:
            return
        began = time.monotonic()
        try:
            self._process.stop(timeout=self.config.stop_timeout)
        finally:
            self.stop_seconds = time.monotonic() - began
            self._process = None
            if self._own_work_dir and not self.config.keep_work_dir and self._work_dir is not None:
                shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
