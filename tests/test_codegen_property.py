"""The generator never emits invalid code (issue 12).

Two property tests, together well over 500 generated plans per run:

* plans drawn directly (every operation, guards on supported and unsupported steps, every expression
  kind nested, hostile strings everywhere) rendered to Python, Bash and AppleScript: Python compiles,
  Bash passes `bash -n`, our AppleScript checker passes;
* candidates drawn with optional steps and action types no operation covers, pushed through the real
  `generate()` (plan inference, synthesis, rendering): same checks on what comes out.

Regression cases: the shapes that produced invalid Python on the interleaved logs (an optional step whose
action type has no operation rendered a `raise` indented under an `if` that was never emitted).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rote.generator import exprs, generate
from rote.generator.codegen import RenderMeta, render, static_check
from rote.generator.plan import OPS, TARGET_KEYS, UNKNOWN_OP
from rote.streams.schemas import Candidate, RoutineInstance, RoutineStep, ScoreBreakdown, Target

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed for bash -n")

META = RenderMeta(
    name="property",
    automation_id="auto-prop",
    version=1,
    candidate_id="cand-prop",
    candidate_version=1,
    generator_version="test",
)

#: Strings that have broken code generators: quotes, escapes, shell and template syntax, odd Unicode.
HOSTILE = [
    "'",
    '"',
    "\\",
    "$(touch /tmp/PWNED)",
    "`id`",
    "; rm -rf /",
    "\n",
    "\r\n",
    "{{ 7*7 }}",
    "{% if %}",
    "<#jinja#",
    '" & (do shell script "id") & "',
    "(* c *)",
    "\u202e\u200b\u2028",
    "\x1b[31m",
    "-n",
    "--help",
    "*",
    "~",
    "$HOME",
    "${P[x]}",
    "ü€𝄞",
    "",
]
texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))
names = st.sampled_from(["row", "name", "do_a", "do_b", "value_x", "p_1"])


def _expr(draw: st.DrawFn, bound: list[int], depth: int = 0) -> dict[str, Any]:
    kinds = ["const", "param"] + (["step"] if bound else [])
    if depth < 2:
        kinds += ["split", "strip", "lower", "upper", "concat", "cellref"]
    k = draw(st.sampled_from(kinds))
    if k == "const":
        return exprs.const(draw(texts.filter(lambda s: "\x00" not in s)))
    if k == "param":
        return exprs.param(draw(names))
    if k == "step":
        return exprs.step(draw(st.sampled_from(bound)))
    if k == "split":
        sep = draw(st.sampled_from([",", " ", "/", "-", "'", "\\", "$", "\n"]))
        return exprs.split(_expr(draw, bound, depth + 1), sep, draw(st.integers(-3, 5)))
    if k in ("strip", "lower", "upper"):
        return {"k": k, "of": _expr(draw, bound, depth + 1)}
    if k == "concat":
        n = draw(st.integers(2, 4))
        return {"k": "concat", "parts": [_expr(draw, bound, depth + 1) for _ in range(n)]}
    col = draw(st.sampled_from(["A", "B", "AA"]))
    return exprs.cellref(col, exprs.param("row"), draw(st.integers(-1, 3)))


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    steps: list[dict[str, Any]] = []
    bound: list[int] = []
    for i in range(draw(st.integers(1, 10))):
        op = draw(st.sampled_from([*OPS, UNKNOWN_OP, UNKNOWN_OP]))
        role = OPS.get(op)
        guard = draw(st.sampled_from([None, None, "do_a", "do_b"]))
        keys = draw(st.lists(st.sampled_from(TARGET_KEYS), max_size=4, unique=True))
        target = {key: _expr(draw, bound, 1) for key in keys}
        value = _expr(draw, bound) if role == "input" else None
        steps.append(
            {
                "i": i,
                "label": draw(texts) or "step",
                "action_type": draw(st.sampled_from(["click", "wait the menu", "editField", "x'y"])),
                "app": "App",
                "op": op,
                "target": target,
                "value": value,
                "guard": guard,
                "binds": role is not None,
            }
        )
        if role is not None and guard is None:
            bound.append(i)
    used = {s["guard"] for s in steps if s["guard"]}
    params = sorted(used | {"row", "name", "value_x", "p_1"})
    return steps, params


def _check_all(steps: list[dict[str, Any]], params: list[str]) -> None:
    for language in ("python", "bash", "applescript"):
        out = render(language, steps, params, META)
        assert out.static_check == "ok", f"{language}: {out.static_check}\n{out.source}"
        if language == "python":
            compile(out.source, "automation.py", "exec")  # the checker's verdict, checked again here


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_every_rendered_plan_is_valid_code(plan: tuple[list[dict[str, Any]], list[str]]) -> None:
    _check_all(*plan)


# --------------------------------------------------------------------------------------------------
# through the real generator
# --------------------------------------------------------------------------------------------------

ACTION_TYPES = [
    "copyCell",
    "editField",
    "clickButton",
    "paste",
    "readFile",
    "writeFile",
    "createFolder",
    "goToUrl",
    "wait the menu",  # no operation: unsupported everywhere
    "clickCreate",  # no operation either
    "select option 'a'",
]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    n = draw(st.integers(1, 8))
    steps = []
    for s in range(n):
        at = draw(st.sampled_from(ACTION_TYPES))
        target = Target(
            field=draw(st.none() | texts),
            file=draw(st.none() | st.sampled_from(["out/a.txt", "b.csv", "../x", "a b/'c'.txt"])),
            cell=draw(st.none() | st.sampled_from(["A2", "B3"])),
            url=draw(st.none() | st.just("https://example.test/form")),
        )
        steps.append(RoutineStep(label=f"{at}:{s}", app="App", action_type=at, target=target))
    instances = []
    for k in range(draw(st.integers(4, 8))):
        present = [draw(st.booleans()) or s % 3 == 0 for s in range(n)]
        start = T0 + timedelta(minutes=10 * k)
        instances.append(
            RoutineInstance(
                event_ids=[f"e{k}-{s}" if p else None for s, p in enumerate(present)],
                values=[draw(st.none() | texts) if p else None for p in present],
                start=start,
                end=start + timedelta(seconds=30),
            )
        )
    return Candidate(
        candidate_id="cand-prop",
        version=1,
        user_id="u",
        routine=[s.label for s in steps],
        steps=steps,
        occurrences=len(instances),
        instances=instances,
        score=80,
        breakdown=ScoreBreakdown(
            frequency=1, time_cost=1, regularity=1, determinism=1, variability=1, length=1
        ),
        mean_duration_seconds=30,
        observed_hours_per_year=1,
        estimated_hours_saved_per_year=1,
        rank=1,
        priority="high",
        first_seen=T0,
        last_seen=T0,
        updated_at=T0,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candidates())
def test_generated_automations_are_valid_code(c: Candidate) -> None:
    a = generate(c)
    for language in ("python", "bash", "applescript"):
        assert a.sources[language].static_check == "ok", (
            f"{language}: {a.sources[language].static_check}\n{a.sources[language].source}"
        )


# --------------------------------------------------------------------------------------------------
# regression: the invalid shape seen on interleaved logs
# --------------------------------------------------------------------------------------------------


def _step(i: int, op: str, guard: str | None, *, value: Any = None, label: str = "s") -> dict[str, Any]:
    return {
        "i": i,
        "label": label,
        "action_type": "wait the menu" if op == UNKNOWN_OP else op,
        "app": "App",
        "op": op,
        "target": {"field": exprs.const("f")},
        "value": value,
        "guard": guard,
        "binds": OPS.get(op) is not None,
    }


#: Shapes reduced from the automations rejected on the interleaved logs for invalid Python: optional
#: (guarded) steps with no operation, alone, first, last, consecutive, mixed with guarded supported
#: steps, and sharing one guard.
REGRESSION_SHAPES: dict[str, list[dict[str, Any]]] = {
    "optional unsupported alone": [_step(0, UNKNOWN_OP, "do_a")],
    "optional unsupported first": [_step(0, UNKNOWN_OP, "do_a"), _step(1, "click", None)],
    "optional unsupported last": [_step(0, "click", None), _step(1, UNKNOWN_OP, "do_a")],
    "two optional unsupported in a row": [
        _step(0, "click", None),
        _step(1, UNKNOWN_OP, "do_a"),
        _step(2, UNKNOWN_OP, "do_b"),
    ],
    "shared guard, unsupported then supported": [
        _step(0, UNKNOWN_OP, "do_a"),
        _step(1, "fill_field", "do_a", value=exprs.const("x")),
    ],
    "shared guard, supported then unsupported": [
        _step(0, "fill_field", "do_a", value=exprs.const("x")),
        _step(1, UNKNOWN_OP, "do_a"),
    ],
    "unsupported between guarded supported steps": [
        _step(0, "click", "do_a"),
        _step(1, UNKNOWN_OP, "do_b"),
        _step(2, "click", "do_a"),
    ],
    "optional unsupported after mandatory unsupported": [
        _step(0, UNKNOWN_OP, None),
        _step(1, UNKNOWN_OP, "do_a"),
        _step(2, "open_url", None),
    ],
}


@pytest.mark.parametrize("shape", sorted(REGRESSION_SHAPES))
def test_regression_optional_unsupported_steps_render_valid_code(shape: str) -> None:
    steps = REGRESSION_SHAPES[shape]
    params = sorted({s["guard"] for s in steps if s["guard"]})
    _check_all(steps, params)
    out = render("python", steps, params, META)
    assert not out.supported  # the step stays unsupported: valid code, still refused by the registry


def test_optional_unsupported_step_raises_only_when_asked(tmp_path: Any) -> None:
    """The guard really guards: with do_a=false the script runs past the unsupported step."""
    steps = [_step(0, UNKNOWN_OP, "do_a"), _step(1, "make_dir", None)]
    steps[1]["target"] = {"file": exprs.const("made")}
    src = render("python", steps, ["do_a"], META).source
    script = tmp_path / "automation.py"
    script.write_text(src)

    def run(flag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(script),
                "--driver",
                "sim",
                "--root",
                str(tmp_path),
                "--set",
                "do_a=" + flag,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert run("false").returncode == 0
    assert (tmp_path / "made").is_dir()
    failed = run("true")
    assert failed.returncode == 3 and "has no action-API operation" in failed.stderr


def test_static_check_catches_the_old_shape() -> None:
    """Control: the shape the old template produced is what the checker rejects (the test can fail)."""
    bad = "def run(api, p):\n    # step 0\n        raise Exception('x')\n    return None\n"
    assert static_check("python", bad) != "ok"


def _shapes() -> list[list[list[str]]]:
    import json
    from pathlib import Path

    path = Path(__file__).parent / "data" / "generator" / "codegen_invalid_shapes.json"
    return json.loads(path.read_text())["shapes"]


def test_interleaved_log_shapes_render_valid_code() -> None:
    """Every skeleton that produced invalid Python on the interleaved logs now renders valid code."""
    shapes = _shapes()
    assert len(shapes) >= 400
    for skeleton in shapes:
        steps = [
            _step(i, op, guard or None, value=exprs.const("v") if OPS.get(op) == "input" else None)
            for i, (op, guard) in enumerate(skeleton)
        ]
        params = sorted({s["guard"] for s in steps if s["guard"]})
        out = render("python", steps, params, META)
        assert out.static_check == "ok", f"{skeleton}: {out.static_check}"
