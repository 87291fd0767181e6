"""The performance monitor's API as the Faust agent calls it (no Kafka)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from rote.anomaly.monitor import (
    Finding,
    MonitorConfig,
    SeriesMonitor,
    signals_from_metric,
    signals_from_test_result,
)
from rote.state import decode_state, encode_state
from rote.streams.schemas import RunMetric, StepTiming, TestResult

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def _replay(
    mon: SeriesMonitor,
    values: list[float],
    *,
    seed: int = 1,
    signal: str = "duration_seconds",
    start: datetime = T0,
) -> list[tuple[int, Finding]]:
    rng = random.Random(seed)
    t = start
    out = []
    for i, v in enumerate(values):
        t += timedelta(minutes=rng.uniform(5, 120))  # irregular: runs happen when people need them
        f = mon.observe(signal=signal, value=v, at=t)
        if f is not None:
            out.append((i, f))
    return out


def _runs(n: int, *, level: float = 2.0, spread: float = 0.05, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [level * rng.lognormvariate(0, spread) for _ in range(n)]


def test_slowdown_after_50_normal_runs_is_found_at_once() -> None:
    mon = SeriesMonitor(MonitorConfig())
    values = _runs(50) + _runs(10, level=10.0, seed=4)
    found = _replay(mon, values)
    assert found, "a 5x slowdown must be reported"
    first_index, first = found[0]
    assert first_index == 50  # the very first slow run
    assert first.signal == "duration_seconds"
    assert first.severity in ("warning", "critical")
    assert first.observed > first.expected_high
    assert first.expected_high < 3.0
    assert 0.0 <= first.score <= 1.0
    assert "above the expected" in first.explanation and "duration_seconds" in first.explanation
    assert first.detector.startswith("rote-stream")
    # one incident, one alert: the following slow runs are inside the cool-down
    assert len(found) == 1


def test_steady_stream_produces_no_finding() -> None:
    for seed in range(3):
        mon = SeriesMonitor()
        assert _replay(mon, _runs(2000, spread=0.08, seed=seed), seed=seed) == []


def test_cold_start_never_alarms() -> None:
    mon = SeriesMonitor()
    values = [*_runs(10), 50.0, *_runs(5)]
    assert _replay(mon, values) == []


def test_slow_trend_is_not_an_incident() -> None:
    rng = random.Random(9)
    values = [2.0 * (1 + 0.001 * i) * rng.lognormvariate(0, 0.05) for i in range(1500)]
    assert _replay(SeriesMonitor(), values) == []


def test_failure_ratio_rise_is_found_but_a_single_failure_is_not() -> None:
    rng = random.Random(2)
    healthy = [1.0 if i == 40 else 0.0 for i in range(100)]
    assert _replay(SeriesMonitor(), healthy, signal="failure_ratio") == []
    broken = healthy + [1.0 if rng.random() < 0.7 else 0.0 for _ in range(30)]
    found = _replay(SeriesMonitor(), broken, signal="failure_ratio")
    assert found
    index, f = found[0]
    assert 100 <= index < 115
    assert f.observed >= 0.2  # the observed value is the recent failure ratio, not the 0/1 of one run


def test_daily_seasonality_long_runs_at_noon_are_normal_at_night_not() -> None:
    mon = SeriesMonitor()
    t = T0
    found = []
    rng = random.Random(6)
    for _ in range(24 * 21):  # hourly runs for three weeks
        t += timedelta(hours=1)
        busy = 11 <= t.hour <= 14
        v = (10.0 if busy else 2.0) * rng.lognormvariate(0, 0.05)
        f = mon.observe(signal="duration_seconds", value=v, at=t)
        if f:
            found.append(f)
    assert found == []
    night = t + timedelta(hours=(27 - t.hour) % 24)  # next 03:00
    f = mon.observe(signal="duration_seconds", value=10.0, at=night)
    assert f is not None
    assert f.expected_high < 5.0  # the night's band, not the noon one


def test_monitor_state_round_trips_and_continues_identically() -> None:
    mon = SeriesMonitor()
    _replay(mon, _runs(60))
    clone = decode_state(SeriesMonitor, encode_state(mon))
    tail = [*_runs(5), 12.0]
    assert _replay(mon, tail, seed=5, start=T0 + timedelta(days=30)) == _replay(
        clone, tail, seed=5, start=T0 + timedelta(days=30)
    )
    assert mon.signals == ["duration_seconds"]


def test_signals_from_metric_and_test_result() -> None:
    m = RunMetric(
        run_id="r1",
        automation_id="a1",
        version=1,
        source="production",
        started_at=T0,
        duration_seconds=2.5,
        success=False,
        cpu_seconds=1.0,
        peak_memory_bytes=1024,
        steps=[
            StepTiming(step=0, label="open", duration_seconds=0.5),
            StepTiming(step=1, label="type", duration_seconds=2.0),
        ],
    )
    assert signals_from_metric(m) == [
        ("duration_seconds", 2.5),
        ("failure_ratio", 1.0),
        ("cpu_seconds", 1.0),
        ("peak_memory_bytes", 1024.0),
        ("step_0_duration_seconds", 0.5),
        ("step_1_duration_seconds", 2.0),
    ]
    bare = RunMetric(
        run_id="r2",
        automation_id="a1",
        version=1,
        source="sandbox",
        started_at=T0,
        duration_seconds=1.0,
        success=True,
    )
    assert signals_from_metric(bare) == [("duration_seconds", 1.0), ("failure_ratio", 0.0)]
    r = TestResult(
        result_id="x",
        automation_id="a1",
        version=1,
        language="python",
        verdict="passed",
        passed=True,
        stop_reason="exited",
        wall_seconds=0.3,
        cpu_seconds=0.2,
        peak_memory_bytes=2048,
        output_bytes=10,
        started_at=T0,
    )
    assert dict(signals_from_test_result(r)) == {
        "duration_seconds": 0.3,
        "failure_ratio": 0.0,
        "cpu_seconds": 0.2,
        "peak_memory_bytes": 2048.0,
        "output_bytes": 10.0,
    }


def test_step_slowdown_is_reported_per_step() -> None:
    mon = SeriesMonitor()
    rng = random.Random(8)
    t = T0
    findings = []
    for i in range(80):
        t += timedelta(minutes=30)
        slow = i >= 60
        step_b = (5.0 if slow else 1.0) * rng.lognormvariate(0, 0.03)
        m = RunMetric(
            run_id=f"r{i}",
            automation_id="a",
            version=1,
            source="production",
            started_at=t,
            duration_seconds=(6.0 if slow else 2.0) * rng.lognormvariate(0, 0.03),
            success=True,
            steps=[
                StepTiming(step=0, label="a", duration_seconds=rng.lognormvariate(0, 0.03)),
                StepTiming(step=1, label="b", duration_seconds=step_b),
            ],
        )
        for name, value in signals_from_metric(m):
            f = mon.observe(signal=name, value=value, at=t)
            if f:
                findings.append((i, f.signal))
    first = {sig: i for i, sig in reversed(findings)}
    assert 60 <= first["duration_seconds"] <= 61  # within two runs of the change
    assert 60 <= first["step_1_duration_seconds"] <= 61
    assert all(sig != "step_0_duration_seconds" for _, sig in findings)


def _metric(i: int, at: datetime, duration: float) -> RunMetric:
    return RunMetric(
        run_id=f"run-{i}",
        automation_id="a1",
        version=1,
        source="production",
        started_at=at,
        duration_seconds=duration,
        success=True,
        steps=[],
    )


def test_late_and_duplicate_run_reports_are_learnt_not_dead_lettered() -> None:
    """A run report delivered after a later one (or stamped by a clock that stepped back) is a real run:
    the monitor learns it under the accept policy and says how it related to the series' time."""
    from rote.anomaly.monitor import AutomationMonitors

    mons = AutomationMonitors(MonitorConfig())
    times = [T0 + timedelta(minutes=10 * i) for i in range(60)]
    times[40], times[41] = times[41], times[40]  # one report overtakes another
    times[50] = times[49]  # two runs started in the same second
    orders = []
    for i, (at, v) in enumerate(zip(times, _runs(60), strict=True)):
        orders.append(mons.order_of("production", at))
        assert mons.observe_metric(_metric(i, at, v)) == []  # steady runs, no finding, no exception
    assert orders.count("late") == 1 and orders.count("duplicate") == 1
    assert orders[41] == "late" and orders[50] == "duplicate"
    det = mons.series["production"].detector("duration_seconds")
    assert det is not None and det.late == 1 and det.duplicates == 1 and det.n_seen == 60
    # a slowdown reported late is still found
    slow = _metric(99, times[-1] - timedelta(minutes=3), 12.0)
    assert mons.order_of("production", slow.started_at) == "late"
    assert [f.signal for f in mons.observe_metric(slow)] == ["duration_seconds"]
