"""Run options and the progress a run shares between its tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rote.importers import CsvOptions
from rote.streams.schemas import RunMetric

if TYPE_CHECKING:
    from rote.pipeline.watch import Bars


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    replay: Path | None = None
    fmt: str = "auto"
    user_id: str = "user-1"
    #: Columns, delimiter and encoding of the replay file (None: all found in the file).
    csv_options: CsvOptions | None = None
    #: Replay speed: 0 as fast as the broker takes it; 1.0 the log's own pace; 10 ten times faster.
    speed: float = 0.0
    once: bool = True
    inject: bool = True
    #: The demo: the form replica, the workbook, and real runs of the verified form automation (rote.demo).
    demo: bool = True
    #: --inject-slowdown: the form replica answers 1.5 s slower after 40 submissions (real slow runs).
    inject_slowdown: bool = False
    #: With --once: seconds without new events (after the replay is consumed) that mean "done".
    quiet_seconds: float = 8.0
    timeout_seconds: float = 900.0
    linger_seconds: float = 0.0
    progress: bool = True
    seed: int = 7


@dataclass
class Progress:
    produced: int = 0
    #: Rows of the replay file the importer rejected; each went to `dead-letters` with its line and cause.
    import_rejected: int = 0
    replay_total: int = 0
    replay_done: bool = False
    injected_bad: int = 0
    #: Production runs of the demo answered on `metrics` (real runs by the executor).
    production_runs: int = 0
    production_done: bool = False
    #: Run ids of the demo's production runs the executor published on `metrics`, and of the production
    #: runs the recorder has read back: the run is done only when the second holds the first (a last metric
    #: can be answered before the recorder fetched it; everything downstream waits on the recorder's counts).
    production_published: set[str] = field(default_factory=set)
    production_recorded: set[str] = field(default_factory=set)
    #: The form replica's counts (rote.demo.form.FormStats.to_json) at the end of the run.
    demo_form: dict[str, Any] | None = None
    last_event: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    sandbox_durations: dict[str, list[RunMetric]] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)
    timed_out: bool = False
    error: str | None = None
    #: The run's progress bars on stderr (None: no bars, e.g. --json or not a terminal).
    bars: Bars | None = None
