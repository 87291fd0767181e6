"""Efficiency tracker and the optimization cycle: baselines, time saved, ROI, trends, periodic reports.

`rote.report.ReportBuilder` does the accounting (it wraps `rote.efficiency.EfficiencyTracker` and the
workflow analyzer so the report is internally consistent); this agent feeds it from the optimizer feed,
keeps it in a changelogged one-partition table, exports the same figures to Prometheus, and every
`report_interval` seconds publishes an `OptimizationReport` to `optimization-reports`. Only the worker that
owns the table's single partition has the state, so only it publishes: one report per interval for the
whole cluster, whichever worker that is after a rebalance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics, state_table
from rote.agents.common import AgentIO
from rote.agents.optimizer_feed import FEED_TOPIC, feed_topic, source_of
from rote.efficiency import CostModel, MetricsExporter
from rote.report import ReportBuilder
from rote.streams.schemas import Anomaly, Automation, Candidate, RunMetric, TestResult
from rote.streams.topics import ANOMALIES, AUTOMATIONS, CANDIDATES, METRICS, OPTIMIZATION_REPORTS, TEST_RESULTS

AGENT = "efficiency-tracker"
STATE_KEY = "all"
_MODELS: dict[str, Any] = {
    CANDIDATES.name: Candidate,
    AUTOMATIONS.name: Automation,
    TEST_RESULTS.name: TestResult,
    METRICS.name: RunMetric,
    ANOMALIES.name: Anomaly,
}


def register(
    app: faust.App, topics: Topics, *, cost: CostModel | None = None, report_interval: float = 60.0
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    model_cost = cost or CostModel.from_env()
    table = state_table(app, "efficiency-state", partitions=1)
    exporter = MetricsExporter()
    status = {"changed": False, "reports": 0}

    @app.agent(feed_topic(app), name=AGENT)
    async def track(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            model = _MODELS.get(source_of(event))
            if model is None:
                continue
            item = await io.decode(model, event, event.value, event.key)
            if item is None:
                continue
            try:
                with io.timed():
                    builder: ReportBuilder = table.get(STATE_KEY) or ReportBuilder(model_cost)
                    if isinstance(item, Candidate):
                        builder.apply_candidate(item)
                    elif isinstance(item, Automation):
                        builder.apply_automation(item)
                    elif isinstance(item, TestResult):
                        builder.apply_test_result(item)
                    elif isinstance(item, RunMetric):
                        builder.apply_metric(item)
                    else:
                        builder.apply_anomaly(item)
                    table[STATE_KEY] = builder
                    status["changed"] = True
            except Exception as exc:
                await io.failed(event, exc)
                continue

    @app.timer(interval=report_interval)
    async def publish_report() -> None:
        if not status["changed"] or not _owns_state(app):
            return
        builder = table.get(STATE_KEY)
        if builder is None:
            return
        status["changed"] = False
        # A summary costs tens of milliseconds and grows with the runs kept: computed per report, not per event.
        exporter.export(builder.summary())
        report = builder.report(datetime.now(UTC))
        await io.send(OPTIMIZATION_REPORTS.name, report.report_id.encode(), report)
        metrics.REPORTS_PUBLISHED.inc()
        status["reports"] += 1

    return {"agent": track, "table": table, "timer": publish_report, "status": status}


def _owns_state(app: faust.App) -> bool:
    """True when this worker is active for the feed's only partition (and so holds the tracker's state)."""
    try:
        actives = app.assignor.assigned_actives()
    except Exception:
        return False
    return any(tp.topic == FEED_TOPIC and tp.partition == 0 for tp in actives)
