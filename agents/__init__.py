"""rote's Faust agents, one module each; `build_app` wires them onto one Faust app.

Agents talk only through topics (`streams/topics.py`). Each module registers its agents, tables and timers on
the app and keeps its logic in `rote.<feature>`; what is here is plumbing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from rote.config import Settings


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """Timings that differ between a long-lived worker and a bounded `rote run --once`."""

    idle_flush_seconds: float = 300.0
    report_interval_seconds: float = 60.0
    #: Key the task identifier signs candidates and the generator automations with, and the registry
    #: verifies test results with (the sandbox runner signs them); None: from the environment
    #: (`ROTE_RESULT_KEY` / `ROTE_RESULT_KEY_FILE`, rote.security.verdicts).
    result_key: bytes | None = None


def build_app(
    settings: Settings, *, bootstrap: str, options: AgentOptions | None = None
) -> tuple[faust.App, dict[str, Any]]:
    from rote.agents import (
        automation_generator,
        efficiency_tracker,
        optimizer_feed,
        performance_monitor,
        task_identifier,
        workflow_analyzer,
    )
    from rote.agents.app import create_app
    from rote.efficiency import CostModel

    opts = options or AgentOptions()
    key = _result_key(opts)
    app, topics = create_app(settings, bootstrap=bootstrap)
    parts = {
        "task_identifier": task_identifier.register(
            app, topics, bootstrap=bootstrap, result_key=key, idle_flush_seconds=opts.idle_flush_seconds
        ),
        "automation_generator": automation_generator.register(
            app,
            topics,
            bootstrap=bootstrap,
            min_score=settings.min_automation_score,
            result_key=key,
        ),
        "performance_monitor": performance_monitor.register(app, topics, result_key=key),
        "optimizer_feed": optimizer_feed.register(app, topics, result_key=key),
        "workflow_analyzer": workflow_analyzer.register(
            app, topics, score_interval=min(10.0, opts.report_interval_seconds)
        ),
        "efficiency_tracker": efficiency_tracker.register(
            app,
            topics,
            cost=CostModel.from_env(hourly_rate=settings.hourly_rate),
            report_interval=opts.report_interval_seconds,
        ),
    }
    _watch_consumer_lag(app, bootstrap=bootstrap, group=settings.app_id)
    return app, {"topics": topics, **parts}


def _result_key(opts: AgentOptions) -> bytes:
    from rote.errors import ConfigError
    from rote.security.verdicts import result_key_from_env

    key = opts.result_key if opts.result_key is not None else result_key_from_env()
    if key is None:
        raise ConfigError(
            "no result key: set ROTE_RESULT_KEY or ROTE_RESULT_KEY_FILE to the key the sandbox runners sign "
            "test results with (docs/security.md); without it the registry could not tell a real verdict "
            "from a forged one"
        )
    return key


def _watch_consumer_lag(app: faust.App, *, bootstrap: str, group: str, interval: float = 5.0) -> None:
    """Export the agents' consumer lag; asked of the broker off the event loop (kafka-python blocks)."""
    import asyncio

    from rote import metrics
    from rote.agents.optimizer_feed import feed_topic_name
    from rote.streams.topics import CATALOGUE

    names = [spec.name for spec in CATALOGUE if spec.name not in ("optimization-reports", "dead-letters")]
    # run-requests: the executor's group
    names = [n for n in names if n != "run-requests"] + [feed_topic_name(app.conf.id)]

    @app.timer(interval=interval)
    async def consumer_lag() -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, metrics.collect_consumer_lag, bootstrap, group, names)
        except Exception as exc:  # lag is telemetry: a failed probe must not stop the agents
            logging.getLogger("rote.agents").warning("consumer lag probe failed: %r", exc)
