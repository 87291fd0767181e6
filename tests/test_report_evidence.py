"""The report shows real time saved with its evidence: production run count, measured durations, the
slowest steps of the automation itself; simulated runs are said apart and never counted as saved."""

from __future__ import annotations

from datetime import timedelta

from test_registry import CFG, T0, file_candidate

from rote.generator import generate
from rote.report import ReportBuilder, render_html
from rote.report.compose import RunEvidence
from rote.streams.schemas import RunMetric, StepTiming


def _run(aid: str, k: int, *, source: str = "production", ok: bool = True) -> RunMetric:
    return RunMetric(
        run_id=f"{source}-{k}",
        automation_id=aid,
        version=1,
        source=source,
        started_at=T0 + timedelta(days=10, minutes=k),
        duration_seconds=2.0 + k * 0.01,
        success=ok,
        steps=[
            StepTiming(step=0, label="createFolder archive", duration_seconds=0.01),
            StepTiming(step=1, label="readFile report", duration_seconds=1.5),
            StepTiming(step=2, label="writeFile summary", duration_seconds=0.4 + k * 0.01),
        ],
    )


def test_automation_rows_carry_the_evidence_and_the_page_shows_it() -> None:
    c = file_candidate()
    a = generate(c, config=CFG, now=T0)
    b = ReportBuilder()
    b.apply_candidate(c)
    b.apply_automation(a)
    for k in range(5):
        b.apply_metric(_run(a.automation_id, k, ok=k != 4))
    b.apply_metric(_run(a.automation_id, 9, source="simulated"))
    report = b.report(T0 + timedelta(days=11))
    row = next(r for r in report.automations if r["automation_id"] == a.automation_id)
    ev = row["evidence"]
    assert (ev["production_runs"], ev["production_successes"], ev["simulated_runs"]) == (5, 4, 1)
    assert [s["label"] for s in ev["slowest_steps"]] == [
        "readFile report",
        "writeFile summary",
        "createFolder archive",
    ]
    assert abs(ev["mean_run_seconds"] - 2.02) < 1e-9
    page = render_html(report)
    assert "Evidence for the time saved" in page and "5 production runs (4 succeeded)" in page
    assert "slowest steps of the automation: 1. readFile report" in page
    assert "1 simulated runs</b> (not counted as time saved)" in page


def test_evidence_state_round_trips_and_rejects_garbage() -> None:
    e = RunEvidence()
    for k in range(3):
        e.add(_run("a", k))
    again = RunEvidence.from_state(e.to_state(), "t")
    assert again.to_dict() == e.to_dict()
    import pytest

    from rote.errors import StateError

    with pytest.raises(StateError, match="not a run-evidence record"):
        RunEvidence.from_state({"runs": "x"}, "t")
    b = ReportBuilder()
    b.apply_metric(_run("a", 1))
    restored = ReportBuilder.from_state(b.to_state())
    assert restored._evidence["a"].to_dict() == b._evidence["a"].to_dict()
