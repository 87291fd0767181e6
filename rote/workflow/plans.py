"""What could be done about the time: steps that can run in parallel, and values worth caching.

Both read only the routine's steps (the dependency rules of docs/workflow.md), not its timings.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from rote.streams.schemas import Candidate, RoutineStep
from rote.workflow.model import (
    AnalyzerConfig,
    CachingHint,
    ParallelPlan,
    action_in,
    routine_name,
    target_key,
)


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
        if action_in(s.action_type, cfg.commit_actions) or action_in(s.action_type, cfg.navigation_actions):
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
        if action_in(s.action_type, cfg.commit_actions) or action_in(s.action_type, cfg.navigation_actions)
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
            if action_in(s.action_type, cfg.commit_actions) or action_in(s.action_type, cfg.write_actions):
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
