"""Workflow analyzer: bottlenecks, waits, queueing, parallelization, caching, score; pm4py cross-check."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from test_workflow_support import RT_SLICE, SHARED, SR_SLICE, leno_candidates, leno_events, leno_frame

from rote.state import decode_state, encode_state
from rote.streams.schemas import (
    Candidate,
    RoutineInstance,
    RoutineStep,
    RunMetric,
    ScoreBreakdown,
    StepParameter,
    StepTiming,
    Target,
)
from rote.workflow import (
    AnalysisError,
    AnalyzerConfig,
    WorkflowAnalyzer,
    analyze,
    dependency_edges,
    edge_times,
    rank_agreement,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def step(
    label: str,
    action: str = "read",
    *,
    field: str | None = None,
    kind: str | None = None,
    source: int | None = None,
) -> RoutineStep:
    param = StepParameter(kind=kind, source_step=source) if kind else None
    return RoutineStep(
        label=label, app="App", action_type=action, target=Target(field=field or label), parameter=param
    )


def candidate(
    steps: list[RoutineStep],
    durations: list[list[float]],
    *,
    cid: str = "c1",
    version: int = 1,
    values: list[list[str | None]] | None = None,
    gap: float = 0.0,
) -> Candidate:
    instances = []
    for n, durs in enumerate(durations):
        start = T0 + timedelta(hours=n)
        vals = values[n] if values else [f"v{n}-{i}" for i in range(len(steps))]
        instances.append(
            RoutineInstance(
                event_ids=[f"{cid}-{n}-{i}" for i in range(len(steps))],
                values=vals,
                start=start,
                end=start + timedelta(seconds=sum(durs) + gap),
                step_durations_seconds=list(durs),
            )
        )
    mean = sum(sum(d) + gap for d in durations) / len(durations)
    return Candidate(
        candidate_id=cid,
        version=version,
        user_id="u1",
        routine=[s.label for s in steps],
        steps=steps,
        occurrences=len(durations),
        instances=instances,
        score=50.0,
        breakdown=ScoreBreakdown(
            frequency=0.5, time_cost=0.5, regularity=0.5, determinism=0.5, variability=0.5, length=0.5
        ),
        mean_duration_seconds=mean,
        observed_hours_per_year=1.0,
        estimated_hours_saved_per_year=1.0,
        rank=1,
        priority="medium",
        first_seen=T0,
        last_seen=T0 + timedelta(hours=len(durations)),
        updated_at=T0,
    )


def run(aid: str, n: int, start: datetime, steps: list[float], *, extra: float = 0.0) -> RunMetric:
    return RunMetric(
        run_id=f"{aid}-{n}",
        automation_id=aid,
        version=1,
        source="production",
        started_at=start,
        duration_seconds=sum(steps) + extra,
        success=True,
        steps=[StepTiming(step=i, label=f"s{i}", duration_seconds=d) for i, d in enumerate(steps)],
    )


FOUR = [step("a"), step("b"), step("c"), step("d")]


def test_even_routine_has_no_step_bottleneck_and_a_dominant_step_is_found() -> None:
    even = candidate(FOUR, [[2.0, 2.0, 2.0, 2.0]] * 5)
    assert [b for b in analyze([even], []).bottlenecks if b.kind == "step"] == []

    skewed = candidate(FOUR, [[1.0, 1.0, 12.0, 1.0]] * 5)
    a = analyze([skewed], [])
    steps = [b for b in a.bottlenecks if b.kind == "step"]
    assert [(b.step, b.label) for b in steps] == [(2, "c")]
    assert steps[0].share == pytest.approx(12 / 15)
    assert steps[0].severity == "high"
    assert "fair share" in steps[0].reasons[0]


def test_high_variance_step_is_flagged_even_without_a_large_share() -> None:
    durs = [
        [2.0, 2.0, 0.2, 2.0],
        [2.0, 2.0, 6.0, 2.0],
        [2.0, 2.0, 0.3, 2.0],
        [2.0, 2.0, 5.5, 2.0],
        [2.0, 2.0, 0.25, 2.0],
    ]
    a = analyze([candidate(FOUR, durs)], [])
    flagged = {b.label: b for b in a.bottlenecks if b.kind == "step"}
    assert set(flagged) == {"c"}
    assert any("high variance" in r for r in flagged["c"].reasons)
    assert flagged["c"].cv is not None and flagged["c"].cv > 1


def test_waits_between_steps_and_interruptions_become_a_wait_bottleneck() -> None:
    gaps = candidate(FOUR, [[1.0, 1.0, 1.0, 1.0]] * 4, gap=3.0)
    w = [b for b in analyze([gaps], []).bottlenecks if b.kind == "wait"]
    assert len(w) == 1 and w[0].total_seconds == pytest.approx(12.0)
    assert w[0].share == pytest.approx(12 / 28)

    durs = [[1.0, 1.0, 1.0, 1.0] for _ in range(8)]
    durs[3][1] = 60.0  # a coffee break inside step b
    a = analyze([candidate(FOUR, durs)], [])
    w = [b for b in a.bottlenecks if b.kind == "wait"]
    assert len(w) == 1 and "interruptions in b" in w[0].reasons[-1]
    assert w[0].total_seconds == pytest.approx(59.0)


def test_automation_runs_have_unaccounted_time_and_queueing() -> None:
    spaced = [run("auto", n, T0 + timedelta(minutes=10 * n), [0.5, 0.5]) for n in range(6)]
    assert [b for b in analyze([], spaced).bottlenecks if b.kind == "queue"] == []

    # Each run starts before the previous one ended: the runner is saturated.
    busy = [run("auto", n, T0 + timedelta(seconds=0.9 * n), [0.5, 0.5], extra=0.5) for n in range(10)]
    a = analyze([], busy)
    kinds = {b.kind for b in a.bottlenecks}
    assert {"queue", "wait"} <= kinds
    q = next(b for b in a.bottlenecks if b.kind == "queue")
    assert "9 of 10 runs started before the previous one finished" in q.reasons
    wait = next(b for b in a.bottlenecks if b.kind == "wait")
    assert wait.total_seconds == pytest.approx(5.0)


def test_dependency_edges_follow_data_flow_targets_and_barriers() -> None:
    steps = [
        step("copyA", "copyCell", field="A"),
        step("pasteA", "paste", field="fa", kind="derived", source=0),
        step("copyB", "copyCell", field="B"),
        step("pasteB", "paste", field="fb", kind="derived", source=2),
        step("editA", "editField", field="fa"),
        step("submit", "clickButton", field="go"),
        step("after", "read", field="x"),
    ]
    edges = dependency_edges(steps)
    assert {(0, 1), (2, 3), (1, 4)} <= edges
    assert all((i, 5) in edges for i in range(5))
    assert (5, 6) in edges
    assert (0, 2) not in edges and (1, 3) not in edges


def test_parallel_plan_splits_independent_chains_and_measures_the_critical_path() -> None:
    steps = [
        step("copyA", "copyCell", field="A"),
        step("pasteA", "paste", field="fa", kind="derived", source=0),
        step("copyB", "copyCell", field="B"),
        step("pasteB", "paste", field="fb", kind="derived", source=2),
        step("submit", "clickButton", field="go"),
    ]
    c = candidate(steps, [[1.0, 2.0, 1.0, 4.0, 1.0]] * 3)
    (plan,) = analyze([c], []).parallelization
    assert plan.groups == [[0, 1], [2, 3]]
    assert plan.sequential_seconds == pytest.approx(9.0)
    assert plan.critical_path_seconds == pytest.approx(6.0)  # max(1+2, 1+4) + submit
    assert plan.saving_seconds == pytest.approx(3.0)
    assert plan.durations_from == "manual"

    chained = [step("a"), step("b", kind="derived", source=0), step("c", kind="derived", source=1)]
    assert analyze([candidate(chained, [[1.0, 1.0, 1.0]] * 3)], []).parallelization == []


def test_caching_finds_repeated_reads_but_not_repeated_writes() -> None:
    steps = [
        step("lookup", "copyCell", field="rate"),
        step("type", "editField", field="f", kind="derived", source=0),
    ]
    vals: list[list[str | None]] = [
        ["EUR", "EUR"],
        ["EUR", "EUR"],
        ["USD", "USD"],
        ["EUR", "EUR"],
        ["GBP", "GBP"],
    ]
    c = candidate(steps, [[2.0, 1.0]] * 5, values=vals)
    hints = analyze([c], []).caching
    assert [h.label for h in hints] == ["lookup"]
    h = hints[0]
    assert (h.executions, h.distinct_inputs, h.repeats) == (5, 3, 2)
    assert h.saving_seconds == pytest.approx(4.0)
    assert h.top_inputs[0]["count"] == 3 and "EUR" not in str(h.top_inputs)

    distinct = candidate(steps, [[2.0, 1.0]] * 5)
    assert analyze([distinct], []).caching == []


def test_optimization_score_is_100_for_an_even_steady_routine_and_drops_with_each_problem() -> None:
    chained = [step("a"), step("b", kind="derived", source=0), step("c", kind="derived", source=1)]
    perfect = analyze([candidate(chained, [[2.0, 2.0, 2.0]] * 5)], []).score
    assert perfect is not None and perfect.score == pytest.approx(100.0)
    skew = analyze([candidate(chained, [[1.0, 1.0, 10.0]] * 5)], []).score
    assert skew is not None and skew.score < perfect.score and skew.factors["balance"] < 1
    waits = analyze([candidate(chained, [[2.0, 2.0, 2.0]] * 5, gap=6.0)], []).score
    assert waits is not None and waits.factors["flow"] == pytest.approx(0.5)
    independent = analyze([candidate(FOUR, [[2.0, 2.0, 2.0, 2.0]] * 5)], []).score
    assert independent is not None and independent.factors["parallelism"] < 1
    assert analyze([], []).score is None


def test_latest_candidate_version_wins_and_incremental_equals_batch() -> None:
    old = candidate(FOUR, [[1.0, 1.0, 12.0, 1.0]] * 3, version=1)
    new = candidate(FOUR, [[1.0, 12.0, 1.0, 1.0]] * 3, version=2)
    runs = [run("auto", n, T0 + timedelta(minutes=n), [0.1, 0.9, 0.1]) for n in range(5)]
    inc = WorkflowAnalyzer()
    for c in (new, old):
        inc.apply_candidate(c)
    for r in runs:
        inc.apply_metric(r)
    inc = decode_state(WorkflowAnalyzer, encode_state(inc))
    batch = analyze([old, new], runs)
    assert inc.analysis() == batch
    routine = [b for b in batch.bottlenecks if b.scope == "routine" and b.kind == "step"]
    assert [b.label for b in routine] == ["b"]


def test_incremental_analyzer_keeps_a_bounded_window_of_runs() -> None:
    inc = WorkflowAnalyzer(AnalyzerConfig(max_runs_per_automation=3))
    for n in range(10):
        inc.apply_metric(run("auto", n, T0 + timedelta(minutes=n), [1.0]))
    assert [r.run_id for r in inc.runs] == ["auto-7", "auto-8", "auto-9"]


def test_config_is_validated() -> None:
    with pytest.raises(AnalysisError):
        AnalyzerConfig(share_factor=1.0)
    with pytest.raises(AnalysisError):
        AnalyzerConfig(score_weights={"balance": 0.0})


def test_rank_agreement_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    a = {"x": 5.0, "y": 3.0, "z": 1.0, "w": 4.0, "v": 2.0}
    b = {"x": 4.0, "y": 3.5, "z": 0.5, "w": 5.0, "v": 2.0, "only_b": 9.0}
    got = rank_agreement(a, b, k=2)
    keys = sorted(a)
    expected = scipy_stats.kendalltau([a[k] for k in keys], [b[k] for k in keys]).statistic
    assert got["kendall_tau"] == pytest.approx(expected)
    assert got["top_k_overlap"] == pytest.approx(0.5)  # {x, w} vs {only_b, w}
    assert rank_agreement(a, {k: -v for k, v in a.items()})["kendall_tau"] == pytest.approx(-1.0)


# --------------------------------------------------------------------------------------------------
# real data: Leno logs
# --------------------------------------------------------------------------------------------------


def test_leno_slice_candidates_carry_the_copy_paste_data_flow() -> None:
    (sr, *_) = leno_candidates(SR_SLICE)
    assert sr.routine[:3] == ["copyCell_A", "paste_SingleLine", "editField_SingleLine"]
    assert sr.steps[1].parameter is not None and sr.steps[1].parameter.source_step == 0
    assert sr.steps[2].parameter is not None and sr.steps[2].parameter.source_step == 1
    assert all(len(i.step_durations_seconds) == len(sr.steps) for i in sr.instances)


def test_leno_analysis_finds_the_submit_wait_and_independent_fields() -> None:
    ev = leno_events()
    a = analyze(ev["candidates"], ev["metrics"], automations=ev["automations"])
    assert a.score is not None and 0 < a.score.score < 100
    top_auto = next(b for b in a.bottlenecks if b.scope == "automation")
    assert top_auto.label in {"clickButton_Submit", "clickLink_Add another response."}
    sr_plan = next(p for p in a.parallelization if p.candidate_id == "studentrecord-v0")
    assert sr_plan.durations_from == "automated" and len(sr_plan.groups) >= 5
    assert sr_plan.critical_path_seconds < sr_plan.sequential_seconds


def _pm4py_total_time(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    pm4py = pytest.importorskip("pm4py")
    log = pd.DataFrame(
        {"case:concept:name": df["caseID"], "concept:name": df["action"], "time:timestamp": df["ts"]}
    )
    perf, _, _ = pm4py.discover_performance_dfg(log)
    return {edge: float(v["sum"]) for edge, v in perf.items()}


def _analyzer_ranking(cands: list[Candidate]) -> dict[tuple[str, str], float]:
    """The analyzer's own per-step totals (routine scope), keyed by the DFG edge that leads into the step."""
    labels = {c.candidate_id: [s.label for s in c.steps] for c in cands}
    out: dict[tuple[str, str], float] = {}
    for s in analyze(cands, []).step_stats:
        if s.scope == "routine" and s.step > 0:
            key = (labels[s.scope_id][s.step - 1], s.label)
            out[key] = out.get(key, 0.0) + s.total_seconds
    return out


