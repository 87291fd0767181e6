"""The run archive: every event a `rote run` saw, one JSONL file per topic.

The embedded broker keeps nothing after it stops (memory storage), so `rote run` records each topic
as it flows; `rote report` and `rote automations` rebuild their views from the archive with the same
pure logic the agents use. Each line is one event exactly as it travelled on the wire.

A run records into a fresh staging folder (`new_run_dir`) and only a run that finished is swapped in as
`last-run` (`publish`); a failed or interrupted run is kept aside as `failed-run` (`keep_failed`), so the
last good archive, and every view built on it, survives a bad input or a dead broker.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

from rote.streams.schemas import SCHEMAS, Event, decode
from rote.streams.topics import BY_NAME

E = TypeVar("E", bound=Event)


def default_state_dir() -> Path:
    return Path(os.environ.get("ROTE_STATE_DIR", ".rote"))


def last_run_dir() -> Path:
    return default_state_dir() / "last-run"


LAST_RUN = "last-run"
FAILED_RUN = "failed-run"
_STAGING = ".runs"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(staging: Path) -> None:
    """Remove staging folders left by runs that were killed (their process is gone); a killed run has no
    archive worth keeping, and its folder would otherwise stay for ever."""
    for entry in staging.iterdir():
        pid = entry.name.split("-")[1] if entry.name.count("-") >= 1 else ""
        if entry.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def new_run_dir(state_dir: Path) -> Path:
    """A fresh, empty folder for one run's archive, beside `last-run` (same file system, so the swap is a
    rename)."""
    staging = state_dir / _STAGING
    staging.mkdir(parents=True, exist_ok=True)
    _sweep(staging)
    path = staging / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    n = 0
    while True:
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def _replace(src: Path, dest: Path) -> None:
    """Move `src` to `dest`, replacing a folder already there only once `src` is in place beside it."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    try:
        src.rename(dest)
    except OSError:
        if old.exists():
            old.rename(dest)  # put the previous one back: never leave no archive at all
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def publish(run_dir: Path, state_dir: Path) -> Path:
    """Make a finished run's archive the `last-run` one; returns its new path."""
    dest = state_dir / LAST_RUN
    _replace(run_dir, dest)
    return dest


def keep_failed(run_dir: Path, state_dir: Path) -> Path:
    """Keep a failed run's partial archive as `failed-run` (for diagnosis), leaving `last-run` untouched."""
    dest = state_dir / FAILED_RUN
    _replace(run_dir, dest)
    return dest


def topic_file(run_dir: Path, topic: str) -> Path:
    if topic not in BY_NAME:
        raise KeyError(f"unknown topic {topic!r}")
    return run_dir / f"{topic}.jsonl"


def read_raw(run_dir: Path, topic: str) -> Iterator[dict[str, Any]]:
    path = topic_file(run_dir, topic)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@overload
def read_events(run_dir: Path, topic: str) -> Iterator[Event]: ...
@overload
def read_events(run_dir: Path, topic: str, model: type[E]) -> Iterator[E]: ...
def read_events(run_dir: Path, topic: str, model: type[Event] | None = None) -> Iterator[Event]:
    """Events of one topic, validated against the topic's schema (or the model given)."""
    schema = model or SCHEMAS[BY_NAME[topic].schema]
    for raw in read_raw(run_dir, topic):
        yield decode(schema, raw)


class ArchiveWriter:
    """Appends events per topic; one open file per topic for the life of the run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        for spec in BY_NAME.values():
            topic_file(run_dir, spec.name).unlink(missing_ok=True)
        self._files: dict[str, Any] = {}
        self.counts: dict[str, int] = {name: 0 for name in BY_NAME}

    def write(self, topic: str, payload: bytes) -> None:
        fh = self._files.get(topic)
        if fh is None:
            fh = self._files[topic] = topic_file(self.run_dir, topic).open("ab")
        fh.write(payload.rstrip(b"\n").replace(b"\n", b" ") + b"\n")
        self.counts[topic] += 1

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
