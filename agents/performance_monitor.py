"""Performance monitor: automation run reports in, anomalies out.

Each automation's signals are watched by `rote.anomaly.monitor.AutomationMonitors`, kept in the `monitors`
table (keyed by automation id, co-partitioned with `metrics` and `test-results`). Sandbox test runs and
production runs behave differently (test fixtures vs real systems), so they are separate series. From
`test-results` only what a run report lacks (output volume) is taken; the rest of a sandbox run arrives as its
`metrics` event and must not be counted twice. A report redelivered after a crash is recognised by its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.agents.common import AgentIO, settled_events
from rote.agents.durable import DurableState
from rote.anomaly.monitor import (
    AutomationMonitors,
    Finding,
    MonitorConfig,
)
from rote.streams.schemas import Anomaly, RunMetric, TestResult, decode
from rote.streams.topics import ANOMALIES, METRICS, TEST_RESULTS

AGENT = "performance-monitor"
_ONLY_FROM_TEST_RESULTS = frozenset({"output_bytes"})


def register(
    app: faust.App, topics: Topics, *, result_key: bytes, config: MonitorConfig | None = None
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    cfg = config or MonitorConfig()
    for order in ("duplicate", "late"):  # at zero under the policy in force, so the first one is an increase
        metrics.OUT_OF_ORDER.labels(agent=AGENT, order=order, policy=cfg.detector.out_of_order)

    def parse(topic: str, value: bytes) -> TestResult | RunMetric:
        return decode(TestResult if topic == TEST_RESULTS.name else RunMetric, value)

    def observe(mons: AutomationMonitors, item: TestResult | RunMetric) -> tuple[str, Any, list[Finding]]:
        """Feed one run report to its automation's monitors; returns (series, time, findings)."""
        # A report older than (or as old as) its series' latest is learnt, not dead-lettered: counted here.
        order = mons.order_of("sandbox" if isinstance(item, TestResult) else item.source, item.started_at)
        if order != "in order":
            metrics.OUT_OF_ORDER.labels(agent=AGENT, order=order, policy=cfg.detector.out_of_order).inc()
        if isinstance(item, TestResult):
            return "sandbox", item.started_at, mons.observe_result(item, only=_ONLY_FROM_TEST_RESULTS)
        return item.source, item.started_at, mons.observe_metric(item)

    monitors: DurableState[AutomationMonitors, TestResult | RunMetric] = DurableState(
        app,
        "monitors",
        partitions=METRICS.partitions,
        state_class=AutomationMonitors,
        factory=lambda _key: AutomationMonitors(cfg),
        decode=parse,
        apply=observe,
        state_context={"config": cfg},
        source_topics=(METRICS.name, TEST_RESULTS.name),
    )
    source = app.topic(
        METRICS.name,
        TEST_RESULTS.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(source, name=AGENT)
    async def monitor(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            is_result = event.message.topic == TEST_RESULTS.name
            item = await io.decode(TestResult if is_result else RunMetric, event, event.value, event.key)
            if item is None:
                continue
            if await io.refuse_unsigned(item, result_key, event):
                continue  # a run or verdict no sandbox runner or executor reported: no anomaly from it
            try:
                with io.timed():
                    if isinstance(item, RunMetric):
                        metrics.AUTOMATION_RUNS.labels(
                            source=item.source, outcome="success" if item.success else "failure"
                        ).inc()
                        metrics.AUTOMATION_RUN_SECONDS.labels(source=item.source).observe(
                            item.duration_seconds
                        )
                    series, at, findings = monitors.apply(
                        item.automation_id, item, partition=event.message.partition
                    )
            except Exception as exc:
                await io.failed(event, exc)
                continue
            if findings:
                anomaly = to_anomaly(
                    headline(findings),
                    automation_id=item.automation_id,
                    series=series,
                    observed_at=at,
                    others=findings,
                )
                metrics.ANOMALIES.labels(
                    severity=anomaly.severity, signal=signal_family(anomaly.signal)
                ).inc()
                metrics.ANOMALY_SCORE.labels(signal=signal_family(anomaly.signal)).observe(anomaly.score)
                live = monitors.live(item.automation_id)
                await io.send(ANOMALIES.name, item.automation_id.encode(), anomaly, delivered=True)
                if live is not None:
                    monitors.ensure_held(item.automation_id, live)
            monitors.record(item.automation_id, event.message.topic, event.value, checkpoint=bool(findings))

    return {"agent": monitor, "table": monitors}


def signal_family(signal: str) -> str:
    """Per-step signals share one label value so the label set stays bounded."""
    return "step_duration_seconds" if signal.startswith("step_") else signal


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def headline(findings: list[Finding]) -> Finding:
    """One run that is slow is slow in its total and in several steps: one page, led by the worst signal."""
    return max(findings, key=lambda f: (_SEVERITY_RANK[f.severity], f.score, f.signal == "duration_seconds"))


def to_anomaly(
    finding: Finding,
    *,
    automation_id: str,
    series: str,
    observed_at: datetime,
    others: Sequence[Finding] = (),
) -> Anomaly:
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
        explanation=_explain(finding, list(others)),
    )


def _explain(lead: Finding, findings: list[Finding]) -> str:
    rest = [f for f in findings if f is not lead]
    if not rest:
        return lead.explanation
    also = ", ".join(
        f"{f.signal} {f.observed:.3g} (expected {f.expected_low:.3g}-{f.expected_high:.3g})" for f in rest[:5]
    )
    more = f" and {len(rest) - 5} more" if len(rest) > 5 else ""
    return f"{lead.explanation} Also out of range in the same run: {also}{more}."[:4000]
