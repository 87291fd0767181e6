"""Redacted values reach generated automations as run-time parameters, never as literals.

A login-and-pay routine recorded with redaction on: the same e-mail typed every time (a constant to the
generator, but a pseudonym), the password marker, a card number copied from a sheet and pasted, a note
containing the e-mail, and a window title naming the account. Before, the generator turned values that
never change into literals (`fill_field(6, value='…', element_type='password')`); now the Python, Bash
and AppleScript contain no token and no marker, the held-out cases feed them as inputs, and the
generated Python still reproduces every held-out instance.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rote.generator import generate
from rote.generator.plan import build_plan, has_redacted_literal
from rote.generator.replay import replay
from rote.privacy import PASSWORD_MARKER, RedactionConfig, Redactor
from rote.privacy.tokens import REDACTED_RE
from rote.streams.schemas import Candidate, RoutineInstance, RoutineStep, ScoreBreakdown, Target

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
R = Redactor(RedactionConfig(), key=b"generator-test-key-0123456789abcdef")
EMAIL = R.redact_text("ana.lopez@example.org")
TITLE = R.redact_text("Checkout - ana.lopez@example.org")
CARDS = [
    R.redact_text(c)
    for c in (
        "4539148803436467",
        "5500005555555559",
        "4111111111111111",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
    )
]


def _steps() -> list[RoutineStep]:
    return [
        RoutineStep(
            label="goToUrl",
            app="Chrome",
            action_type="goToUrl",
            target=Target(url="https://shop.example.com/login"),
        ),
        RoutineStep(
            label="editField:Email",
            app="Chrome",
            action_type="editField",
            target=Target(field="Email", element_type="email"),
        ),
        RoutineStep(
            label="editField:Password",
            app="Chrome",
            action_type="editField",
            target=Target(field="Password", element_type="password"),
        ),
        RoutineStep(
            label="copyCell:Cards!B",
            app="Excel",
            action_type="copyCell",
            target=Target(workbook="cards.xlsx", sheet="Cards"),
        ),
        RoutineStep(
            label="paste:Card number",
            app="Chrome",
            action_type="paste",
            target=Target(field="Card number", title=TITLE),
        ),
        RoutineStep(
            label="editField:Note", app="Chrome", action_type="editField", target=Target(field="Note")
        ),
    ]


def _candidate() -> Candidate:
    steps = _steps()
    instances = []
    for k, card in enumerate(CARDS):
        start = T0 + timedelta(hours=k)
        targets = [s.target for s in steps]
        targets[3] = Target(workbook="cards.xlsx", sheet="Cards", cell=f"B{k + 2}")
        instances.append(
            RoutineInstance(
                event_ids=[f"e{k}-{s}" for s in range(len(steps))],
                values=[None, EMAIL, PASSWORD_MARKER, card, card, f"receipt to {EMAIL}"],
                targets=targets,
                start=start,
                end=start + timedelta(seconds=40),
            )
        )
    return Candidate(
        candidate_id="login-pay",
        version=1,
        user_id="u1",
        routine=[s.label for s in steps],
        steps=steps,
        occurrences=len(instances),
        instances=instances,
        score=70,
        breakdown=ScoreBreakdown(
            frequency=1, time_cost=1, regularity=1, determinism=1, variability=1, length=1
        ),
        mean_duration_seconds=40,
        observed_hours_per_year=10,
        estimated_hours_saved_per_year=8,
        rank=1,
        priority="high",
        first_seen=T0,
        last_seen=T0 + timedelta(hours=6),
        updated_at=T0 + timedelta(hours=6),
    )


def test_plan_makes_redacted_constants_parameters() -> None:
    plan = build_plan(_candidate())
    by_step = {st["i"]: st for st in plan.steps}
    kinds = {p.name: p.kind for p in plan.parameters}
    assert by_step[0]["target"]["url"] == {"k": "const", "s": "https://shop.example.com/login"}
    for s in (1, 2):  # the same value every time, but a pseudonym or the marker: an input
        assert by_step[s]["value"]["k"] == "param", by_step[s]["value"]
        assert kinds[by_step[s]["value"]["name"]] == "value"
    # the note flows from the e-mail input; only the text around the pseudonym is a literal
    want = {"k": "concat", "parts": [{"k": "const", "s": "receipt to "}, {"k": "step", "i": 1}]}
    assert by_step[5]["value"] == want
    assert by_step[4]["op"] == "paste" and by_step[4]["value"] is None  # the card comes from the clipboard
    assert by_step[4]["target"]["title"]["k"] == "param"
    exprs = [e for st in plan.steps for e in [st["value"] or {}, *st["target"].values()]]
    assert not any(has_redacted_literal(e) for e in exprs)


def test_generated_sources_hold_no_token_and_still_reproduce_the_user() -> None:
    automation = generate(_candidate())
    assert set(automation.sources) == {"python", "bash", "applescript"}
    for lang, src in automation.sources.items():
        assert src.static_check == "ok", (lang, src.static_check)
        assert REDACTED_RE.search(src.source) is None, lang
        assert EMAIL[1:-1].split(":")[1] not in src.source, lang  # not even the digest
    assert automation.test_cases
    case = automation.test_cases[0]
    assert PASSWORD_MARKER in case.inputs.values() and EMAIL in case.inputs.values()
    for case in automation.test_cases:
        verdict = replay(automation, case, "python")
        assert verdict.passed, verdict


def test_a_derived_target_never_carries_a_token_as_its_literal_part() -> None:
    """A window title made of a typed value and the account's e-mail (`Order 7 - <email:…> - Gmail`) is
    derived from the typed step by the generator; the text around it held the pseudonym, and it went into
    the generated source as a literal. Now such a target is an input."""
    steps = [
        RoutineStep(
            label="editField:Subject", app="Chrome", action_type="editField", target=Target(field="Subject")
        ),
        RoutineStep(label="click:Send", app="Chrome", action_type="click", target=Target(field="Send")),
    ]
    instances = []
    for k in range(6):
        start = T0 + timedelta(hours=k)
        subject = f"Order {k + 7}"
        instances.append(
            RoutineInstance(
                event_ids=[f"s{k}-0", f"s{k}-1"],
                values=[subject, None],
                targets=[steps[0].target, Target(field="Send", title=f"{subject} - {EMAIL} - Gmail")],
                start=start,
                end=start + timedelta(seconds=20),
            )
        )
    cand = _candidate().model_copy(
        update={
            "candidate_id": "mail",
            "routine": [s.label for s in steps],
            "steps": steps,
            "instances": instances,
        }
    )
    plan = build_plan(cand)
    title = plan.steps[1]["target"]["title"]
    assert not has_redacted_literal(title), title
    assert title["k"] == "param"
    for src in generate(cand).sources.values():
        assert REDACTED_RE.search(src.source) is None


def test_two_secrets_are_two_inputs_never_one_wired_into_the_other() -> None:
    """A new user's VPN login: the password and then the one-time passcode, both redacted to `<password>`.
    The marker keeps no equality, yet both discovery (`derived` from the password step) and the generator
    (`fill_field(1, value=v0, field='Passcode')`) took the two as the same value, and the automation was
    verified typing the password into the passcode field. Each secret is its own run-time input now."""
    from rote.discovery.parameters import analyse_data

    steps = [
        RoutineStep(
            label="editField:Password",
            app="VPN",
            action_type="editField",
            target=Target(field="Password", element_type="password"),
        ),
        RoutineStep(
            label="editField:Passcode",
            app="VPN",
            action_type="editField",
            target=Target(field="Passcode", element_type="password"),
        ),
        RoutineStep(label="click:Connect", app="VPN", action_type="click", target=Target(field="Connect")),
    ]
    instances = []
    for k in range(6):
        start = T0 + timedelta(hours=k)
        instances.append(
            RoutineInstance(
                event_ids=[f"v{k}-{s}" for s in range(3)],
                values=[PASSWORD_MARKER, PASSWORD_MARKER, None],
                targets=[s.target for s in steps],
                start=start,
                end=start + timedelta(seconds=15),
            )
        )
    params = analyse_data([inst.values for inst in instances])
    # neither wired from the other nor "the same password each time": supplied each time
    assert [p["kind"] if p else None for p in params] == ["variable", "variable", None], params
    # an ordinary value typed twice is still wired through (what the marker rule must not break)
    same = analyse_data([["Albert", "Albert"], ["Mia", "Mia"], ["Tom", "Tom"]])
    assert same[1] == {"kind": "derived", "source_step": 0, "examples": ["Albert", "Mia", "Tom"]}
    cand = _candidate().model_copy(
        update={
            "candidate_id": "vpn",
            "routine": [s.label for s in steps],
            "steps": steps,
            "instances": instances,
        }
    )
    plan = build_plan(cand)
    values = [plan.steps[s]["value"] for s in (0, 1)]
    assert [v["k"] for v in values] == ["param", "param"], values
    assert values[0]["name"] != values[1]["name"]
    automation = generate(cand)
    src = automation.sources["python"].source
    assert "value=v0, field='Passcode'" not in src
    for case in automation.test_cases:
        assert replay(automation, case, "python").passed
