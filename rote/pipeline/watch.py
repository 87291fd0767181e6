"""How `rote run --once` decides it is done, and its progress bars."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from rote import metrics
from rote.pipeline.options import Progress, RunOptions
from rote.streams.topics import USER_ACTIONS

log = logging.getLogger("rote.run")


def _count(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())


def _feed_caught_up(state: Progress) -> bool:
    """The optimizer feed forwarded everything its sources received, and the tracker read all of it."""
    from rote.agents.optimizer_feed import AGENT as FEED_AGENT
    from rote.agents.optimizer_feed import FEED_TOPIC, SOURCES

    forwarded = sum(_count(metrics.EVENTS_CONSUMED, topic=t, agent=FEED_AGENT) for t in SOURCES)
    produced = _count(metrics.EVENTS_PRODUCED, topic=FEED_TOPIC, agent=FEED_AGENT)
    tracked = _count(metrics.EVENTS_CONSUMED, topic=FEED_TOPIC, agent="efficiency-tracker")
    return forwarded >= sum(state.counts.get(t, 0) for t in SOURCES) and tracked >= produced


async def watch_until_done(
    options: RunOptions, state: Progress, started: float, stop: asyncio.Event, report_status: dict[str, Any]
) -> None:
    """Done = replay consumed, pipeline quiet, the tracker caught up, and a report covers all of it."""
    consumed = metrics.EVENTS_CONSUMED.labels(topic=USER_ACTIONS.name, agent="task-identifier")
    tick = bar(options, "pipeline", None)
    while True:
        await asyncio.sleep(0.5)
        tick(0)
        now = time.monotonic()
        if state.error:
            break
        if now - started > options.timeout_seconds:
            state.timed_out = True
            break
        caught_up = state.replay_done and consumed._value.get() >= state.produced + state.injected_bad
        quiet = now - state.last_event > options.quiet_seconds
        reported = report_status["reported_seen"] == report_status["seen"]
        if caught_up and state.production_done and quiet and _feed_caught_up(state) and reported:
            log.info("done: counts %s, report status %s", state.counts, report_status)
            break
    stop.set()


def bar(options: RunOptions, label: str, total: int | None) -> Callable[[int], None]:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not options.progress or not sys.stderr.isatty():
        return lambda n: None
    from rich.progress import Progress

    progress = Progress(transient=True)
    progress.start()
    task = progress.add_task(label, total=total)

    def advance(n: int) -> None:
        progress.advance(task, n)
        if total is not None and progress.tasks[0].completed >= total:
            progress.stop()

    return advance
