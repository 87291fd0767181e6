"""Registry lifecycle after verification (issue 12): active, degraded on repeated production failures,
active again on a success, simulated runs counted apart, and what the executor asks the registry."""

from __future__ import annotations

from datetime import timedelta

from test_registry import T0, auto, metric, result  # noqa: F401 - `auto` is a fixture

from rote.generator.registry import Registry, RegistryConfig
from rote.streams.schemas import Automation, RunMetric


def _verified(a: Automation, config: RegistryConfig | None = None) -> Registry:
    reg = Registry(config)
    reg.apply_automation(a)
    for c in a.test_cases:
        for lang in ("python", "bash"):
            reg.apply_test_result(result(a, c.case_id, lang))
    assert reg.get(a.automation_id).state == "verified"  # type: ignore[union-attr]
    return reg


def _failed(a: Automation, k: int, error: str) -> RunMetric:
    return metric(a, k, success=False).model_copy(
        update={"outcome": "failed", "error": error, "failed_step": 2}
    )


def test_repeated_production_failures_degrade_then_a_success_recovers(auto: Automation) -> None:  # noqa: F811
    reg = _verified(auto, RegistryConfig(degrade_after_failures=3))
    reg.apply_metric(metric(auto, 1))
    assert reg.get(auto.automation_id).state == "active"  # type: ignore[union-attr]
    reg.apply_metric(_failed(auto, 2, "step 2 (click field='x'): no element"))
    reg.apply_metric(metric(auto, 3))  # a success in between resets the count
    reg.apply_metric(_failed(auto, 4, "a"))
    reg.apply_metric(_failed(auto, 5, "b"))
    assert reg.get(auto.automation_id).state == "active"  # type: ignore[union-attr]
    reg.apply_metric(_failed(auto, 6, "step 2 (click field='SingleLine'): no element on /form"))
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "degraded"
    assert "3 production runs in a row failed" in (rec.state_reason or "")
    assert "field='SingleLine'" in (rec.state_reason or "")
    assert rec.stats.consecutive_production_failures == 3
    assert reg.state_of(auto.automation_id) == (auto, "degraded")
    reg.apply_metric(metric(auto, 7))
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "active" and "succeeded again" in (rec.state_reason or "")
    assert [t.state for t in rec.history][-3:] == ["active", "degraded", "active"]


def test_sandbox_failures_never_degrade(auto: Automation) -> None:  # noqa: F811
    reg = _verified(auto)
    for k in range(5):
        reg.apply_metric(metric(auto, k, success=False, source="sandbox"))
    assert reg.get(auto.automation_id).state == "verified"  # type: ignore[union-attr]


def test_simulated_runs_are_counted_apart_and_move_nothing(auto: Automation) -> None:  # noqa: F811
    reg = _verified(auto)
    for k in range(4):
        reg.apply_metric(metric(auto, k, source="simulated", dur=0.01))
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "verified"
    assert rec.stats.simulated_runs == 4 and rec.stats.runs == 0 and rec.stats.production_runs == 0
    assert rec.stats.duration_p50_seconds is None


def test_has_run_answers_for_reported_run_ids(auto: Automation) -> None:  # noqa: F811
    reg = _verified(auto)
    m = metric(auto, 1)
    assert not reg.has_run(m.run_id)
    reg.apply_metric(m)
    assert reg.has_run(m.run_id)
    assert reg.state_of("nope") is None
    assert T0 + timedelta(hours=1) == m.started_at
