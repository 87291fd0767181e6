"""From a variant to a `Candidate` (steps, parameters, instances, score, name, SOP), and the ranked result.

Ranking of the batch result: variants are grouped into *routines* (families of variants whose action sets
overlap by `family_similarity`, or whose smaller action set lies almost wholly inside the larger one: a
fragment or an optional-step variant), and routines are ranked by the events they explain (occurrences x
steps). That prefers complete routines over fragments (a 5-step log-in prefix explains fewer events than
the three 14-step routines that share it) and keeps near-duplicates from taking several top places. The
candidate's own `rank` is by automation potential among the user's candidates, as the pipeline uses it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rote.discovery.config import DiscoveryConfig
from rote.discovery.describe import describe
from rote.discovery.model import NO_TIME_LO, US, Ev, Segment, UserState, Variant, idle_within, target_dict
from rote.discovery.parameters import analyse_data
from rote.discovery.scoring import Evidence, score
from rote.streams.schemas import Candidate


@dataclass(frozen=True, kw_only=True)
class DiscoveredRoutine:
    candidate: Candidate
    #: every kept occurrence: event ids of the events aligned to the routine's steps (missing steps left out)
    occurrences: list[list[str]]
    #: the same occurrences step by step (None where the step was missing)
    step_occurrences: list[list[str | None]]
    #: the routine (family of variants) this variant belongs to; 0 is the best-supported routine
    family: int = 0
    #: events explained by the variant: occurrences x steps
    coverage: int = 0


@dataclass(frozen=True, kw_only=True)
class DiscoveryResult:
    #: ordered by routine (family) then by coverage; `heads()` gives one variant per routine
    routines: list[DiscoveredRoutine]
    starts: list[str]
    events: int
    duplicates: int
    late: int
    noise_events: int
    segments: int

    @property
    def candidates(self) -> list[Candidate]:
        return [r.candidate for r in self.routines]

    def heads(self) -> list[DiscoveredRoutine]:
        """The best-supported variant of each routine, best routine first (near-duplicates suppressed)."""
        seen: set[int] = set()
        out = []
        for r in self.routines:
            if r.family not in seen:
                seen.add(r.family)
                out.append(r)
        return out


def utc(ts: int) -> datetime:
    try:
        return datetime.fromtimestamp(ts // US, tz=UTC).replace(microsecond=ts % US)
    except (OverflowError, OSError, ValueError):
        return (datetime.max if ts > 0 else datetime.min).replace(tzinfo=UTC)


def _common_target(targets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not targets:
        return {}
    first = targets[0]
    return {k: v for k, v in first.items() if all(t.get(k) == v for t in targets[1:])}


def _mode(xs: list[str]) -> str:
    """The most common value (the first seen among equals), as `Counter.most_common(1)` picks it."""
    if len(xs) == 1 or all(x == xs[0] for x in xs):
        return xs[0]
    return Counter(xs).most_common(1)[0][0]


#: one kept instance step by step: its events, values, targets and durations (None where a step is missing)
_Observed = tuple[list[Ev | None], list[str | None], list[dict[str, Any] | None], list[float | None]]


def _observe(seg: Segment, n_steps: int) -> _Observed:
    """Read an instance once for everything a candidate needs from it."""
    events = seg.events or []
    evs: list[Ev | None] = [None] * n_steps
    values: list[str | None] = [None] * n_steps
    targets: list[dict[str, Any] | None] = [None] * n_steps
    durations: list[float | None] = [None] * n_steps
    prev_ts: int | None = None
    for k, i in enumerate(seg.aligned[:n_steps]):
        if i is None:
            continue
        e = events[i]
        evs[k] = e
        values[k] = e.value
        targets[k] = target_dict(e.target)
        if e.duration is not None:
            durations[k] = e.duration
        elif prev_ts is not None:
            durations[k] = max(0.0, _active(e, prev_ts) / US)
        prev_ts = e.ts
    return evs, values, targets, durations


def _instance(seg: Segment, row: _Observed) -> dict[str, Any]:
    evs, values, targets, durations = row
    present = [e for e in evs if e is not None]
    out = {
        "event_ids": [None if e is None else e.event_id for e in evs],
        "values": values,
        "start": utc(present[0].ts),
        "end": utc(present[-1].ts),
        "step_durations_seconds": [None if d is None else round(d, 3) for d in durations],
        "targets": targets,
    }
    if seg.events is not None:
        # the instance's own time: its span less the time spent on other work within it, plus the last
        # step's own duration, as the routine's mean duration counts it (`VariantMiner.add`; the efficiency
        # tracker's baseline took the span, other routines and all)
        at = [i for i in seg.aligned[: len(evs)] if i is not None]
        idle = idle_within(seg.events, at, note=False) if len(at) > 1 else 0
        last = seg.events[at[-1]].duration if at else None
        own = max(0, present[-1].ts - present[0].ts - idle) / US
        if last is not None and math.isfinite(last) and last > 0:
            own += last
        out["active_seconds"] = round(own, 3)
    return out


def _step_duration(seg: Segment, k: int) -> float | None:
    i = seg.aligned[k]
    if i is None or seg.events is None:
        return None
    ev = seg.events[i]
    if ev.duration is not None:
        return ev.duration
    for j in range(k - 1, -1, -1):
        p = seg.aligned[j]
        if p is not None:
            return max(0.0, _active(ev, seg.events[p].ts) / US)
    return None


def _active(ev: Ev, prev_ts: int) -> int:
    """Microseconds the step took: since the instance's previous step, less any time spent on other work
    in between (`Ev.gap`: only the time since the user's previous event, whatever it was)."""
    d = ev.ts - prev_ts
    g = ev.gap
    return g if g is not None and g < d else d


def families(variants: Sequence[Variant], similarity: float, containment: float) -> list[list[Variant]]:
    """Greedy grouping of variants into routines, best coverage first (see the module docstring)."""
    ordered = sorted(variants, key=lambda v: (-v.count * len(v.steps), v.vid))
    groups: list[tuple[set[str], list[Variant]]] = []
    for v in ordered:
        vs = set(v.steps)
        for head, members in groups:
            inter = len(vs & head)
            small = min(len(vs), len(head)) or 1
            if inter / len(vs | head) >= similarity or inter / small >= containment:
                members.append(v)
                break
        else:
            groups.append((vs, [v]))
    ranked = sorted(groups, key=lambda g: -sum(m.count * len(m.steps) for m in g[1]))
    return [members for _, members in ranked]


#: Kept instances a candidate's steps and parameters are inferred from, at most.
_BUILD_INSTANCES = 60


class CandidateBuilder:
    """Builds candidates. Why the dict-then-validate shape: a candidate of a 48-step routine holds ~350
    nested models (steps, parameters, per-instance targets); building each through its own pydantic
    constructor cost milliseconds, while one `Candidate.model_validate` over plain data is a single pass in
    pydantic-core. It still validates everything, so an emitted candidate is always schema-valid."""

    def __init__(self, config: DiscoveryConfig) -> None:
        self.config = config

    @staticmethod
    def describable(v: Variant) -> bool:
        """Whether a kept instance still holds its events: without one a candidate has no applications,
        targets or parameters, every step looks optional and determinism looks perfect (a new user's CRM
        routine went from score 60.8 with its fields to 74.0 as "Copy a value (8 steps)"), so no version
        is published from tallies alone (`RoutineDiscoverer._emit`)."""
        return any(s.events and any(i is not None for i in s.aligned) for s in v.instances)

    def build(self, state: UserState, v: Variant, *, version: int | None = None) -> Candidate:
        cfg = self.config
        # the most recent instances describe the routine (the batch helper keeps hundreds)
        kept = [
            s
            for s in list(v.instances)[-_BUILD_INSTANCES:]
            if s.events and any(i is not None for i in s.aligned)
        ]
        n_steps = len(v.steps)
        rows = [_observe(s, n_steps) for s in kept]
        params = analyse_data([r[1] for r in rows])
        params += [None] * (n_steps - len(params))
        steps: list[dict[str, Any]] = []
        n_kept = len(kept)
        for k, label in enumerate(v.steps):
            evs = [ev for r in rows if (ev := r[0][k]) is not None]
            ds = [d for r in rows if (d := r[3][k]) is not None]
            if evs:
                app = _mode([e.app for e in evs])
                atype = _mode([e.action_type for e in evs])
            else:
                app, atype = "", label.split(":", 1)[0]
            steps.append(
                {
                    "label": label,
                    "app": app,
                    "action_type": atype,
                    "target": _common_target([t for r in rows if (t := r[2][k]) is not None]),
                    "parameter": params[k],
                    "optional": len(evs) < 0.9 * max(1, n_kept),
                    "mean_duration_seconds": round(sum(ds) / len(ds), 3) if ds else None,
                }
            )
        instances = [
            _instance(kept[i], rows[i]) for i in range(max(0, n_kept - cfg.candidate_instances), n_kept)
        ]
        mean_duration = v.duration_ms / 1000 / v.count if v.count else 0.0
        regularity = v.fitness_milli / 1000 / v.count if v.count else 0.0
        deviating = 1.0 - (v.exact / v.count if v.count else 0.0)
        sc = score(
            Evidence(
                occurrences=v.count,
                active_days=max(1, v.n_days),
                mean_duration_seconds=mean_duration,
                n_steps=n_steps,
                parameters=params,
                regularity=regularity,
                deviating_share=deviating,
            ),
            cfg.scoring,
        )
        now = utc(state.released_ts if state.released_ts > NO_TIME_LO else v.last_seen)
        cand = Candidate.model_validate(
            {
                "candidate_id": v.vid,
                "version": version if version is not None else max(1, v.version),
                "user_id": state.user_id,
                "routine": list(v.steps),
                "steps": steps,
                "occurrences": v.count,
                "instances": instances,
                "score": sc.score,
                "breakdown": sc.breakdown,
                "mean_duration_seconds": round(max(0.0, mean_duration), 3),
                "observed_hours_per_year": sc.observed_hours_per_year,
                "estimated_hours_saved_per_year": sc.estimated_hours_saved_per_year,
                "rank": self._rank(state, v, sc.score),
                "priority": sc.priority,
                "first_seen": utc(v.first_seen),
                "last_seen": utc(v.last_seen),
                "updated_at": now,
            }
        )
        others = [o.steps for o in state.variants.values() if o.vid != v.vid and o.count >= cfg.min_support]
        text = describe(cand.steps, cand.instances, others)
        return cand.model_copy(update={"name": text.name, "variant_note": text.variant_note, "sop": text.sop})

    def _rank(self, state: UserState, v: Variant, value: float) -> int:
        return 1 + sum(
            1
            for o in state.variants.values()
            if o.vid != v.vid and o.count >= self.config.min_support and o.last_score > value
        )

    def result(self, state: UserState) -> DiscoveryResult:
        cfg = self.config
        confirmed = [v for v in state.variants.values() if v.count >= cfg.min_support]
        built = {}
        for v in confirmed:
            cand = self.build(state, v)
            v.last_score = cand.score
            built[v.vid] = cand
        routines = []
        for fam, members in enumerate(families(confirmed, cfg.family_similarity, cfg.family_containment)):
            for v in members:
                steps = [
                    [s.events[i].event_id if i is not None else None for i in s.aligned]
                    for s in v.instances
                    if s.events and any(i is not None for i in s.aligned)
                ]
                routines.append(
                    DiscoveredRoutine(
                        candidate=built[v.vid].model_copy(
                            update={"rank": self._rank(state, v, v.last_score)}
                        ),
                        occurrences=[[e for e in occ if e is not None] for occ in steps],
                        step_occurrences=steps,
                        family=fam,
                        coverage=v.count * len(v.steps),
                    )
                )
        return DiscoveryResult(
            routines=routines,
            starts=list(state.starts),
            events=state.events,
            duplicates=state.duplicates,
            late=state.late,
            noise_events=state.noise_events,
            segments=state.segments,
        )
