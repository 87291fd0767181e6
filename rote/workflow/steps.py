"""Per-step statistics and bottlenecks, for a routine's instances and an automation's runs alike.

Both kinds of evidence are reduced to a `Scope` (per-step durations and the waits between steps), so one
ranking can say where the user loses time and where the automation does, in the same units.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rote.streams.schemas import Candidate, RunMetric
from rote.workflow.model import (
    AnalyzerConfig,
    Bottleneck,
    ScopeKind,
    StepStats,
    routine_name,
)


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
class Scope:
    kind: ScopeKind
    scope_id: str
    name: str
    labels: list[str]
    durations: dict[int, list[float]]
    total_seconds: float
    unaccounted_seconds: float
    samples: int
    run_spans: list[tuple[float, float]] = field(default_factory=list)


def routine_scope(c: Candidate) -> Scope:
    durations: dict[int, list[float]] = defaultdict(list)
    total = 0.0
    unaccounted = 0.0
    for inst in c.instances:
        # the instance's own time: time spent on other work within its span (interleaved routines) is neither
        # a step nor waiting in this routine (it read as a 55% "waiting" bottleneck)
        own = inst.active_seconds
        span = max(own if own is not None else (inst.end - inst.start).total_seconds(), 0.0)
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
    return Scope(
        kind="routine",
        scope_id=c.candidate_id,
        name=routine_name(c),
        labels=[s.label for s in c.steps],
        durations=durations,
        total_seconds=total,
        unaccounted_seconds=unaccounted,
        samples=len(c.instances),
    )


def automation_scope(automation_id: str, name: str, runs: Sequence[RunMetric]) -> Scope:
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
    return Scope(
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


def scope_step_stats(scope: Scope, cfg: AnalyzerConfig) -> list[StepStats]:
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


def scope_bottlenecks(scope: Scope, stats: list[StepStats], cfg: AnalyzerConfig) -> list[Bottleneck]:
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


def _queueing(scope: Scope, cfg: AnalyzerConfig) -> Bottleneck | None:
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
