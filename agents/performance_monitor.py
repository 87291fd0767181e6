"""Performance monitor: automation run reports in, anomalies out.

Each automation's signals are watched by a `rote.anomaly.SeriesMonitor` kept in the `monitors` table
(keyed by automation id, co-partitioned with `metrics` and `test-results`). Sandbox test runs and production
runs behave differently (test fixtures vs real systems), so they are separate series. From `test-results`
only what a run report lacks (output volume) is taken; the rest of a sandbox run arrives as its `metrics`
event and must not be counted twice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics, state_table
from rote.agents.common import AgentIO
from rote.anomaly.monitor import Finding, MonitorConfig, SeriesMonitor, signals_from_metric, signals_from_test_result
from rote.streams.schemas import Anomaly, RunMetric, TestResult
from rote.streams.topics import ANOMALIES, METRICS, TEST_RESULTS

AGENT = "performance-monitor"
_ONLY_FROM_TEST_RESULTS = {"output_bytes"}


def register(app: faust.App, topics: Topics, *, config: MonitorConfig | None = None) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    cfg = config or MonitorConfig()
    monitors = state_table(app, "monitors", partitions=METRICS.partitions)
    source = app.topic(
        METRICS.name, TEST_RESULTS.name, key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(source, name=AGENT)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            is_result = event.message.topic == TEST_RESULTS.name
            item = await io.decode(TestResult if is_result else RunMetric, event, event.value, event.key)
            if item is None:
                continue
            try:
                with io.timed():
                    if isinstance(item, TestResult):
                        series = "sandbox"
                        at = item.started_at
                        signals = [(s, v) for s, v in signals_from_test_result(item) if s in _ONLY_FROM_TEST_RESULTS]
                    else:
                        series = item.source
                        at = item.started_at
                        signals = signals_from_metric(item)
                        metrics.AUTOMATION_RUNS.labels(
                            source=item.source, outcome="success" if item.success else "failure"
                        ).inc()
                        metrics.AUTOMATION_RUN_SECONDS.labels(source=item.source).observe(item.duration_seconds)
                    per_source: dict[str, SeriesMonitor] = monitors.get(item.automation_id) or {}
                    mon = per_source.get(series) or SeriesMonitor(cfg)
                    findings = [f for s, v in signals if (f := mon.observe(signal=s, value=v, at=at)) is not None]
                    per_source[series] = mon
                    monitors[item.automation_id] = per_source
            except Exception as exc:
                await io.failed(event, exc)
                continue
            for finding in findings:
                anomaly = to_anomaly(finding, automation_id=item.automation_id, series=series, observed_at=at)
                metrics.ANOMALIES.labels(severity=anomaly.severity, signal=signal_family(finding.signal)).inc()
                metrics.ANOMALY_SCORE.labels(signal=signal_family(finding.signal)).observe(finding.score)
                await io.send(ANOMALIES.name, item.automation_id.encode(), anomaly)

    return {"agent": monitor, "table": monitors}


def signal_family(signal: str) -> str:
    """Per-step signals share one label value so the label set stays bounded."""
    return "step_duration_seconds" if signal.startswith("step_") else signal


def to_anomaly(finding: Finding, *, automation_id: str, series: str, observed_at: datetime) -> Anomaly:
    digest = hashlib.sha256(f"{automation_id}|{series}|{finding.signal}|{observed_at.isoformat()}".encode())
    return Anomaly(
        anomaly_id=digest.hexdigest()[:32],
        automation_id=automation_id,
        signal=finding.signal,
        score=min(1.0, max(0.0, finding.score)),
        severity=finding.severity,
        observed=finding.observed,
        expected_low=finding.expected_low,
        expected_high=finding.expected_high,
        detected_at=datetime.now(UTC),
        observed_at=observed_at,
        detector=f"{finding.detector} ({series} runs)",
        explanation=finding.explanation,
    )
