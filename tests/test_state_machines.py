"""The one state check suite (rote.state.checks) run against every state machine rote keeps in changelogs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest
from test_workflow_support import leno_events

from rote.anomaly.monitor import AutomationMonitors, MonitorConfig
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.efficiency import CostModel, EfficiencyTracker
from rote.generator.registry import Registry
from rote.report import ReportBuilder
from rote.state.checks import (
    StateCase,
    check_batch_equals_incremental,
    check_bounded,
    check_hostile,
    check_redelivery,
    check_round_trip,
)
from rote.streams.schemas import Anomaly, Automation, Candidate, RunMetric, TestResult, UserAction
from rote.workflow import WorkflowAnalyzer

COST = CostModel()


@functools.cache
def _feed(seed: int) -> list[Any]:
    """The optimizer feed's events for two Leno routines, in the order a run would publish them."""
    ev = leno_events(seed=7 + seed % 3)
    return [
        *ev["candidates"],
        *ev["automations"],
        *ev["test-results"],
        *sorted(ev["metrics"], key=lambda m: m.started_at),
        *ev["anomalies"],
    ]


def _one_automation(seed: int) -> list[Any]:
    feed = _feed(seed)
    aid = next(e.automation_id for e in feed if isinstance(e, RunMetric))
    return [e for e in feed if isinstance(e, RunMetric | TestResult) and e.automation_id == aid]


def _route(target: Any, event: Any) -> None:
    if isinstance(event, Candidate):
        target.apply_candidate(event)
    elif isinstance(event, Automation):
        target.apply_automation(event)
    elif isinstance(event, TestResult):
        if hasattr(target, "apply_test_result"):
            target.apply_test_result(event)
    elif isinstance(event, RunMetric):
        target.apply_metric(event)
    elif isinstance(event, Anomaly) and hasattr(target, "apply_anomaly"):
        target.apply_anomaly(event)


def _automation_feed(seed: int, *, runs: int = 2500) -> list[Any]:
    """One automation's feed (its versions, tests, anomalies and `runs` production runs): what one
    whole-picture state key holds, pushed past every window the state keeps."""
    events = [e for e in _feed(seed) if not isinstance(e, Candidate)]
    aid = next(e.automation_id for e in events if isinstance(e, RunMetric))
    mine = [e for e in events if getattr(e, "automation_id", None) == aid]
    base = [e for e in mine if isinstance(e, RunMetric)]
    extra = [
        base[i % len(base)].model_copy(update={"run_id": f"extra-{seed}-{i}"})
        for i in range(runs - len(base))
    ]
    return [*mine, *extra]


def _routine_feed(seed: int) -> list[Any]:
    """Every version of one routine's candidate (a `c:<id>` state key)."""
    cands = [e for e in _feed(seed) if isinstance(e, Candidate)]
    first = cands[0].candidate_id
    mine = [c for c in cands if c.candidate_id == first]
    return [c.model_copy(update={"version": c.version + k}) for k in range(40) for c in mine]


def _registry_events(seed: int) -> list[Any]:
    return [e for e in _feed(seed) if not isinstance(e, Candidate | Anomaly)]


def _monitors_apply(m: AutomationMonitors, event: Any) -> Any:
    if isinstance(event, RunMetric):
        return m.observe_metric(event)
    return m.observe_result(event)


@functools.cache
def _actions() -> tuple[UserAction, ...]:
    from rote.importers import bundled_log, load_actions

    path, fmt = bundled_log()
    return tuple(load_actions(path, fmt=fmt))


DISCOVERER = RoutineDiscoverer(DiscoveryConfig())


def _learn_many(state: UserState, actions: Sequence[UserAction]) -> Any:
    return DISCOVERER.learn_many(state, list(actions))


def _discovery_fingerprint(state: UserState) -> Any:
    """The user's state without its duplicate counter (which counts redeliveries for the metrics)."""
    saved, state.duplicates = state.duplicates, 0
    try:
        return state.to_state()
    finally:
        state.duplicates = saved


