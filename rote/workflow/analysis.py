"""Where the time goes in a routine, and what could be done about it.

The analyzer looks at two kinds of evidence side by side: the user's own instances of a routine (manual
time, from `Candidate.instances`) and the automation's runs (machine time, from `RunMetric.steps`). Both are
reduced to the same per-step statistics so one ranking can say "the user loses most time fetching the date
from Excel" and "the automation loses most time starting its jail" in the same units.

Everything here is pure: the Faust agent feeds `WorkflowAnalyzer` and publishes `analysis()`; the report
and the CLI call `analyze` on archived events, so stream and report always agree.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

import numpy as np

from rote.errors import RoteError, StateError
from rote.state import StateReader, model_state
from rote.streams.schemas import Automation, Candidate, RoutineStep, RunMetric

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


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


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


def _in(action: str, names: frozenset[str]) -> bool:
    return _norm(action) in _normed(names)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """numpy's default (linear) percentile of sorted values, without numpy's per-call overhead: a step has
    a few dozen samples, and the analysis asks for thousands of these."""
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _stats(values: Sequence[float]) -> tuple[float, float, float, float, float]:
    n = len(values)
    total = math.fsum(values)
    mean = total / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    ordered = sorted(values)
    return (total, mean, _quantile(ordered, 0.5), _quantile(ordered, 0.9), std)


def _excess_over_fence(values: Sequence[float], fence_iqr: float, min_samples: int) -> float:
    """Idle time hiding inside a step: the part of each sample above Q3 + k·IQR (a Tukey far-out fence)."""
    if len(values) < min_samples:
        return 0.0
    ordered = sorted(values)
    q1, q3 = _quantile(ordered, 0.25), _quantile(ordered, 0.75)
    fence = q3 + fence_iqr * (q3 - q1)
    return float(sum(v - fence for v in values if v > fence))


@dataclass
class _Scope:
    kind: ScopeKind
    scope_id: str
    name: str
    labels: list[str]
    durations: dict[int, list[float]]
    total_seconds: float
    unaccounted_seconds: float
    samples: int
    run_spans: list[tuple[float, float]] = field(default_factory=list)


def _routine_scope(c: Candidate) -> _Scope:
    durations: dict[int, list[float]] = defaultdict(list)
    total = 0.0
    unaccounted = 0.0
    for inst in c.instances:
        span = max((inst.end - inst.start).total_seconds(), 0.0)
        total += span
        steps = [d for d in inst.step_durations_seconds[: len(c.steps)]]
        for i, d in enumerate(steps):
            if d is not None and math.isfinite(d) and d >= 0:
                durations[i].append(float(d))
        covered = sum(d for d in steps if d is not None and math.isfinite(d) and d >= 0)
        if inst.step_durations_seconds:
            unaccounted += max(span - covered, 0.0)
    if not c.instances:
        # No instance detail: fall back on the candidate's own per-step means, one synthetic sample each.
        for i, s in enumerate(c.steps):
            if s.mean_duration_seconds is not None:
                durations[i].append(s.mean_duration_seconds)
        total = sum(v[0] for v in durations.values())
    return _Scope(
        kind="routine",
        scope_id=c.candidate_id,
        name=routine_name(c),
        labels=[s.label for s in c.steps],
        durations=durations,
        total_seconds=total,
        unaccounted_seconds=unaccounted,
        samples=len(c.instances),
    )


def _automation_scope(automation_id: str, name: str, runs: Sequence[RunMetric]) -> _Scope:
    durations: dict[int, list[float]] = defaultdict(list)
    labels: dict[int, str] = {}
    total = 0.0
    unaccounted = 0.0
    spans: list[tuple[float, float]] = []
    for r in runs:
        total += r.duration_seconds
        start = r.started_at.timestamp()
        spans.append((start, start + r.duration_seconds))
        covered = 0.0
        for st in r.steps:
            durations[st.step].append(st.duration_seconds)
            labels.setdefault(st.step, st.label)
            covered += st.duration_seconds
        if r.steps:
            unaccounted += max(r.duration_seconds - covered, 0.0)
    n = max(labels) + 1 if labels else 0
    return _Scope(
        kind="automation",
        scope_id=automation_id,
        name=name,
        labels=[labels.get(i, f"step {i}") for i in range(n)],
        durations=durations,
        total_seconds=total,
        unaccounted_seconds=unaccounted,
        samples=len(runs),
        run_spans=spans,
    )


def _scope_step_stats(scope: _Scope, cfg: AnalyzerConfig) -> list[StepStats]:
    if scope.total_seconds <= 0:
        return []
    out = []
    for i in sorted(scope.durations):
        vals = scope.durations[i]
        if not vals:
            continue
        total, mean, median, p90, std = _stats(vals)
        out.append(
            StepStats(
                scope=scope.kind,
                scope_id=scope.scope_id,
                scope_name=scope.name,
                step=i,
                label=scope.labels[i] if i < len(scope.labels) else f"step {i}",
                samples=len(vals),
                total_seconds=total,
                mean_seconds=mean,
                median_seconds=median,
                p90_seconds=p90,
                std_seconds=std,
                cv=std / mean if mean > 0 else 0.0,
                share=total / scope.total_seconds,
                wait_seconds=_excess_over_fence(vals, cfg.fence_iqr, cfg.min_samples),
            )
        )
    return out


def _severity(share: float, fair: float) -> Literal["high", "medium", "low"]:
    ratio = share / fair if fair > 0 else 0.0
    if ratio >= 4 or share >= 0.4:
        return "high"
    if ratio >= 2.5 or share >= 0.2:
        return "medium"
    return "low"


def _scope_bottlenecks(scope: _Scope, stats: list[StepStats], cfg: AnalyzerConfig) -> list[Bottleneck]:
    if not stats or scope.total_seconds <= 0:
        return []
    k = len(stats)
    fair = 1.0 / k
    found: list[Bottleneck] = []
    for s in stats:
        reasons = []
        if k > 1 and s.share >= cfg.share_factor * fair:
            # k counts the timed steps (a routine's first step has no time before it): said so, since
            # "1/13" beside a 14-step routine read as a miscount
            reasons.append(
                f"takes {s.share:.0%} of the time, {s.share / fair:.1f}x its fair share of 1/{k} "
                f"({k} timed steps)"
            )
        if s.samples >= cfg.min_samples and s.cv >= cfg.cv_threshold and s.share >= fair:
            reasons.append(
                f"high variance: cv {s.cv:.2f} (p90 {s.p90_seconds:.2f}s vs median {s.median_seconds:.2f}s)"
            )
        if s.wait_seconds > 0 and s.wait_seconds / scope.total_seconds >= cfg.wait_share / 2:
            reasons.append(f"{s.wait_seconds:.1f}s of interruptions beyond the usual time")
        if reasons:
            found.append(
                Bottleneck(
                    scope=scope.kind,
                    scope_id=scope.scope_id,
                    scope_name=scope.name,
                    kind="step",
                    step=s.step,
                    label=s.label,
                    share=s.share,
                    total_seconds=s.total_seconds,
                    mean_seconds=s.mean_seconds,
                    cv=s.cv,
                    reasons=reasons,
                    severity=_severity(s.share, fair) if k > 1 else "low",
                )
            )
    wait = scope.unaccounted_seconds + sum(s.wait_seconds for s in stats)
    if wait / scope.total_seconds >= cfg.wait_share:
        reasons = []
        if scope.unaccounted_seconds > 0:
            what = "outside any step (start-up, hand-over)" if scope.kind == "automation" else "between steps"
            reasons.append(f"{scope.unaccounted_seconds:.1f}s {what}")
        interrupted = sorted((s for s in stats if s.wait_seconds > 0), key=lambda s: -s.wait_seconds)[:3]
        if interrupted:
            where = ", ".join(f"{s.label} ({s.wait_seconds:.1f}s)" for s in interrupted)
            reasons.append(f"interruptions in {where}")
        share = wait / scope.total_seconds
        found.append(
            Bottleneck(
                scope=scope.kind,
                scope_id=scope.scope_id,
                scope_name=scope.name,
                kind="wait",
                step=None,
                label="waiting",
                share=share,
                total_seconds=wait,
                mean_seconds=wait / max(scope.samples, 1),
                cv=None,
                reasons=reasons,
                severity="high" if share >= 0.3 else "medium" if share >= 0.15 else "low",
            )
        )
    q = _queueing(scope, cfg)
    if q is not None:
        found.append(q)
    return found


def _queueing(scope: _Scope, cfg: AnalyzerConfig) -> Bottleneck | None:
    """Runs of one automation that arrive faster than they finish wait for each other.

    With only start times and durations the enqueue time is unknown, so the wait is estimated from the
    runner's utilisation ρ (busy time / observed span) with the M/M/1 formula Wq = ρ/(1-ρ)·mean service
    time, and overlapping runs are counted as direct evidence.
    """
    spans = sorted(scope.run_spans)
    if scope.kind != "automation" or len(spans) < cfg.min_samples:
        return None
    first, last_end = spans[0][0], max(e for _, e in spans)
    observed = last_end - first
    if observed <= 0:
        return None
    busy = sum(e - s for s, e in spans)
    rho = min(busy / observed, 0.99)
    overlaps = sum(1 for (_, e0), (s1, _) in itertools.pairwise(spans) if s1 < e0)
    if rho < cfg.queue_utilization and overlaps == 0:
        return None
    mean = busy / len(spans)
    wq = rho / (1 - rho) * mean
    reasons = [f"runner busy {rho:.0%} of the time: estimated queueing {wq:.2f}s per run (M/M/1)"]
    if overlaps:
        reasons.append(f"{overlaps} of {len(spans)} runs started before the previous one finished")
    share = wq * len(spans) / (scope.total_seconds + wq * len(spans))
    return Bottleneck(
        scope=scope.kind,
        scope_id=scope.scope_id,
        scope_name=scope.name,
        kind="queue",
        step=None,
        label="queueing",
        share=share,
        total_seconds=wq * len(spans),
        mean_seconds=wq,
        cv=None,
        reasons=reasons,
        severity="high" if rho >= 0.9 else "medium",
    )


# --------------------------------------------------------------------------------------------------
# parallelization
# --------------------------------------------------------------------------------------------------


def dependency_edges(steps: Sequence[RoutineStep], cfg: AnalyzerConfig | None = None) -> set[tuple[int, int]]:
    """Edges i -> j meaning step j cannot start before step i ends.

    Three sources of order: data flow (a derived parameter names its source step), the same target (two
    steps on one field or cell keep their order), and barriers (a commit or navigation step waits for
    everything before it, and everything after waits for it).
    """
    cfg = cfg or AnalyzerConfig()
    edges: set[tuple[int, int]] = set()
    last_on_target: dict[str, int] = {}
    last_barrier: int | None = None
    for j, s in enumerate(steps):
        p = s.parameter
        if p is not None and p.kind == "derived" and p.source_step is not None and 0 <= p.source_step < j:
            edges.add((p.source_step, j))
        key = f"{s.app}|{target_key(s)}"
        if target_key(s).strip("|") and key in last_on_target:
            edges.add((last_on_target[key], j))
        last_on_target[key] = j
        if last_barrier is not None:
            edges.add((last_barrier, j))
        if _in(s.action_type, cfg.commit_actions) or _in(s.action_type, cfg.navigation_actions):
            edges.update((i, j) for i in range(j))
            last_barrier = j
    return edges


def _components(nodes: list[int], edges: set[tuple[int, int]]) -> list[list[int]]:
    parent = {n: n for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for n in nodes:
        groups[find(n)].append(n)
    return sorted(groups.values(), key=lambda g: g[0])


def parallel_plan(
    c: Candidate, durations: Mapping[int, float], source: Literal["automated", "manual"], cfg: AnalyzerConfig
) -> ParallelPlan | None:
    """Independent chains between barriers, and what running them side by side would save.

    The saving is the sequential time minus the critical path (longest path through the dependency DAG
    weighted by mean step time): an upper bound, since concurrent UI work shares one screen.
    """
    n = len(c.steps)
    edges = dependency_edges(c.steps, cfg)
    barriers = [
        j
        for j, s in enumerate(c.steps)
        if _in(s.action_type, cfg.commit_actions) or _in(s.action_type, cfg.navigation_actions)
    ]
    groups: list[list[int]] = []
    bounds = [-1, *barriers, n]
    for lo, hi in itertools.pairwise(bounds):
        seg = list(range(lo + 1, hi))
        comps = _components(seg, {(a, b) for a, b in edges if a in seg and b in seg})
        if len(comps) > 1:
            groups.extend(comps)
    if not groups:
        return None
    finish = [0.0] * n
    for j in range(n):
        start = max((finish[i] for i, k in edges if k == j), default=0.0)
        finish[j] = start + durations.get(j, 0.0)
    sequential = sum(durations.get(j, 0.0) for j in range(n))
    critical = max(finish, default=0.0)
    if sequential <= 0 or critical >= sequential:
        return None
    return ParallelPlan(
        candidate_id=c.candidate_id,
        scope_name=routine_name(c),
        durations_from=source,
        groups=groups,
        group_labels=[[c.steps[i].label for i in g] for g in groups],
        sequential_seconds=sequential,
        critical_path_seconds=critical,
        saving_seconds=sequential - critical,
        speedup=sequential / critical if critical > 0 else float(len(groups)),
    )


# --------------------------------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def caching_hints(candidates: Sequence[Candidate], cfg: AnalyzerConfig) -> list[CachingHint]:
    """Reads and look-ups repeated with an input already seen (within and across a user's routines).

    A step's input is its own value (what it read or opened) and, for a derived step, the value flowing
    into it. Writes and commits are excluded: doing them again is the work, not a cache miss.
    """
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for c in candidates:
        for i, s in enumerate(c.steps):
            if _in(s.action_type, cfg.commit_actions) or _in(s.action_type, cfg.write_actions):
                continue
            key = (c.user_id, s.label, s.app, target_key(s))
            g = groups.setdefault(key, {"inputs": defaultdict(int), "durations": [], "cands": set()})
            src = s.parameter.source_step if s.parameter and s.parameter.kind == "derived" else None
            for inst in c.instances:
                if i >= len(inst.values):
                    continue
                v = inst.values[i]
                if src is not None and src < len(inst.values):
                    v = f"{inst.values[src]}\x00{v}"
                if v is None:
                    continue
                g["inputs"][v] += 1
                g["cands"].add(c.candidate_id)
                if i < len(inst.step_durations_seconds) and inst.step_durations_seconds[i] is not None:
                    g["durations"].append(inst.step_durations_seconds[i])
    hints = []
    for (user, label, app, target), g in groups.items():
        executions = sum(g["inputs"].values())
        distinct = len(g["inputs"])
        repeats = executions - distinct
        if executions == 0 or repeats < cfg.min_cache_repeats:
            continue
        if repeats / executions < cfg.min_cache_hit_ratio:
            continue
        mean = float(np.mean(g["durations"])) if g["durations"] else 0.0
        top = sorted(g["inputs"].items(), key=lambda kv: -kv[1])[:3]
        hints.append(
            CachingHint(
                user_id=user,
                label=label,
                app=app,
                target=target.strip("|"),
                candidate_ids=sorted(g["cands"]),
                executions=executions,
                distinct_inputs=distinct,
                repeats=repeats,
                hit_ratio=repeats / executions,
                mean_seconds=mean,
                saving_seconds=repeats * mean,
                top_inputs=[{"input": _digest(v), "count": n} for v, n in top if n > 1],
            )
        )
    hints.sort(key=lambda h: (-h.saving_seconds, -h.repeats, h.label))
    return hints


# --------------------------------------------------------------------------------------------------
# the whole analysis
# --------------------------------------------------------------------------------------------------


def _score(
    scopes: list[_Scope],
    stats_by_scope: dict[str, list[StepStats]],
    plans: list[ParallelPlan],
    hints: list[CachingHint],
    cfg: AnalyzerConfig,
) -> OptimizationScore | None:
    total = sum(s.total_seconds for s in scopes)
    if total <= 0:
        return None
    balance_num = stab_num = 0.0
    wait = 0.0
    for sc in scopes:
        stats = stats_by_scope.get(f"{sc.kind}:{sc.scope_id}", [])
        wait += sc.unaccounted_seconds + sum(s.wait_seconds for s in stats)
        if not stats:
            balance_num += sc.total_seconds
            stab_num += sc.total_seconds
            continue
        k = len(stats)
        shares = [s.share for s in stats]
        covered = sum(shares) or 1.0
        top = max(shares) / covered
        concentration = (top - 1 / k) / (1 - 1 / k) if k > 1 else 0.0
        balance_num += sc.total_seconds * (1 - min(max(concentration, 0.0), 1.0))
        cv = sum(s.cv * s.total_seconds for s in stats) / max(sum(s.total_seconds for s in stats), 1e-12)
        stab_num += sc.total_seconds / (1 + cv)
    sequential = sum(p.sequential_seconds for p in plans)
    par_saving_share = 0.0
    if sequential > 0:
        weighted = (
            p.saving_seconds / p.sequential_seconds * _routine_time(scopes, p.candidate_id) for p in plans
        )
        par_saving_share = sum(weighted) / total
    cache = sum(h.saving_seconds for h in hints)
    factors = {
        "balance": balance_num / total,
        "stability": stab_num / total,
        "flow": 1 - min(wait / total, 1.0),
        "parallelism": 1 - min(par_saving_share, 1.0),
        "reuse": 1 - min(cache / total, 1.0),
    }
    wsum = sum(cfg.score_weights.get(k, 0.0) for k in factors)
    weights = {k: cfg.score_weights.get(k, 0.0) / wsum for k in factors}
    score = 100 * sum(weights[k] * factors[k] for k in factors)
    return OptimizationScore(
        score=round(min(max(score, 0.0), 100.0), 2),
        factors={k: round(v, 4) for k, v in factors.items()},
        weights=weights,
        total_seconds=total,
        wait_seconds=wait,
        parallel_saving_seconds=sum(p.saving_seconds for p in plans),
        cache_saving_seconds=cache,
    )


def _routine_time(scopes: list[_Scope], candidate_id: str) -> float:
    return sum(s.total_seconds for s in scopes if s.kind == "routine" and s.scope_id == candidate_id)


def analyze(
    candidates: Sequence[Candidate],
    runs: Sequence[RunMetric],
    *,
    automations: Sequence[Automation] = (),
    config: AnalyzerConfig | None = None,
) -> WorkflowAnalysis:
    """Bottlenecks, parallelization, caching and the optimization score over routines and their runs.

    `automations` is optional: it names the automations and links them to their routine, so a routine's
    parallelization plan can use the automation's measured step times instead of the user's.
    """
    cfg = config or AnalyzerConfig()
    cands = latest_candidates(candidates)
    autos = {a.automation_id: a for a in latest_automations(automations)}
    runs_by_auto: dict[str, list[RunMetric]] = defaultdict(list)
    for r in runs:
        runs_by_auto[r.automation_id].append(r)

    scopes: list[_Scope] = [_routine_scope(c) for c in cands]
    for aid in sorted(runs_by_auto):
        a = autos.get(aid)
        scopes.append(_automation_scope(aid, a.name if a else aid, runs_by_auto[aid]))

    stats_by_scope: dict[str, list[StepStats]] = {}
    bottlenecks: list[Bottleneck] = []
    all_stats: list[StepStats] = []
    for sc in scopes:
        st = _scope_step_stats(sc, cfg)
        stats_by_scope[f"{sc.kind}:{sc.scope_id}"] = st
        all_stats.extend(st)
        bottlenecks.extend(_scope_bottlenecks(sc, st, cfg))
    bottlenecks.sort(key=lambda b: (-b.total_seconds, b.scope_id, b.step if b.step is not None else -1))

    auto_step_means: dict[str, dict[int, float]] = {}
    for aid, rs in runs_by_auto.items():
        a = autos.get(aid)
        if a is None or not any(r.steps for r in rs):
            continue
        sums: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            for s in r.steps:
                sums[s.step].append(s.duration_seconds)
        auto_step_means[a.candidate_id] = {i: float(np.mean(v)) for i, v in sums.items()}

    plans: list[ParallelPlan] = []
    for c in cands:
        if c.candidate_id in auto_step_means:
            plan = parallel_plan(c, auto_step_means[c.candidate_id], "automated", cfg)
        else:
            manual = {s.step: s.mean_seconds for s in stats_by_scope.get(f"routine:{c.candidate_id}", [])}
            plan = parallel_plan(c, manual, "manual", cfg)
        if plan is not None:
            plans.append(plan)
    plans.sort(key=lambda p: -p.saving_seconds)
    hints = caching_hints(cands, cfg)
    return WorkflowAnalysis(
        bottlenecks=bottlenecks,
        step_stats=all_stats,
        parallelization=plans,
        caching=hints,
        score=_score(scopes, stats_by_scope, plans, hints, cfg),
    )


class WorkflowAnalyzer:
    """The incremental form for the agent: remembers the latest candidates and a window of runs.

    State is the events it keeps, as data (`to_state`); they are re-validated when read back.
    """

    STATE_KIND: ClassVar[str] = "workflow-analyzer"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config or AnalyzerConfig()
        self._candidates: dict[str, Candidate] = {}
        self._automations: dict[str, Automation] = {}
        self._runs: dict[str, deque[RunMetric]] = {}

    @classmethod
    def merged(cls, analyzers: Iterable[WorkflowAnalyzer], *, config: AnalyzerConfig | None = None) -> Self:
        """One analyzer over the events of several (the agents keep one per automation and per routine)."""
        out = cls(config)
        for a in analyzers:
            out._candidates.update(a._candidates)
            out._automations.update(a._automations)
            out._runs.update(a._runs)
        return out

    def apply_candidate(self, c: Candidate) -> None:
        old = self._candidates.get(c.candidate_id)
        if old is None or (c.version, c.updated_at) >= (old.version, old.updated_at):
            self._candidates[c.candidate_id] = compact_candidate(c)

    def apply_automation(self, a: Automation) -> None:
        old = self._automations.get(a.automation_id)
        if old is None or a.version >= old.version:
            self._automations[a.automation_id] = compact_automation(a)

    def apply_metric(self, m: RunMetric) -> None:
        q = self._runs.get(m.automation_id)
        if q is None:
            q = self._runs[m.automation_id] = deque(maxlen=self.config.max_runs_per_automation)
        if any(r.run_id == m.run_id for r in q):
            return  # redelivered (at-least-once): the window holds each run once
        if len(q) == q.maxlen and q[0].started_at >= m.started_at:
            return  # older than every run kept: a redelivery of one that aged out
        q.append(m)

    @property
    def runs(self) -> list[RunMetric]:
        return [r for q in self._runs.values() for r in q]

    def to_state(self) -> dict[str, Any]:
        return {
            "candidates": [c.model_dump(mode="json") for c in self._candidates.values()],
            "automations": [a.model_dump(mode="json") for a in self._automations.values()],
            "runs": {aid: [m.model_dump(mode="json") for m in q] for aid, q in self._runs.items()},
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: AnalyzerConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(config)
        for c in r.list("candidates"):
            obj.apply_candidate(model_state(Candidate, c, f"{cls.STATE_KIND}.candidates"))
        for a in r.list("automations"):
            obj.apply_automation(model_state(Automation, a, f"{cls.STATE_KIND}.automations"))
        for aid, runs in r.dict("runs").items():
            if not isinstance(runs, list):
                raise StateError(f"{cls.STATE_KIND}.runs.{aid}: expected a list")
            for m in runs:
                obj.apply_metric(model_state(RunMetric, m, f"{cls.STATE_KIND}.runs.{aid}"))
        return obj

    def analysis(self) -> WorkflowAnalysis:
        return analyze(
            list(self._candidates.values()),
            self.runs,
            automations=list(self._automations.values()),
            config=self.config,
        )


def compact_candidate(c: Candidate) -> Candidate:
    """What the analysis and the report use of a candidate's instances: timings and values (the caching
    hints compare inputs), not each step's target and event id, which state would carry for every routine."""
    if not c.instances or all(not i.targets and not i.event_ids for i in c.instances):
        return c
    slim = [i.model_copy(update={"targets": [], "event_ids": []}) for i in c.instances]
    return c.model_copy(update={"instances": slim})


