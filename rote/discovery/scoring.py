"""Automation potential: a 0-100 score with its breakdown, and the hours it could save.

Automation hubs (UiPath Automation Hub, Blue Prism's assessment sheets) rank ideas by *how often* a task
runs, *how long* it takes, *how rule-based* it is (inputs derivable, no judgement) and *how standard* it is
(few variants, stable steps); they then estimate savings as potential x the hours the task costs today.
We compute each factor from observation instead of a questionnaire; each is in [0, 1], 1 = better to automate:

=============  ========================================================================  ======
factor         from                                                                        weight
=============  ========================================================================  ======
frequency      occurrences per active day, log-scaled, saturating at `daily_target`        0.25
time_cost      mean observed instance duration, 1 - exp(-d / `duration_scale`)             0.20
determinism    share of steps whose value is constant, derived from an earlier step,       0.20
               or absent (a click): what a script can do without asking anyone
regularity     mean share of the routine's steps present, in order, in each instance       0.15
variability    1 - share of instances that deviate from the main sequence (1 = uniform)    0.10
length         steps beyond the first, saturating at `long_routine` steps                  0.10
=============  ========================================================================  ======

``score = 100 * sum(weight * factor)``. Frequency and time cost weigh most because they *are* the cost;
determinism next because a routine that needs human input at every step saves little when scripted.
``observed_hours_per_year = mean duration x occurrences per active day x working_days``, and
``estimated_hours_saved_per_year = score / 100 x observed_hours_per_year``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rote.streams.schemas import ScoreBreakdown, StepParameter


def _default_weights() -> dict[str, float]:
    return {
        "frequency": 0.25,
        "time_cost": 0.20,
        "determinism": 0.20,
        "regularity": 0.15,
        "variability": 0.10,
        "length": 0.10,
    }


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    weights: dict[str, float] = field(default_factory=_default_weights)
    #: Occurrences per active day at which frequency saturates.
    daily_target: float = 20.0
    #: Seconds: an instance this long scores time_cost 0.63.
    duration_scale: float = 120.0
    #: Steps at which length saturates.
    long_routine: int = 15
    working_days: float = 230.0
    high: float = 70.0
    medium: float = 40.0


@dataclass(frozen=True, kw_only=True)
class Evidence:
    occurrences: int
    active_days: int
    mean_duration_seconds: float
    n_steps: int
    #: per step: a `StepParameter`, the same as data (a dict with "kind"), or None (no value)
    parameters: Sequence[StepParameter | dict[str, Any] | None]
    regularity: float
    deviating_share: float


@dataclass(frozen=True, kw_only=True)
class Score:
    score: float
    breakdown: ScoreBreakdown
    observed_hours_per_year: float
    estimated_hours_saved_per_year: float
    priority: Literal["high", "medium", "low"]


def _kind(p: StepParameter | dict[str, Any]) -> Any:
    return p["kind"] if isinstance(p, dict) else p.kind


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def score(ev: Evidence, cfg: ScoreConfig | None = None) -> Score:
    cfg = cfg or ScoreConfig()
    per_day = ev.occurrences / max(1, ev.active_days)
    frequency = _clip(math.log1p(per_day) / math.log1p(cfg.daily_target))
    time_cost = _clip(1.0 - math.exp(-max(0.0, ev.mean_duration_seconds) / cfg.duration_scale))
    if ev.parameters:
        automatic = sum(p is None or _kind(p) in ("constant", "derived") for p in ev.parameters)
        determinism = automatic / len(ev.parameters)
    else:
        determinism = 0.0
    factors = {
        "frequency": frequency,
        "time_cost": time_cost,
        "determinism": _clip(determinism),
        "regularity": _clip(ev.regularity),
        "variability": _clip(1.0 - ev.deviating_share),
        "length": _clip((ev.n_steps - 1) / max(1, cfg.long_routine - 1)),
    }
    total_w = sum(cfg.weights.values()) or 1.0
    value = 100.0 * sum(cfg.weights.get(k, 0.0) * v for k, v in factors.items()) / total_w
    value = round(min(100.0, max(0.0, value)), 2)
    observed = ev.mean_duration_seconds * per_day * cfg.working_days / 3600.0
    priority: Literal["high", "medium", "low"] = (
        "high" if value >= cfg.high else "medium" if value >= cfg.medium else "low"
    )
    breakdown = ScoreBreakdown(**{k: round(v, 4) for k, v in factors.items()}, weights=dict(cfg.weights))
    return Score(
        score=value,
        breakdown=breakdown,
        observed_hours_per_year=round(observed, 3),
        estimated_hours_saved_per_year=round(value / 100.0 * observed, 3),
        priority=priority,
    )
