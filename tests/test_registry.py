"""Registry lifecycle and statistics, fed with automations generated and run for real."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rote.generator import generate, replay
from rote.generator.generate import GeneratorConfig
from rote.generator.plan import PlanConfig
from rote.generator.registry import Registry, RegistryConfig, from_archive, percentile
from rote.state import decode_state, encode_state
from rote.streams.schemas import (
    Automation,
    Candidate,
    RoutineInstance,
    RoutineStep,
    RunMetric,
    ScoreBreakdown,
    Target,
)
from rote.streams.schemas import (
    TestResult as Result,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def file_candidate(n: int = 6, version: int = 1) -> Candidate:
    """A file routine: make the archive folder, read today's report, write its total to a summary file,
    copy the report into the archive."""
    steps = [
        RoutineStep(
            label="createFolder archive",
            app="Finder",
            action_type="createFolder",
            target=Target(file="archive"),
        ),
        RoutineStep(
            label="readFile report", app="Editor", action_type="readFile", target=Target(file="inbox/r.txt")
        ),
        RoutineStep(
            label="writeFile summary", app="Editor", action_type="writeFile", target=Target(file="s.txt")
        ),
        RoutineStep(
            label="copyFile report", app="Finder", action_type="copyFile", target=Target(file="inbox/r.txt")
        ),
    ]
    instances = []
    for k in range(n):
        report = f"inbox/report-{k}.txt"
        content = f"date;{100 + 7 * k};units\nline two\n"
        instances.append(
            RoutineInstance(
                event_ids=[f"e{k}-{s}" for s in range(4)],
                values=[None, content, f"total {100 + 7 * k}", f"archive/report-{k}.txt"],
                targets=[
                    Target(file="archive"),
                    Target(file=report),
                    Target(file=f"archive/summary-{k}.txt"),
                    Target(file=report),
                ],
                start=T0 + timedelta(days=k),
                end=T0 + timedelta(days=k, minutes=2),
            )
        )
    return Candidate(
        candidate_id="files-1",
        version=version,
        user_id="u1",
        routine=[s.label for s in steps],
        steps=steps,
        occurrences=n,
        instances=instances,
        score=70,
        breakdown=ScoreBreakdown(
            frequency=1, time_cost=1, regularity=1, determinism=1, variability=1, length=1
        ),
        mean_duration_seconds=120,
        observed_hours_per_year=10,
        estimated_hours_saved_per_year=9,
        rank=1,
        priority="high",
        first_seen=T0,
        last_seen=T0 + timedelta(days=n),
        updated_at=T0 + timedelta(days=n),
    )


CFG = GeneratorConfig(plan=PlanConfig(max_train=3))


@pytest.fixture(scope="module")
def auto() -> Automation:
    return generate(file_candidate(), config=CFG, now=T0)


def result(
    a: Automation,
    case_id: str | None,
    lang: str,
    *,
    passed: bool = True,
    rid: str | None = None,
    verdict: str | None = None,
    mismatches: list[str] | None = None,
    at: datetime = T0,
) -> Result:
    return Result(
        result_id=rid or f"{a.automation_id}-{a.version}-{case_id}-{lang}",
        automation_id=a.automation_id,
        version=a.version,
        case_id=case_id,
        language=lang,
        verdict=verdict or ("passed" if passed else "failed"),
        passed=passed,
        exit_code=0 if passed else 3,
        stop_reason="exited",
        wall_seconds=0.1,
        cpu_seconds=0.05,
        peak_memory_bytes=1 << 20,
        output_bytes=10,
        mismatches=mismatches or [],
        started_at=at,
        runner="test",
    )


def metric(
    a: Automation, k: int, *, success: bool = True, source: str = "production", dur: float = 1.0
) -> RunMetric:
    return RunMetric(
        run_id=f"run-{a.automation_id}-{a.version}-{source}-{k}",
        automation_id=a.automation_id,
        version=a.version,
        source=source,
        started_at=T0 + timedelta(hours=k),
        duration_seconds=dur,
        success=success,
    )


def test_generated_file_routine_runs_in_python_and_bash(auto: Automation) -> None:
    assert {p for p in auto.parameters} >= {"readfile_report_file", "copyfile_report_value"}
    write = next(st for st in auto.plan if st["op"] == "write_file")
    assert write["value"]["k"] == "concat"  # "total " + the number read from the report
    assert auto.sources["python"].supported and auto.sources["bash"].supported
    assert auto.sources["applescript"].supported and auto.sources["applescript"].static_check == "ok"
    assert len(auto.test_cases) == 3
    for case in auto.test_cases:
        for lang in ("python", "bash"):
            v = replay(auto, case, lang)
            assert v.passed, (lang, v.mismatches)


def test_lifecycle_to_verified_then_active(auto: Automation) -> None:
    reg = Registry()
    reg.apply_automation(auto)
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "generated" and rec.languages == ["python", "bash"]
    cases = [c.case_id for c in auto.test_cases]
    reg.apply_test_result(result(auto, cases[0], "python"))
    assert reg.get(auto.automation_id).state == "testing"  # type: ignore[union-attr]
    reg.apply_test_result(result(auto, None, "applescript", verdict="unsupported", passed=False))
    assert reg.get(auto.automation_id).state == "testing"  # type: ignore[union-attr]
    for c in cases:
        reg.apply_test_result(result(auto, c, "python"))  # the first one again: a duplicate delivery
        reg.apply_test_result(result(auto, c, "bash"))
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "verified"
    assert "all 3 held-out test cases" in (rec.state_reason or "")
    assert rec.stats.tests_passed == 6 and rec.stats.tests_failed == 1
    reg.apply_metric(metric(auto, 1, source="sandbox", dur=0.5))
    assert reg.get(auto.automation_id).state == "verified"  # type: ignore[union-attr]
    reg.apply_metric(metric(auto, 2, dur=2.0))
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "active"
    assert [t.state for t in rec.history] == ["generated", "testing", "verified", "active"]


def test_failure_rejects_with_reason(auto: Automation) -> None:
    reg = Registry()
    reg.apply_automation(auto)
    c = auto.test_cases[1].case_id
    reg.apply_test_result(result(auto, auto.test_cases[0].case_id, "bash"))
    reg.apply_test_result(
        result(auto, c, "bash", passed=False, mismatches=["action 2 writeFile: value 'x' != 'y'"])
    )
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "rejected"
    assert rec.state_reason == f"bash test {c}: failed (exited): action 2 writeFile: value 'x' != 'y'"
    reg.apply_test_result(result(auto, c, "python"))  # late passes do not un-reject
    assert reg.get(auto.automation_id).state == "rejected"  # type: ignore[union-attr]


def test_unrunnable_and_untestable_are_rejected(auto: Automation) -> None:
    reg = Registry()
    src = {
        lang: s.model_copy(update={"supported": False, "unsupported_steps": ["step 0 (x): nope"]})
        for lang, s in auto.sources.items()
    }
    reg.apply_automation(auto.model_copy(update={"automation_id": "a-none", "sources": src}))
    reg.apply_automation(auto.model_copy(update={"automation_id": "a-notests", "test_cases": []}))
    none, notests = reg.get("a-none"), reg.get("a-notests")
    assert (
        none is not None
        and none.state == "rejected"
        and "no language that runs here" in (none.state_reason or "")
    )
    assert notests is not None and notests.state == "rejected"
    assert notests.state_reason == "no held-out instances to test against"
    # a log's own action names: named once, with the flag that maps them (not once per language)
    note = "step 2 (Klicken:Speichern): action type 'Klicken' has no action-API operation"
    foreign = {
        lang: s.model_copy(update={"supported": False, "unsupported_steps": [note]})
        for lang, s in auto.sources.items()
    }
    reg.apply_automation(auto.model_copy(update={"automation_id": "a-de", "sources": foreign}))
    de = reg.get("a-de")
    assert de is not None and de.state == "rejected" and (de.state_reason or "").count("'Klicken") == 2
    assert "--action-map 'Klicken=<rote's name>'" in (de.state_reason or "")


def test_results_before_their_automation_are_parked(auto: Automation) -> None:
    reg = Registry()
    for c in auto.test_cases:
        for lang in ("python", "bash"):
            reg.apply_test_result(result(auto, c.case_id, lang))
    reg.apply_metric(metric(auto, 1, source="sandbox"))
    assert reg.get(auto.automation_id) is None and reg.pending == 7
    reg.apply_automation(auto)
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.state == "verified" and rec.stats.runs == 1 and reg.pending == 0


def test_stats_percentiles_and_retirement(auto: Automation) -> None:
    reg = Registry(RegistryConfig(retire_min_runs=10, retire_below_success_rate=0.5))
    reg.apply_automation(auto)
    for c in auto.test_cases:
        for lang in ("python", "bash"):
            reg.apply_test_result(result(auto, c.case_id, lang))
    durations = [float(d) for d in range(1, 11)]
    for k, d in enumerate(durations):
        reg.apply_metric(metric(auto, k, success=k < 4, dur=d))
    reg.apply_metric(metric(auto, 3, success=True, dur=99.0))  # duplicate run id: ignored
    rec = reg.get(auto.automation_id)
    assert rec is not None
    s = rec.stats
    assert (s.runs, s.successes, s.failures, s.production_runs) == (10, 4, 6, 10)
    assert s.success_rate == pytest.approx(0.4)
    assert (s.duration_p50_seconds, s.duration_p90_seconds, s.duration_p99_seconds) == (5.0, 9.0, 10.0)
    assert rec.state == "retired" and "40%" in (rec.state_reason or "")


def test_new_version_supersedes_and_round_trips(auto: Automation) -> None:
    reg = Registry()
    reg.apply_automation(auto)
    for c in auto.test_cases:
        reg.apply_test_result(result(auto, c.case_id, "python"))
        reg.apply_test_result(result(auto, c.case_id, "bash"))
    v2 = generate(file_candidate(n=8, version=2), config=CFG, now=T0 + timedelta(days=9))
    reg.apply_automation(v2)
    reg.apply_automation(auto)  # an old version replayed late changes nothing
    rec = reg.get(auto.automation_id)
    assert rec is not None and rec.version == 2 and rec.versions == [1, 2] and rec.state == "generated"
    assert rec.state_reason == "version 2 supersedes version 1"
    clone = decode_state(Registry, encode_state(reg))
    assert clone.to_json() == reg.to_json()
    assert json.dumps(reg.to_json())  # the HTTP/CLI view is plain JSON


def test_from_archive(auto: Automation, tmp_path: Path) -> None:
    from rote.archive import ArchiveWriter
    from rote.streams.schemas import encode

    w = ArchiveWriter(tmp_path)
    for c in auto.test_cases:  # results written before the automation: order in files must not matter
        w.write("test-results", encode(result(auto, c.case_id, "python", at=T0 + timedelta(minutes=1))))
        w.write("test-results", encode(result(auto, c.case_id, "bash", at=T0 + timedelta(minutes=1))))
    w.write("automations", encode(auto))
    w.write("metrics", encode(metric(auto, 5, source="sandbox", dur=0.25)))
    w.close()
    rec = from_archive(tmp_path).get(auto.automation_id)
    assert rec is not None and rec.state == "verified" and rec.stats.duration_p50_seconds == 0.25


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0


def test_a_new_version_rejected_on_arrival_gets_its_own_rejected_record(auto: Automation) -> None:
    """A candidate update brings version 2 of an automation no language here can express: the registry
    rejects it as it arrives, the state version 1 ended in. The registry agent announces states on
    `automations` by (version, state), so version 2 gets its own "rejected" record; by state alone the topic
    showed it "generated" for ever (a new user's `rote report` said "generated" where the run said
    "rejected"). Redelivered, nothing is announced twice."""
    from rote.agents.automation_generator import echo_due

    src = {
        lang: s.model_copy(update={"supported": False, "unsupported_steps": ["step 0 (x): nope"]})
        for lang, s in auto.sources.items()
    }
    v1 = auto.model_copy(update={"automation_id": "a-none", "sources": src})
    v2 = v1.model_copy(update={"version": 2})
    reg = Registry()
    announced: list[tuple[int, str]] = []
    before: tuple[int, str] | None = None
    for a in (v1, v2, v2):
        reg.apply_automation(a)
        rec = reg.get("a-none")
        assert rec is not None
        if echo_due(before, rec.version, rec.state):
            announced.append((rec.version, rec.state))
        before = (rec.version, rec.state)
    assert announced == [(1, "rejected"), (2, "rejected")]


def test_a_version_is_not_regenerated_from_fewer_instances() -> None:
    """Grown evidence regenerates an automation, but not from fewer kept instances than the last version
    learnt from: a new user's candidate went from four instances to two as the state filled its budget, and
    the version learnt from two (one person's order number as a literal) failed and replaced one that had
    passed. A changed routine is generated whatever its instances; old records without the count pass."""
    from rote.agents.automation_generator import _generated_record, should_generate
    from rote.state import encode_json

    v1 = file_candidate(n=6, version=1)
    last = _generated_record(
        encode_json(
            {"version": 1, "occurrences": 6, "instances": 6, "routine": list(v1.routine), "outbox": []}
        )
    )
    assert last is not None and last["instances"] == 6
    grown = v1.model_copy(update={"version": 2, "occurrences": 20})
    assert should_generate(grown, last, min_score=0, growth=1.5)
    fewer = grown.model_copy(update={"instances": grown.instances[:2]})
    assert not should_generate(fewer, last, min_score=0, growth=1.5)
    four = grown.model_copy(update={"instances": grown.instances[:4]})  # as many as it learns well from
    assert should_generate(four, last, min_score=0, growth=1.5)
    changed = fewer.model_copy(update={"routine": [*fewer.routine[:-1], "other:step"]})
    assert should_generate(changed, last, min_score=0, growth=1.5)
    legacy = _generated_record(encode_json({"version": 1, "occurrences": 6, "routine": list(v1.routine)}))
    assert legacy is not None and should_generate(fewer, legacy, min_score=0, growth=1.5)