def compact_automation(a: Automation) -> Automation:
    """An automation without its generated code and test cases (names, versions, states and links are
    what the analysis and the report use; the registry keeps the rest)."""
    if not a.test_cases and all(not s.source for s in a.sources.values()):
        return a
    sources = {k: v.model_copy(update={"source": ""}) for k, v in a.sources.items()}
    return a.model_copy(update={"sources": sources, "test_cases": []})


def edge_times(candidates: Sequence[Candidate]) -> dict[tuple[str, str], float]:
    """Total manual time per (previous step label, step label): the unit a directly-follows graph ranks.

    Assumes `step_durations_seconds[i]` is the time from step i-1's event to step i's event (how the
    UI-log import measures it); the first step has no incoming edge.
    """
    out: dict[tuple[str, str], float] = defaultdict(float)
    for c in latest_candidates(candidates):
        for inst in c.instances:
            for i, d in enumerate(inst.step_durations_seconds[: len(c.steps)]):
                if i == 0 or d is None:
                    continue
                out[(c.steps[i - 1].label, c.steps[i].label)] += d
    return dict(out)


def rank_agreement(a: Mapping[Any, float], b: Mapping[Any, float], *, k: int = 10) -> dict[str, float]:
    """Kendall's tau-b over the items both rank, and the overlap of their top-k (|A_k ∩ B_k| / k)."""
    common = sorted(set(a) & set(b), key=str)
    tau = _kendall_tau_b([a[x] for x in common], [b[x] for x in common]) if len(common) >= 2 else float("nan")
    top_a = [x for x, _ in sorted(a.items(), key=lambda kv: -kv[1])[:k]]
    top_b = [x for x, _ in sorted(b.items(), key=lambda kv: -kv[1])[:k]]
    kk = min(k, len(top_a), len(top_b))
    overlap = len(set(top_a[:kk]) & set(top_b[:kk])) / kk if kk else float("nan")
    return {
        "kendall_tau": tau,
        "top_k_overlap": overlap,
        "k": float(kk),
        "common_items": float(len(common)),
        "top1_agrees": float(bool(top_a and top_b and top_a[0] == top_b[0])),
    }


def _kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    conc = disc = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else float("nan")


def period(
    candidates: Sequence[Candidate], runs: Sequence[RunMetric]
) -> tuple[datetime | None, datetime | None]:
    """First and last moment the evidence covers."""
    times: list[datetime] = []
    for c in candidates:
        times.extend((c.first_seen, c.last_seen))
    for r in runs:
        times.append(r.started_at)
    return (min(times), max(times)) if times else (None, None)
