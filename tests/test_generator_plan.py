"""Plan inference edge cases: candidates without instances, unknown actions, synthesis limits."""

from __future__ import annotations

from datetime import UTC, datetime

from rote.generator import exprs as E
from rote.generator import generate, runtime
from rote.generator.synthesis import synthesize
from rote.streams.schemas import Candidate, RoutineStep, ScoreBreakdown, StepParameter, Target

T = datetime(2024, 1, 1, tzinfo=UTC)


def bare_candidate(steps: list[RoutineStep]) -> Candidate:
    return Candidate(
        candidate_id="bare",
        version=1,
        user_id="u",
        routine=[s.label for s in steps],
        steps=steps,
        occurrences=1,
        instances=[],
        score=50,
        breakdown=ScoreBreakdown(
            frequency=1, time_cost=1, regularity=1, determinism=1, variability=1, length=1
        ),
        mean_duration_seconds=1,
        observed_hours_per_year=1,
        estimated_hours_saved_per_year=1,
        rank=1,
        priority="low",
        first_seen=T,
        last_seen=T,
        updated_at=T,
    )


def test_without_instances_the_hints_decide_and_no_tests_exist() -> None:
    steps = [
        RoutineStep(
            label="type greeting",
            app="Editor",
            action_type="typeText",
            target=Target(field="greeting"),
            parameter=StepParameter(kind="constant", constant="hi"),
        ),
        RoutineStep(
            label="type name",
            app="Editor",
            action_type="insertValue",
            target=Target(field="name"),
            parameter=StepParameter(kind="variable"),
        ),
        RoutineStep(label="mystery", app="X", action_type="doSomethingOdd"),
    ]
    a = generate(bare_candidate(steps))
    assert a.parameters == ["type_name_value"]
    assert a.plan[0]["value"] == E.const("hi")
    assert a.test_cases == []
    assert not a.sources["python"].supported
    assert a.sources["python"].unsupported_steps[0].startswith("step 2 (mystery)")
    # Bash says the same, not "unknown is an application action" (what a new user read)
    bash = " ".join(a.sources["bash"].unsupported_steps)
    assert "'doSomethingOdd' has no action-API operation" in bash and "unknown is an" not in bash
    assert a.sources["python"].static_check == "ok"
    assert "doSomethingOdd" in (a.state_reason or "")


def test_synthesis_refuses_values_no_source_explains() -> None:
    assert synthesize(["red", "green"], {0: ["x1", "x2"]}) is None
    e = synthesize(["Doe, John", "Roe, Jane"], {0: ["John Doe", "Jane Roe"]})
    assert e is not None and E.describe(e) == "step0.split(' ')[-1] + ', ' + step0.split(' ')[0]"


def test_runtime_helpers_match_expression_semantics() -> None:
    e = E.concat([E.split(E.param("a"), ", ", -2), E.const("|"), {"k": "strip", "of": E.param("b")}])
    params = {"a": "x, y, z", "b": "  q \t"}
    want = E.evaluate(e, params=params, steps={})
    got = runtime.concat(runtime.split(params["a"], ", ", -2), "|", runtime.strip(params["b"]))
    assert want == got == "y|q"
    assert runtime.cellref("C", " 7 ", -1) == E.cell_address("C", "7", -1) == "C6"


def test_a_wait_for_the_pages_response_is_a_wait_not_an_unknown_step() -> None:
    """Bosco et al.'s logs (1, 2, 3, 4 and 8) log `waitResponse` on the page that answers a submission:
    every routine holding one was rejected as having a step with no operation (a new user's log3 run)."""
    from rote.generator.plan import op_for

    assert {op_for(t) for t in ("waitResponse", "wait_for_response", "waitForPageLoad", "wait")} == {
        "wait_for"
    }
    steps = [
        RoutineStep(
            label="goToUrl", app="Web", action_type="goToUrl", target=Target(url="https://forms.test/")
        ),
        RoutineStep(
            label="clickButton:confirm", app="Web", action_type="clickButton", target=Target(field="confirm")
        ),
        RoutineStep(
            label="waitResponse:forms.test/ok",
            app="Web",
            action_type="waitResponse",
            target=Target(url="https://forms.test/ok"),
        ),
    ]
    a = generate(bare_candidate(steps))
    assert [st["op"] for st in a.plan] == ["open_url", "click", "wait_for"]
    assert a.sources["python"].supported and a.sources["python"].static_check == "ok"
    assert "has no action-API operation" not in (a.state_reason or "")
