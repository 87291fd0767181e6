"""Candidate in, Automation out: plan, render every target, attach held-out test cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rote.generator import codegen
from rote.generator.plan import Plan, PlanConfig, build_plan, make_test_cases
from rote.streams.schemas import MAX_TEST_CASES, Automation, Candidate

GENERATOR_VERSION = "1.0.0"


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    plan: PlanConfig = field(default_factory=PlanConfig)
    languages: tuple[str, ...] = codegen.LANGUAGES


def automation_id_for(candidate_id: str) -> str:
    return ("auto-" + candidate_id)[:256]


def automation_name(c: Candidate) -> str:
    first, last = c.routine[0], c.routine[-1]
    return f"{first} … {last} ({len(c.steps)} steps)" if len(c.routine) > 1 else first


def plan_json(plan: Plan) -> list[dict[str, object]]:
    return [dict(st) for st in plan.steps]


def generate(
    c: Candidate,
    *,
    config: GeneratorConfig | None = None,
    now: datetime | None = None,
    languages: Sequence[str] | None = None,
) -> Automation:
    """Generate the automation for a candidate (version = the candidate's version, so a candidate
    that grows more evidence yields a new automation version with a new plan and new tests)."""
    cfg = config or GeneratorConfig()
    plan = build_plan(c, cfg.plan)
    aid = automation_id_for(c.candidate_id)
    meta = codegen.RenderMeta(
        name=automation_name(c),
        automation_id=aid,
        version=c.version,
        candidate_id=c.candidate_id,
        candidate_version=c.version,
        generator_version=GENERATOR_VERSION,
    )
    names = [p.name for p in plan.parameters]
    sources = {lang: codegen.render(lang, plan.steps, names, meta) for lang in (languages or cfg.languages)}
    # an automation carries at most MAX_TEST_CASES (the schema's bound); a larger configured limit is cut
    cases = make_test_cases(c, plan, limit=min(cfg.plan.max_test_cases, MAX_TEST_CASES))
    reason = "; ".join(plan.notes) if plan.notes else None
    return Automation(
        automation_id=aid,
        version=c.version,
        candidate_id=c.candidate_id,
        candidate_version=c.version,
        user_id=c.user_id,
        name=meta.name,
        generator_version=GENERATOR_VERSION,
        template_version=codegen.template_version(),
        state="generated",
        state_reason=reason[:2000] if reason else None,
        plan=plan_json(plan),
        parameters=names,
        sources=sources,
        test_cases=cases,
        created_at=now or datetime.now(UTC),
    )