def _crosscheck(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    cands = leno_candidates(path)
    mine = _analyzer_ranking(cands)
    assert mine == pytest.approx(edge_times(cands))
    df = leno_frame(path)
    rows = {int(e.split("-")[-1]) for c in cands for i in c.instances for e in i.event_ids if e}
    same_cases = _pm4py_total_time(df[df["row"].isin(rows)])
    whole_log = _pm4py_total_time(df)
    return rank_agreement(mine, same_cases, k=5), rank_agreement(mine, whole_log, k=5)


@pytest.mark.parametrize("path", [SR_SLICE, RT_SLICE], ids=["StudentRecord", "Reimbursement"])
def test_bottleneck_ranking_agrees_with_pm4py_performance_dfg_on_the_slices(path: Path) -> None:
    same, whole = _crosscheck(path)
    assert same["kendall_tau"] == pytest.approx(1.0) and same["top_k_overlap"] == 1.0
    assert whole["kendall_tau"] > 0.7 and whole["top_k_overlap"] >= 0.6


@pytest.mark.skipif(not (SHARED / "uilogs").is_dir(), reason="shared data not beside the repo")
@pytest.mark.parametrize("name", ["StudentRecord", "Reimbursement"])
def test_bottleneck_ranking_agrees_with_pm4py_on_the_full_leno_logs(name: str) -> None:
    path = SHARED / "uilogs" / "leno-sr-rt" / "segmented_groundtruth" / f"{name}_segmented.csv"
    same, whole = _crosscheck(path)
    print(f"\n{name}: same cases {same}\n{name}: whole log {whole}")
    assert same["kendall_tau"] == pytest.approx(1.0)
    assert not math.isnan(whole["kendall_tau"]) and whole["kendall_tau"] > 0.85
    assert whole["top1_agrees"] == 1.0 and whole["top_k_overlap"] >= 0.8
