"""Where the time goes in a routine, and what could be done about it.

The analyzer looks at two kinds of evidence side by side: the user's own instances of a routine (manual
time, from `Candidate.instances`) and the automation's runs (machine time, from `RunMetric.steps`). Both are
reduced to the same per-step statistics so one ranking can say "the user loses most time fetching the date
from Excel" and "the automation loses most time starting its jail" in the same units.

Everything here is pure: the Faust agent feeds `WorkflowAnalyzer` and publishes `analysis()`; the report
and the CLI call `analyze` on archived events, so stream and report always agree.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Self

import numpy as np

from rote.errors import StateError
from rote.state import StateReader, model_state
from rote.streams.schemas import Automation, Candidate, RunMetric
from rote.workflow.model import (
    AnalyzerConfig,
    Bottleneck,
    CachingHint,
    OptimizationScore,
    ParallelPlan,
    StepStats,
    WorkflowAnalysis,
    latest_automations,
    latest_candidates,
)
from rote.workflow.plans import caching_hints, parallel_plan
from rote.workflow.steps import Scope, automation_scope, routine_scope, scope_bottlenecks, scope_step_stats


def _score(
    scopes: list[Scope],
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


def _routine_time(scopes: list[Scope], candidate_id: str) -> float:
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

    scopes: list[Scope] = [routine_scope(c) for c in cands]
    for aid in sorted(runs_by_auto):
        a = autos.get(aid)
        scopes.append(automation_scope(aid, a.name if a else aid, runs_by_auto[aid]))

    stats_by_scope: dict[str, list[StepStats]] = {}
    bottlenecks: list[Bottleneck] = []
    all_stats: list[StepStats] = []
    for sc in scopes:
        st = scope_step_stats(sc, cfg)
        stats_by_scope[f"{sc.kind}:{sc.scope_id}"] = st
        all_stats.extend(st)
        bottlenecks.extend(scope_bottlenecks(sc, st, cfg))
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
