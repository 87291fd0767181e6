"""The workflow analyzer's vocabulary: its configuration, what it returns, and the names of actions.

These types are what the agent publishes, the report shows and the tests build, with no statistics in
them (`steps` and `plans` compute, `analysis` puts it together).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rote.errors import RoteError
from rote.streams.schemas import Automation, Candidate, RoutineStep

ScopeKind = Literal["routine", "automation"]


BottleneckKind = Literal["step", "wait", "queue"]


#: Actions that change the outside world: never cached, and they order everything around them.
DEFAULT_COMMIT_ACTIONS = frozenset(
    {"clickbutton", "submit", "form_submit", "save", "send", "clicklink", "delete", "confirm"}
)


#: Actions that change what later steps see (a new page, sheet, file), so later steps wait for them.
DEFAULT_NAVIGATION_ACTIONS = frozenset(
    {"gotourl", "openfile", "selectworksheet", "createnewtab", "selecttab", "navigate", "openapp", "closetab"}
)


#: Actions that write a value somewhere: repeating them with the same input is not a cache hit.
DEFAULT_WRITE_ACTIONS = frozenset(
    {
        "paste",
        "editfield",
        "insertvalue",
        "type",
        "typetext",
        "input",
        "setvalue",
        "changefield",
        "editcell",
        "clickcheckbox",
        "selectoptions",
        "select",
    }
)


class AnalysisError(RoteError):
    """Analyzer input that cannot be interpreted (e.g. a config out of range)."""


@dataclass(frozen=True, kw_only=True)
class AnalyzerConfig:
    """Thresholds, all documented in docs/workflow.md (method)."""

    #: A step is a bottleneck when it takes at least this multiple of its fair share (1/k of k steps).
    share_factor: float = 2.0
    #: ... or when its coefficient of variation is at least this and it takes at least its fair share.
    cv_threshold: float = 1.0
    #: Waits (idle time in a step beyond the Tukey fence, or unaccounted run time) flagged above this share.
    wait_share: float = 0.10
    #: Tukey fence multiplier separating normal step time from an interruption.
    fence_iqr: float = 3.0
    #: Runs of one automation are queueing when the runner is busy this share of the observed span.
    queue_utilization: float = 0.7
    #: Fewer samples than this give no variance or queueing verdict.
    min_samples: int = 3
    #: A step is worth caching when at least this many of its executions repeat an earlier input ...
    min_cache_repeats: int = 2
    #: ... and at least this share of them do.
    min_cache_hit_ratio: float = 0.3
    commit_actions: frozenset[str] = DEFAULT_COMMIT_ACTIONS
    navigation_actions: frozenset[str] = DEFAULT_NAVIGATION_ACTIONS
    write_actions: frozenset[str] = DEFAULT_WRITE_ACTIONS
    #: Weights of the optimization score's factors (they are normalised to sum to 1).
    score_weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "balance": 0.25,
            "stability": 0.2,
            "flow": 0.2,
            "parallelism": 0.2,
            "reuse": 0.15,
        }
    )
    #: How many runs per automation the incremental analyzer keeps (older ones age out). A run of a
    #: 50-step automation is about 4 kB of step timings; 100 of them keep one automation's state well
    #: under a changelog record's size cap.
    max_runs_per_automation: int = 100

    def __post_init__(self) -> None:
        if self.share_factor <= 1:
            raise AnalysisError("share_factor must be above 1 (1 would flag every step of an even routine)")
        if not 0 < self.wait_share < 1 or not 0 < self.queue_utilization < 1:
            raise AnalysisError("wait_share and queue_utilization must be within (0, 1)")
        if self.min_samples < 2 or self.min_cache_repeats < 1:
            raise AnalysisError("min_samples must be at least 2 and min_cache_repeats at least 1")
        if any(w < 0 for w in self.score_weights.values()) or sum(self.score_weights.values()) <= 0:
            raise AnalysisError("score weights must be non-negative and not all zero")


@dataclass(frozen=True, kw_only=True)
class StepStats:
    """Time statistics of one step of one routine (manual) or one automation (automated)."""

    scope: ScopeKind
    scope_id: str
    scope_name: str
    step: int
    label: str
    samples: int
    total_seconds: float
    mean_seconds: float
    median_seconds: float
    p90_seconds: float
    std_seconds: float
    cv: float
    share: float
    wait_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Bottleneck:
    scope: ScopeKind
    scope_id: str
    scope_name: str
    kind: BottleneckKind
    step: int | None
    label: str
    share: float
    total_seconds: float
    mean_seconds: float
    cv: float | None
    reasons: list[str]
    severity: Literal["high", "medium", "low"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ParallelPlan:
    """Independent groups of steps of one routine that could run at the same time."""

    candidate_id: str
    scope_name: str
    durations_from: Literal["automated", "manual"]
    groups: list[list[int]]
    group_labels: list[list[str]]
    sequential_seconds: float
    critical_path_seconds: float
    saving_seconds: float
    speedup: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class CachingHint:
    """A step that keeps being done again with an input it has already seen."""

    user_id: str
    label: str
    app: str
    target: str
    candidate_ids: list[str]
    executions: int
    distinct_inputs: int
    repeats: int
    hit_ratio: float
    mean_seconds: float
    saving_seconds: float
    #: Short digests of the most repeated inputs (the values themselves may be personal data).
    top_inputs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class OptimizationScore:
    """0-100, higher = less left to gain. Each factor is in [0, 1]; see docs/workflow.md."""

    score: float
    factors: dict[str, float]
    weights: dict[str, float]
    total_seconds: float
    wait_seconds: float
    parallel_saving_seconds: float
    cache_saving_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class WorkflowAnalysis:
    bottlenecks: list[Bottleneck]
    step_stats: list[StepStats]
    parallelization: list[ParallelPlan]
    caching: list[CachingHint]
    score: OptimizationScore | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bottlenecks": [b.to_dict() for b in self.bottlenecks],
            "step_stats": [s.to_dict() for s in self.step_stats],
            "parallelization": [p.to_dict() for p in self.parallelization],
            "caching": [c.to_dict() for c in self.caching],
            "score": self.score.to_dict() if self.score else None,
        }


def latest_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates topic is compacted: only the highest version per routine counts."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        old = best.get(c.candidate_id)
        if old is None or (c.version, c.updated_at) >= (old.version, old.updated_at):
            best[c.candidate_id] = c
    return list(best.values())


def latest_automations(automations: Iterable[Automation]) -> list[Automation]:
    """Latest event per automation: the highest version, and within it the last lifecycle change seen."""
    best: dict[str, Automation] = {}
    for a in automations:
        old = best.get(a.automation_id)
        if old is None or a.version >= old.version:
            best[a.automation_id] = a
    return list(best.values())


def routine_name(c: Candidate, width: int = 3) -> str:
    head = " → ".join(c.routine[:width])
    return head + (f" … ({len(c.routine)} steps)" if len(c.routine) > width else "")


def target_key(step: RoutineStep) -> str:
    """The identity of what a step acts on; two steps with the same key touch the same thing."""
    t = step.target
    parts = [t.workbook, t.sheet, t.cell, t.column, t.field, t.element, t.url, t.file, t.title]
    return "|".join(p or "" for p in parts)


@functools.lru_cache(maxsize=4096)
def _norm(action: str) -> str:
    return action.replace("_", "").replace("-", "").lower()


@functools.lru_cache(maxsize=64)
def _normed(names: frozenset[str]) -> frozenset[str]:
    return frozenset(_norm(n) for n in names)


def action_in(action: str, names: frozenset[str]) -> bool:
    return _norm(action) in _normed(names)