CASES: list[StateCase[Any]] = [
    StateCase(
        name="discovery-user",
        cls=UserState,
        new=lambda: DISCOVERER.new_state("vleno"),
        apply=DISCOVERER.learn_one,
        events=lambda seed: _actions(),
        view=lambda s: [c.model_dump(mode="json") for c in DISCOVERER.flush(s)],
        apply_batch=_learn_many if hasattr(RoutineDiscoverer, "learn_many") else None,
        fingerprint=_discovery_fingerprint,
        max_bytes=20 * 1024,
        bound_events=2409,
    ),
    StateCase(
        name="registry",
        cls=Registry,
        new=Registry,
        apply=_route,
        events=_registry_events,
        view=lambda r: r.to_json(),
        max_bytes=400 * 1024,
    ),
    StateCase(
        name="automation-monitors",
        cls=AutomationMonitors,
        new=lambda: AutomationMonitors(MonitorConfig()),
        apply=_monitors_apply,
        events=_one_automation,
        view=lambda m: sorted(m.series),
        context={"config": MonitorConfig()},
        max_bytes=300 * 1024,
    ),
    StateCase(
        name="workflow-analyzer",
        cls=WorkflowAnalyzer,
        new=WorkflowAnalyzer,
        apply=_route,
        events=_feed,
        view=lambda w: w.analysis().to_dict(),
        max_bytes=900 * 1024,
    ),
    StateCase(
        name="workflow-analyzer/automation",
        cls=WorkflowAnalyzer,
        new=WorkflowAnalyzer,
        apply=_route,
        events=_automation_feed,
        view=lambda w: w.analysis().to_dict(),
        max_bytes=500 * 1024,
        bound_events=2600,
    ),
    StateCase(
        name="efficiency-tracker",
        cls=EfficiencyTracker,
        new=lambda: EfficiencyTracker(COST),
        apply=_route,
        events=_feed,
        view=lambda t: t.summary().to_dict(),
        context={"cost": COST},
        max_bytes=900 * 1024,
    ),
    StateCase(
        name="report-builder",
        cls=ReportBuilder,
        new=lambda: ReportBuilder(COST),
        apply=_route,
        events=_feed,
        view=lambda b: b.summary().to_dict(),
        context={"cost": COST},
        max_bytes=900 * 1024,
    ),
    StateCase(
        name="report-builder/automation",
        cls=ReportBuilder,
        new=lambda: ReportBuilder(COST),
        apply=_route,
        events=_automation_feed,
        view=lambda b: b.summary().to_dict(),
        context={"cost": COST},
        max_bytes=600 * 1024,
        bound_events=2600,
    ),
    StateCase(
        name="report-builder/routine",
        cls=ReportBuilder,
        new=lambda: ReportBuilder(COST),
        apply=_route,
        events=_routine_feed,
        view=lambda b: b.summary().to_dict(),
        context={"cost": COST},
        max_bytes=100 * 1024,
    ),
]

IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_round_trip(case: StateCase[Any]) -> None:
    check_round_trip(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_redelivered_event_changes_nothing(case: StateCase[Any]) -> None:
    check_redelivery(case)


@pytest.mark.parametrize("case", [c for c in CASES if c.apply_batch is not None], ids=lambda c: c.name)
def test_batch_equals_incremental(case: StateCase[Any]) -> None:
    check_batch_equals_incremental(case)


#: Discovery's user state: being slimmed (issue 15). Strict: the mark goes when it holds.
#: (The whole-picture cases hold two automations; what bounds the agents' records are the "/automation"
#: and "/routine" cases: one state per automation and per routine, joined only for a report.)
UNBOUNDED: set[str] = set()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="state not bounded yet"))
        if c.name in UNBOUNDED
        else c
        for c in CASES
    ],
    ids=IDS,
)
def test_state_is_bounded(case: StateCase[Any]) -> None:
    assert check_bounded(case) > 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hostile_records_are_state_errors(case: StateCase[Any], capfd: pytest.CaptureFixture[str]) -> None:
    assert check_hostile(case) >= 10
    assert "pwned-by-state" not in capfd.readouterr().err
