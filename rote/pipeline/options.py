"""Run options and the progress a run shares between its tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rote.streams.schemas import RunMetric


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    replay: Path | None = None
    fmt: str = "actionlogger"
    user_id: str = "user-1"
    #: Replay speed: 0 as fast as the broker takes it; 1.0 the log's own pace; 10 ten times faster.
    speed: float = 0.0
    once: bool = True
    inject: bool = True
    production_runs: int = 60
    slowdown_runs: int = 8
    slowdown_factor: float = 6.0
    #: With --once: seconds without new events (after the replay is consumed) that mean "done".
    quiet_seconds: float = 8.0
    timeout_seconds: float = 900.0
    linger_seconds: float = 0.0
    progress: bool = True
    seed: int = 7


@dataclass
class Progress:
    produced: int = 0
    replay_total: int = 0
    replay_done: bool = False
    injected_bad: int = 0
    production_runs: int = 0
    production_done: bool = False
    last_event: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    sandbox_durations: dict[str, list[RunMetric]] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)
    timed_out: bool = False
    error: str | None = None
