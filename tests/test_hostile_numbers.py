"""Numbers an attacker writes to a topic: Infinity, NaN and durations of 1e200 seconds.

A forged run metric with a 1e200 s step overflowed the workflow analyzer's statistics in a timer, which
stopped the worker; the state that held it was restored by the next worker, which stopped again. NaN in
an anomaly made a report's score NaN and its checkpoint unreadable. The event schemas refuse them now (a
dead letter with the reason), the largest durations they accept keep every computation finite, and a
timer that raises anyway is logged and counted, not fatal.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from rote import metrics
from rote.agents.common import survives
from rote.efficiency import CostModel
from rote.errors import ValidationError
from rote.report import ReportBuilder
from rote.state import decode_state, encode_state
from rote.streams.schemas import MAX_SECONDS, Anomaly, Candidate, RunMetric, decode
from rote.workflow import WorkflowAnalyzer

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _metric(i: int, duration: object, step: object = 1.0) -> bytes:
    return json.dumps(
        {
            "run_id": f"r{i}",
            "automation_id": "a1",
            "version": 1,
            "source": "production",
            "started_at": (T0 + timedelta(minutes=7 * i)).isoformat(),
            "duration_seconds": duration,
            "success": True,
            "steps": [{"step": 0, "label": "x", "duration_seconds": step}],
        }
    ).encode()


@pytest.mark.parametrize(
    ("duration", "step"),
    [(1e200, 1.0), (3.0, 1e200), (float("inf"), 1.0), (3.0, float("nan")), (MAX_SECONDS * 2, 1.0)],
)
def test_run_metrics_beyond_a_century_or_not_finite_are_refused(duration: float, step: float) -> None:
    with pytest.raises(ValidationError, match="duration_seconds"):
        decode(RunMetric, _metric(9, duration, step))


def test_anomalies_with_nan_and_candidates_with_huge_step_durations_are_refused() -> None:
    anomaly = {
        "anomaly_id": "x",
        "automation_id": "a1",
        "version": 1,
        "signal": "duration_seconds",
        "score": 0.9,
        "severity": "warning",
        "observed": float("nan"),
        "expected_low": 0.0,
        "expected_high": 1.0,
        "detected_at": T0.isoformat(),
        "description": "d",
    }
    with pytest.raises(ValidationError, match="finite"):
        decode(Anomaly, json.dumps(anomaly).encode())
    steps = [{"label": "a", "app": "x", "action_type": "click"}] * 2
    inst = {"event_ids": ["e1", "e2"], "values": [None, None], "start": T0.isoformat(), "end": T0.isoformat()}
    cand = {
        "candidate_id": "c",
        "version": 1,
        "user_id": "u",
        "routine": ["a", "a"],
        "steps": steps,
        "occurrences": 2,
        "instances": [{**inst, "step_durations_seconds": [None, 1e200]}],
        "score": 50,
        "breakdown": dict.fromkeys(
            ("frequency", "time_cost", "regularity", "determinism", "variability", "length"), 0.5
        ),
        "mean_duration_seconds": 3,
        "observed_hours_per_year": 1,
        "estimated_hours_saved_per_year": 1,
        "rank": 1,
        "priority": "low",
        "first_seen": T0.isoformat(),
        "last_seen": T0.isoformat(),
        "updated_at": T0.isoformat(),
    }
    with pytest.raises(ValidationError, match="step_durations_seconds"):
        decode(Candidate, json.dumps(cand).encode())


def test_the_largest_accepted_durations_keep_analysis_report_and_state_finite() -> None:
    """At the schema's bound (a century) the squares the statistics sum stay far from overflowing, the
    report's numbers are finite and the state's checkpoint restores."""
    analyzer, builder = WorkflowAnalyzer(), ReportBuilder(CostModel())
    for i in range(5):
        m = decode(RunMetric, _metric(i, 3.0))
        analyzer.apply_metric(m)
        builder.apply_metric(m)
    worst = decode(RunMetric, _metric(9, MAX_SECONDS, MAX_SECONDS))
    analyzer.apply_metric(worst)
    builder.apply_metric(worst)
    analyzer.analysis()
    report = builder.report(T0 + timedelta(days=1))
    assert report.optimization_score is None or 0 <= report.optimization_score <= 100
    again = decode_state(ReportBuilder, encode_state(builder), cost=CostModel())
    assert again.report(T0 + timedelta(days=1)).model_dump() == report.model_dump()


def test_a_periodic_task_that_raises_is_counted_and_does_not_stop_the_worker() -> None:
    ticks: list[int] = []

    async def export_score() -> None:
        ticks.append(1)
        raise OverflowError(34, "Numerical result out of range")

    counter = metrics.PERIODIC_TASK_FAILURES.labels(task="optimization_score")
    before = counter._value.get()
    wrapped = survives("optimization_score")(export_score)
    asyncio.run(wrapped())
    asyncio.run(wrapped())
    assert ticks == [1, 1] and counter._value.get() == before + 2
    assert wrapped.__name__ == "export_score"  # Faust names the timer after it


def test_a_dead_letter_of_a_message_near_the_broker_limit_fits_under_it() -> None:
    """900 kB of garbage on `user-actions`: its dead letter (base64, a third larger) passed the broker's
    1 MiB limit, was refused, and the message left no trace. The letter keeps the first 512 kB and the
    size."""
    import base64
    from typing import Any, cast

    from rote.agents.app import Topics
    from rote.agents.common import AgentIO
    from rote.deadletters import KEEP_BYTES as DEAD_LETTER_KEEP_BYTES
    from rote.streams.schemas import DeadLetter

    sent: list[bytes] = []

    class _Topic:
        async def send(self, *, key: bytes, value: bytes) -> None:
            sent.append(value)

    io = AgentIO(agent="test", topics=Topics(by_name=cast(Any, {"dead-letters": _Topic()})))
    garbage = b"\x01not json " * 90_000  # 900 kB
    asyncio.run(io.dead_letter("user-actions", garbage, b"k", ValidationError("not JSON"), None))
    asyncio.run(io.dead_letter("user-actions", b"small", b"k", ValidationError("not JSON"), None))
    # a huge key too (700 kB key, 200 kB value): the key is cut to its first 4 kB
    asyncio.run(io.dead_letter("user-actions", b"v" * 200_000, b"K" * 700_000, ValidationError("x"), None))
    big, small, keyed = (decode(DeadLetter, raw) for raw in sent)
    assert len(sent[2]) < 1_000_000 and len(base64.b64decode(keyed.key_b64 or "")) == 4096
    assert len(sent[0]) < 1_000_000  # under the broker's default limit, envelope and all
    assert big.payload == garbage[:DEAD_LETTER_KEEP_BYTES] and big.payload_bytes == len(garbage)
    assert small.payload == b"small" and small.payload_bytes is None
    assert base64.b64decode(small.payload_b64) == b"small"
