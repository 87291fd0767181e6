"""The executor's rules, as plain functions: what may run, what is retried, what a run may reach.

No Kafka, no processes: `rote.runner.executor` and `rote.runner.service` apply these, the tests call them
directly.

- **May it run?** Only the current version of an automation whose registry state is verified or active
  (degraded only when the request says `allow_degraded`, i.e. a person retrying after fixing the target),
  whose Python source expresses every step, passed its static check, and is byte-identical to what this
  rote's templates render from the automation's own plan (so a source edited on the topic is refused,
  not run). Every parameter the automation declares must be given.
- **Retry?** A failed run is retried (up to `retries` more attempts, after `backoff_seconds`) only when
  nothing it did could have changed the world: no submit, no link that posts, no file written, moved or
  deleted, no cell written. A timeout or a crash of the run host is retried on the same condition. A
  run that submitted a form and then failed is reported, never repeated (it would submit twice).
- **What may it reach?** The hosts its recorded URLs are served from now (after the site map), nothing
  else (`rote.drivers.targets.allowed_hosts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rote.drivers.files import COMMITTING_FILE_OPS
from rote.drivers.targets import kind_of
from rote.streams.schemas import Automation, RunRequest

log = logging.getLogger(__name__)

RUNNABLE_STATES = frozenset({"verified", "active"})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    #: More attempts after the first, for failures that changed nothing.
    retries: int = 2
    backoff_seconds: float = 1.0


def refusal(
    request: RunRequest, automation: Automation | None, state: str | None, *, template_version: str
) -> str | None:
    """Why this request must not run (one line), or None when it may."""
    if automation is None or state is None:
        return f"unknown automation {request.automation_id!r}"
    if request.version is not None and request.version != automation.version:
        return f"version {request.version} is not the current version ({automation.version})"
    if state == "degraded" and not request.allow_degraded:
        return "the automation is degraded (repeated production failures); retry with allow_degraded"
    if state not in RUNNABLE_STATES and state != "degraded":
        return f"the automation is {state}, not verified or active"
    src = automation.sources.get("python")
    if src is None or not src.supported or src.static_check != "ok":
        return "the automation has no complete Python source"
    if automation.template_version != template_version:
        return (
            f"generated with templates {automation.template_version}, this executor renders "
            f"{template_version}: regenerate it"
        )
    missing = [p for p in automation.parameters if p not in request.params]
    if missing:
        return f"missing parameters: {', '.join(missing)}"
    return None


def source_matches_plan(automation: Automation) -> bool:
    """The Python source is exactly what the templates render from the automation's plan."""
    from rote.generator import codegen

    meta = codegen.RenderMeta(
        name=automation.name,
        automation_id=automation.automation_id,
        version=automation.version,
        candidate_id=automation.candidate_id,
        candidate_version=automation.candidate_version,
        generator_version=automation.generator_version,
    )
    try:
        again = codegen.render(
            "python", [dict(st) for st in automation.plan], list(automation.parameters), meta
        )
    except Exception as exc:  # a plan the renderer cannot take is not rote's
        log.warning(
            "%s v%d: its plan does not render (%s: %s)",
            automation.automation_id,
            automation.version,
            type(exc).__name__,
            str(exc)[:300],
        )
        return False
    given = automation.sources["python"].source
    if again.source == given:
        return True
    # where they part, for whoever investigates (line numbers and lengths only: the source may hold
    # constants of the routine)
    a, b = again.source.splitlines(), given.splitlines()
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    log.warning(
        "%s v%d: its source differs from the rendered plan from line %d (%d lines rendered, %d given; "
        "generator %s, template %s)",
        automation.automation_id,
        automation.version,
        at + 1,
        len(a),
        len(b),
        automation.generator_version,
        automation.template_version,
    )
    return False


def committing_steps(plan: Sequence[Mapping[str, Any]]) -> frozenset[int]:
    """Steps whose completion changes the world outside the run (see the module docstring)."""
    out: set[int] = set()
    for st in plan:
        op = str(st.get("op", ""))
        target = st.get("target") or {}
        consts = {
            k: str(v.get("s", ""))
            for k, v in target.items()
            if isinstance(v, Mapping) and v.get("k") == "const"
        }
        if op in COMMITTING_FILE_OPS:
            out.add(int(st["i"]))
        elif op == "click" and kind_of(consts) in ("submit", "button", "other"):
            out.add(int(st["i"]))  # a button may post; only text fields, boxes and links are known safe
        elif op in ("fill_field", "paste") and "cell" in target:
            out.add(int(st["i"]))
    return frozenset(out)


def should_retry(
    outcome: str,
    completed_steps: Sequence[int],
    committing: frozenset[int],
    attempt: int,
    policy: RetryPolicy,
) -> bool:
    """Retry a failed/timed-out/errored attempt that changed nothing, while attempts remain."""
    if outcome == "succeeded" or attempt > policy.retries:
        return False
    return not any(s in committing for s in completed_steps)


def needs_browser(plan: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any step is a web action (so the run host starts Chromium)."""
    for st in plan:
        target = st.get("target") or {}
        if st.get("op") in ("open_url", "wait_for") and "url" in target:
            return True
        if (
            st.get("op") in ("click", "paste", "fill_field")
            and "cell" not in target
            and ({"url", "field", "element", "title"} & set(target))
        ):
            return True
    return False


def step_labels(plan: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    return {int(st["i"]): str(st.get("label", "")) for st in plan}
