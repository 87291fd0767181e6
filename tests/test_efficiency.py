"""Efficiency tracker: baselines, savings accounting, costs, ROI, trends, Prometheus export."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest
from test_workflow import FOUR, candidate
from test_workflow_support import automation_for, leno_events

from rote import metrics
from rote.efficiency import CostModel, EfficiencyTracker, MetricsExporter, TrendConfig
from rote.errors import ConfigError
from rote.state import decode_state, encode_state
from rote.streams.schemas import Candidate, RunMetric
from rote.streams.schemas import TestResult as Result

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def prun(
    n: int,
    duration: float,
    *,
    source: str = "production",
    success: bool = True,
    aid: str = "auto-c1",
    hours: float | None = None,
    version: int = 1,
) -> RunMetric:
    return RunMetric(
        run_id=f"{aid}-{source}-{n}",
        automation_id=aid,
        version=version,
        source=source,
        started_at=T0 + timedelta(hours=n if hours is None else hours),
        duration_seconds=duration,
        success=success,
    )


def make_result(n: int, wall: float, *, passed: bool = True) -> Result:
    return Result(
        result_id=f"t{n}",
        automation_id="auto-c1",
        version=1,
        language="python",
        verdict="passed" if passed else "failed",
        passed=passed,
        stop_reason="exited",
        wall_seconds=wall,
        cpu_seconds=0.1,
        peak_memory_bytes=0,
        output_bytes=0,
        started_at=T0,
    )


def routine(spans: list[float]) -> Candidate:
    """Instances whose total durations are exactly `spans` (four equal steps)."""
    return candidate(FOUR, [[s / 4] * 4 for s in spans])


COST = CostModel(
    hourly_rate=36.0, build_cost_hours=0.5, test_cost_per_run_seconds=0.01, run_cost_per_second=0.001
)


def test_baseline_is_the_median_of_the_users_instances() -> None:
    t = EfficiencyTracker(COST)
    t.apply_candidate(routine([50.0, 60.0, 70.0, 400.0]))  # one instance with a long interruption
    b = t.baselines()["c1"]
    assert (b.median_seconds, b.instances, b.source) == (65.0, 4, "instances")
    assert b.mean_seconds == pytest.approx(145.0)
    # A newer version re-sends some instances: they count once.
    c2 = routine([50.0, 60.0, 70.0, 400.0]).model_copy(update={"version": 2})
    t.apply_candidate(c2)
    assert t.baselines()["c1"].instances == 4


def test_savings_roi_and_cost_follow_the_documented_accounting() -> None:
    t = EfficiencyTracker(COST)
    t.apply_candidate(routine([60.0, 60.0, 60.0]))
    t.apply_automation(automation_for(routine([60.0]), version=1, state="active", created_at=T0))
    t.apply_test_result(make_result(1, 2.0))
    t.apply_test_result(make_result(2, 3.0, passed=False))
    runs = [prun(n, 10.0) for n in range(5)] + [prun(5, 30.0, success=False)]
    runs += [prun(n, 4.0, source="sandbox") for n in range(3)]
    for r in runs + runs[:2]:  # duplicates (at-least-once delivery) count once
        t.apply_metric(r)
    s = t.summary()
    assert s.production_runs == 6 and s.successful_runs == 5
    # 5 successful production runs each save 60 - 10 s; the failed one saves nothing; sandbox never saves.
    assert s.time_saved_seconds == pytest.approx(250.0)
    assert s.value_saved == pytest.approx(250.0 / 3600 * 36.0)
    assert s.cost["build"] == pytest.approx(0.5 * 36.0)
    assert s.cost["test"] == pytest.approx(5.0 * 0.01)
    assert s.cost["run"] == pytest.approx((5 * 10.0 + 30.0) * 0.001)
    total = 18.0 + 0.05 + 0.08
    assert s.cost_total == pytest.approx(total)
    assert s.roi == pytest.approx((2.5 - total) / total)
    (a,) = s.automations
    assert (a.tests, a.tests_passed, a.sandbox_runs, a.failed_runs) == (2, 1, 3, 1)
    assert a.automated_seconds == 10.0 and a.automated_from == "production"
    assert a.time_saved_per_run_seconds == pytest.approx(50.0) and not a.projected
    assert a.speedup == pytest.approx(6.0)
    assert a.roi == pytest.approx(s.roi)


def test_sandbox_only_automation_gets_a_projection_but_no_savings() -> None:
    t = EfficiencyTracker(COST)
    t.apply_candidate(routine([60.0, 60.0]))
    t.apply_automation(automation_for(routine([60.0]), version=1, state="verified", created_at=T0))
    for n in range(3):
        t.apply_metric(prun(n, 5.0 + n, source="sandbox"))
    (a,) = t.summary().automations
    assert a.projected and a.time_saved_per_run_seconds == pytest.approx(54.0)
    assert a.time_saved_seconds == 0.0 and a.automated_from == "sandbox"
    assert a.roi == pytest.approx(-1.0)


def test_runs_of_an_unknown_routine_cost_but_do_not_save() -> None:
    t = EfficiencyTracker(COST)
    t.apply_metric(prun(0, 10.0, aid="mystery"))
    s = t.summary()
    assert s.time_saved_seconds == 0.0 and s.cost["run"] == pytest.approx(0.01)
    assert s.automations[0].baseline_seconds is None


def test_an_automation_is_one_build_whatever_its_versions_and_maintenance_accrues() -> None:
    cost = CostModel(hourly_rate=60.0, build_cost_hours=1.0, maintenance_hours_per_month=0.5)
    t = EfficiencyTracker(cost)
    c = routine([60.0])
    for v in range(1, 6):  # the generator's five versions in seconds: one review, not five
        t.apply_automation(automation_for(c, version=v, state="active", created_at=T0 + timedelta(seconds=v)))
    s = t.summary(now=T0 + timedelta(days=30.4375))
    assert s.automations[0].versions == 5
    assert s.cost["build"] == pytest.approx(60.0)
    assert s.cost["maintenance"] == pytest.approx(30.0, rel=1e-4)


def test_only_an_automation_put_to_a_person_costs_a_review() -> None:
    """The sandbox rejects an automation before anyone sees it: its tests cost, a review does not. One
    verified once was reviewed, whatever its later versions do; a state written before the flag still
    decodes (the latest state is what it knows)."""
    t = EfficiencyTracker(COST)
    rejected, kept = routine([60.0]), candidate(FOUR, [[15.0] * 4], cid="c2")
    t.apply_automation(automation_for(rejected, version=1, state="rejected", created_at=T0))
    t.apply_test_result(make_result(1, 2.0, passed=False))
    s = t.summary()
    assert s.cost["build"] == 0.0 and s.cost["test"] == pytest.approx(0.02) and s.automations_built == 0
    t.apply_automation(automation_for(kept, version=1, state="verified", created_at=T0))
    t.apply_automation(automation_for(kept, version=2, state="rejected", created_at=T0 + timedelta(hours=1)))
    s = t.summary()
    assert s.cost["build"] == pytest.approx(18.0) and s.automations_built == 1
    data = encode_state(t)
    assert decode_state(EfficiencyTracker, data, cost=COST).summary() == s
    for rec in t.to_state()["autos"].values():
        assert "reviewed" in rec
    old = t.to_state()
    for rec in old["autos"].values():
        del rec["reviewed"]
    again = EfficiencyTracker.from_state(old, cost=COST)
    assert again.summary().cost["build"] == 0.0  # both latest states are "rejected": no review known


def test_trends_see_an_improving_automation() -> None:
    t = EfficiencyTracker(COST, TrendConfig(rolling_runs=5, ewma_alpha=0.5))
    t.apply_candidate(routine([60.0] * 3))
    t.apply_automation(automation_for(routine([60.0]), version=1, state="active", created_at=T0))
    for n in range(20):
        t.apply_metric(prun(n, 30.0 - n, hours=n * 24.0))  # one run a day, one second faster each day
    s = t.summary()
    tr = s.trends
    assert tr["slope_saved_per_run"] == pytest.approx(1.0)
    assert tr["slope_saved_per_day"] == pytest.approx(1.0)
    assert tr["rolling_mean_saved_seconds"] == pytest.approx(sum(60 - (30 - n) for n in range(15, 20)) / 5)
    assert tr["direction"] == "improving"
    assert tr["vs_baseline"]["rolling_ratio"] < tr["vs_baseline"]["mean_ratio"]
    assert s.series[-1]["cumulative_seconds"] == pytest.approx(s.time_saved_seconds)
    assert tr["bucket"] == "1D" and sum(b["saved_seconds"] for b in s.buckets) == pytest.approx(
        s.time_saved_seconds
    )


def test_series_is_thinned_but_keeps_the_exact_total() -> None:
    t = EfficiencyTracker(COST, TrendConfig(max_series_points=10))
    t.apply_candidate(routine([60.0]))
    t.apply_automation(automation_for(routine([60.0]), version=1, state="active", created_at=T0))
    for n in range(100):
        t.apply_metric(prun(n, 10.0 + (n % 7)))
    s = t.summary()
    assert len(s.series) == 10 and s.series[-1]["cumulative_seconds"] == pytest.approx(s.time_saved_seconds)


def test_tracker_state_round_trips_and_cost_model_reads_env() -> None:
    t = EfficiencyTracker(COST)
    ev = leno_events()
    t.extend(
        candidates=ev["candidates"],
        automations=ev["automations"],
        test_results=ev["test-results"],
        runs=ev["metrics"],
    )
    assert decode_state(EfficiencyTracker, encode_state(t), cost=COST).summary() == t.summary()

    env = {"ROTE_HOURLY_RATE": "80", "ROTE_BUILD_COST_HOURS": "2.5", "ROTE_CURRENCY": "EUR"}
    m = CostModel.from_env(env, run_cost_per_second=0.5)
    assert (m.hourly_rate, m.build_cost_hours, m.currency, m.run_cost_per_second) == (80.0, 2.5, "EUR", 0.5)
    with pytest.raises(ConfigError, match="ROTE_HOURLY_RATE='lots'"):
        CostModel.from_env({"ROTE_HOURLY_RATE": "lots"})
    with pytest.raises(ConfigError):
        CostModel(build_cost_hours=-1.0)


def _sample(name: str) -> float:
    for fam in metrics.REGISTRY.collect():
        for s in fam.samples:
            if s.name == name:
                return float(s.value)
    raise AssertionError(f"{name} not exported")


def test_prometheus_figures_match_the_summary() -> None:
    ev = leno_events()
    t = EfficiencyTracker(COST).extend(
        candidates=ev["candidates"],
        automations=ev["automations"],
        test_results=ev["test-results"],
        runs=ev["metrics"][:200],
    )
    exporter = MetricsExporter()
    before = _sample("rote_time_saved_seconds_total")
    s1 = t.summary()
    exporter.export(s1)
    assert _sample("rote_time_saved_seconds_total") - before == pytest.approx(s1.time_saved_seconds)
    t.extend(runs=ev["metrics"][200:])
    s2 = t.summary()
    exporter.export(s2)
    assert _sample("rote_time_saved_seconds_total") - before == pytest.approx(s2.time_saved_seconds)
    assert _sample("rote_roi_ratio") == pytest.approx(s2.roi)
    assert _sample("rote_manual_baseline_seconds") == pytest.approx(s2.mean_baseline_seconds)
    assert b"rote_roi_ratio" in generate_latest(metrics.REGISTRY)


def test_no_roi_below_a_cent_of_cost() -> None:
    """Automations all rejected, their sandbox tests costing a fraction of a cent and nothing saved: there is
    no ROI, not "−100 % = (0.00 saved − 0.00 cost) / 0.00" (a new user read it as a total loss). From a cent
    on, the ratio is given and explained."""
    from rote.report.roi import explain_roi

    cheap = CostModel(hourly_rate=36.0, build_cost_hours=0.5, test_cost_per_run_seconds=0.000_01)
    t = EfficiencyTracker(cheap)
    rejected = routine([60.0])
    t.apply_automation(automation_for(rejected, version=1, state="rejected", created_at=T0))
    t.apply_test_result(make_result(1, 2.0, passed=False))
    s = t.summary()
    assert 0 < s.cost["total"] < 0.01
    assert s.roi is None and s.automations[0].roi is None
    assert explain_roi(s.to_dict()) is None
    MetricsExporter().export(s)
    assert math.isnan(_sample("rote_roi_ratio"))  # no ratio, not the last one left standing
    t2 = EfficiencyTracker(COST)  # 0.02 of tests: a cost to relate the (no) savings to
    t2.apply_automation(automation_for(rejected, version=1, state="rejected", created_at=T0))
    t2.apply_test_result(make_result(1, 2.0, passed=False))
    s2 = t2.summary()
    assert s2.roi == pytest.approx(-1.0) and (explain_roi(s2.to_dict()) or "").startswith("−100")
