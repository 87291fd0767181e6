"""Efficiency tracker and the optimization cycle: baselines, time saved, ROI, trends, periodic reports.

`rote.report.ReportBuilder` does the accounting (it wraps `rote.efficiency.EfficiencyTracker` and the
workflow analyzer so the report is internally consistent); this agent feeds it from the optimizer feed,
keeps it durable on one partition (`agents/durable.py`), exports the same figures to Prometheus, and every
`report_interval` seconds publishes an `OptimizationReport` to `optimization-reports`. Only the worker that
owns the feed's single partition has the state, so only it publishes: one report per interval for the
whole cluster, whichever worker that is after a rebalance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.agents.common import AgentIO, TopicRouter, apply_routed, settled_events, survives
from rote.agents.durable import DurableState
from rote.agents.optimizer_feed import feed_topic, feed_topic_name
from rote.efficiency import CostModel, MetricsExporter
from rote.report import ReportBuilder
from rote.streams.schemas import Event
from rote.streams.topics import (
    ANOMALIES,
    AUTOMATIONS,
    CANDIDATES,
    METRICS,
    OPTIMIZATION_REPORTS,
    TEST_RESULTS,
)

AGENT = "efficiency-tracker"
ROUTES: TopicRouter[ReportBuilder] = TopicRouter(
    {
        CANDIDATES: ReportBuilder.apply_candidate,
        AUTOMATIONS: ReportBuilder.apply_automation,
        TEST_RESULTS: ReportBuilder.apply_test_result,
        METRICS: ReportBuilder.apply_metric,
        ANOMALIES: ReportBuilder.apply_anomaly,
    }
)


def register(
    app: faust.App, topics: Topics, *, cost: CostModel | None = None, report_interval: float = 60.0
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    model_cost = cost or CostModel.from_env()

    state: DurableState[ReportBuilder, tuple[str, Event]] = DurableState(
        app,
        "efficiency",
        partitions=1,
        state_class=ReportBuilder,
        factory=lambda _key: ReportBuilder(model_cost),
        decode=ROUTES.decode,
        apply=ROUTES.apply,
        checkpoint_every=200,
        state_context={"cost": model_cost},
        source_topics=(feed_topic_name(app.conf.id),),
    )
    exporter = MetricsExporter()
    status = {"seen": 0, "reported_seen": 0, "reports": 0}

    @app.agent(feed_topic(app), name=AGENT)
    async def track(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            if await apply_routed(io, ROUTES, state, event):
                status["seen"] += 1

    @app.timer(interval=report_interval)
    @survives("optimization_report")
    async def publish_report() -> None:
        seen = status["seen"]
        if seen == status["reported_seen"] or not _owns_state(app):
            return
        parts = [b for b in (state.peek(k) for k in state.stored_keys()) if b is not None]
        if not parts:
            return
        builder = ReportBuilder.merged(parts, model_cost)
        # A summary costs tens of milliseconds and grows with the runs kept: made per report, not per event.
        exporter.export(builder.summary())
        report = builder.report(datetime.now(UTC))
        await io.send(OPTIMIZATION_REPORTS.name, report.report_id.encode(), report)
        metrics.REPORTS_PUBLISHED.inc()
        status["reported_seen"] = seen  # the events this report covers (more may have arrived meanwhile)
        status["reports"] += 1

    return {"agent": track, "state": state, "timer": publish_report, "status": status}


def _owns_state(app: faust.App) -> bool:
    """True when this worker is active for the feed's only partition (and so holds the tracker's state)."""
    try:
        actives = app.assignor.assigned_actives()
    except Exception:
        return False
    name = feed_topic_name(app.conf.id)
    return any(tp.topic == name and tp.partition == 0 for tp in actives)
