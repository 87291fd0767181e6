"""The run's summary, computed from its archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rote.archive import read_events
from rote.demo.run import automation_runs, demo_form
from rote.pipeline.options import Progress
from rote.streams.schemas import Automation, Candidate, OptimizationReport, RunMetric, TestResult
from rote.streams.topics import (
    ANOMALIES,
    AUTOMATIONS,
    CANDIDATES,
    CATALOGUE,
    DEAD_LETTERS,
    METRICS,
    OPTIMIZATION_REPORTS,
    TEST_RESULTS,
)


def summarize(
    run_dir: Path, state: Progress, *, seconds: float, replay: Path, broker_kind: str
) -> dict[str, Any]:
    """The run's outcome, from the archive: what every topic received and what came of it."""
    from rote.generator.registry import Registry

    candidates: dict[str, Any] = {}
    for c in read_events(run_dir, CANDIDATES.name, Candidate):
        if c.candidate_id not in candidates or c.version >= candidates[c.candidate_id].version:
            candidates[c.candidate_id] = c
    registry = Registry()
    for a in read_events(run_dir, AUTOMATIONS.name, Automation):
        if a.state == "generated":
            registry.apply_automation(a)
    results = list(read_events(run_dir, TEST_RESULTS.name, TestResult))
    for r in results:
        registry.apply_test_result(r)
    for m in read_events(run_dir, METRICS.name, RunMetric):
        registry.apply_metric(m)
    reports = list(read_events(run_dir, OPTIMIZATION_REPORTS.name, OptimizationReport))
    efficiency = reports[-1].efficiency if reports else {}
    return {
        "replay": str(replay),
        "broker": broker_kind,
        "seconds": round(seconds, 1),
        "timed_out": state.timed_out,
        "error": state.error,
        "events_in": state.produced,
        "injected_invalid_events": state.injected_bad,
        "dead_letters": state.counts.get(DEAD_LETTERS.name, 0),
        "candidates": len(candidates),
        "top_candidates": [
            {
                "candidate_id": c.candidate_id,
                "score": c.score,
                "occurrences": c.occurrences,
                "steps": len(c.steps),
                "estimated_hours_saved_per_year": c.estimated_hours_saved_per_year,
            }
            for c in sorted(candidates.values(), key=lambda c: -c.score)[:5]
        ],
        "automations": registry.counts_by_state(),
        "test_results": len(results),
        "tests_passed": sum(1 for r in results if r.passed),
        "simulated_production_runs": automation_runs(run_dir)["simulated"],
        "automation_runs": automation_runs(run_dir),
        "demo_form": demo_form(state),
        "anomalies": state.counts.get(ANOMALIES.name, 0),
        "reports": len(reports),
        "estimated_hours_saved_per_year": round(
            sum(c.estimated_hours_saved_per_year for c in candidates.values()), 2
        ),
        "time_saved_seconds": efficiency.get("time_saved_seconds"),
        "roi": efficiency.get("roi"),
        "topics": {spec.name: state.counts.get(spec.name, 0) for spec in CATALOGUE},
        "archive": str(run_dir),
    }
