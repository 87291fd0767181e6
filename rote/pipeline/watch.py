"""How `rote run --once` decides it is done, and its progress bars."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)
from rich.table import Column

from rote import metrics
from rote.pipeline.options import Progress, RunOptions

log = logging.getLogger("rote.run")

#: How often a run that is not done writes what it waits for to its run log (INFO, not a warning).
SAY_WAITING_EVERY_SECONDS = 30.0


def _count(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())


def actions_taken() -> float:
    """User actions the task identifier has taken in so far: learnt or dead-lettered (batches count each
    action; a malformed message counts one)."""
    return _count(metrics.USER_ACTIONS_TOTAL, outcome="accepted") + _count(
        metrics.USER_ACTIONS_TOTAL, outcome="dead_lettered"
    )


def replay_consumed(state: Progress) -> bool:
    """The replay is over and every action it sent (valid or not) has been taken in."""
    return state.replay_done and actions_taken() >= state.produced + state.injected_bad


def _feed_caught_up(state: Progress, feed_topic: str) -> bool:
    """The optimizer feed forwarded everything its sources received, and the tracker read all of it."""
    from rote.agents.optimizer_feed import AGENT as FEED_AGENT
    from rote.agents.optimizer_feed import SOURCES

    forwarded = sum(_count(metrics.EVENTS_CONSUMED, topic=t, agent=FEED_AGENT) for t in SOURCES)
    produced = _count(metrics.EVENTS_PRODUCED, topic=feed_topic, agent=FEED_AGENT)
    tracked = _count(metrics.EVENTS_CONSUMED, topic=feed_topic, agent="efficiency-tracker")
    return forwarded >= sum(state.counts.get(t, 0) for t in SOURCES) and tracked >= produced


def production_recorded(state: Progress) -> bool:
    """The demo's runs are all answered and the recorder has read every metric the executor published.

    Without the second half a run could stop between the executor's last publish and the recorder's next
    fetch (the pipeline looked quiet during the last slow runs): the archive, and the feed and report
    conditions that count from it, would miss that run.
    """
    return state.production_done and state.production_published <= state.production_recorded


async def watch_until_done(
    options: RunOptions,
    state: Progress,
    started: float,
    stop: asyncio.Event,
    report_status: dict[str, Any],
    *,
    feed_topic: str,
    busy: Callable[[], bool] = lambda: False,
) -> None:
    """Done = replay consumed, pipeline quiet, the tracker caught up, and a report covers all of it.

    `busy`: work under way that publishes only when it ends (the sandbox's batch of tests); quiet topics
    do not mean done while it says so.
    """
    status = state.bars.add("pipeline", None) if state.bars is not None else None
    said = started
    while True:
        await asyncio.sleep(0.5)
        if status is not None and state.bars is not None:
            state.bars.describe(status, _status_text(state, actions_taken()))
        now = time.monotonic()
        if state.error:
            break
        if now - started > options.timeout_seconds:
            state.timed_out = True
            break
        waiting = {
            "the replay's actions to be taken in": not replay_consumed(state),
            "the demo's runs": not production_recorded(state),
            "a quiet spell": now - state.last_event <= options.quiet_seconds,
            "the sandbox's batch of tests": busy(),
            "the optimizer feed and tracker": not _feed_caught_up(state, feed_topic),
            "a report covering everything": report_status["reported_seen"] != report_status["seen"],
        }
        if not any(waiting.values()):
            log.info("done: counts %s, report status %s", state.counts, report_status)
            break
        if now - said >= SAY_WAITING_EVERY_SECONDS:  # a run that does not end says what it waits for
            said = now
            log.info("waiting for %s", ", ".join(k for k, v in waiting.items() if v))
    stop.set()


def _status_text(state: Progress, consumed: float) -> str:
    c = state.counts
    return (
        f"{int(consumed)}/{state.produced + state.injected_bad} actions · {c.get('candidates', 0)} candidates"
        f" · {c.get('automations', 0)} automations · {c.get('test-results', 0)} tests"
    )


class Bars:
    """The run's progress bars: one live display on stderr for every bar, stopped exactly once.

    One `rich` display for the whole run (not one per bar) so bars do not fight over the cursor, and
    `stop()` in the run's `finally` restores the cursor even when the run fails half way.
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = RichProgress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
            # the status gives way (ellipsis) on a narrow terminal, never the label or the counts
            TextColumn(
                "{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)
            ),
            console=Console(stderr=True),
            transient=True,
            disable=not enabled,
        )
        self._started = False

    @classmethod
    def for_run(cls, options: RunOptions) -> Bars:
        return cls(enabled=options.progress and sys.stderr.isatty())

    def start(self) -> None:
        if self.enabled and not self._started:
            self._progress.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False

    def add(self, label: str, total: int | None) -> TaskID:
        self.start()
        return self._progress.add_task(label, total=total, status="")

    def advance(self, task: TaskID, n: int = 1) -> None:
        self._progress.advance(task, n)

    def describe(self, task: TaskID, status: str) -> None:
        self._progress.update(task, status=status)


def bar(state: Progress, label: str, total: int | None) -> Callable[[int], None]:
    """An `advance(n)` function for one bar of the run's display (a no-op without bars)."""
    bars = state.bars
    if bars is None or not bars.enabled:
        return lambda n: None
    task = bars.add(label, total)
    return lambda n: bars.advance(task, n)
