"""The run archive: every event a `rote run` saw, one JSONL file per topic.

The embedded broker keeps nothing after it stops (memory storage), so `rote run` records each topic
as it flows; `rote report` and `rote automations` rebuild their views from the archive with the same
pure logic the agents use. Each line is one event exactly as it travelled on the wire.
"""

from __future__ import annotations

import json
import os
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
