"""Streaming routine discovery: one user's action stream in, routine candidates out.

The pipeline per user, all incremental and bounded:

1. **Ingest**: de-duplicate by event id (a bounded LRU), hold events for `lateness_seconds` in a small heap
   so out-of-order arrivals are put back in time order, drop (and count) events later than that.
2. **Abstract** each action to a label (`abstraction.py`).
3. **Segment**: the first `warmup_events` are buffered until the routine starts can be estimated
   (`segmentation.py`); from then on a segment is cut before every start action, and closed on an idle gap
   or when it grows past `max_segment_events`. Starts are re-estimated every `refit_every` events over the
   last `history_events` labels, so routines that appear later are picked up.
4. **Group** each closed segment into a routine *variant*: by its exact label sequence when that sequence is
   already known, else to the most similar known variant (LCS similarity >= `absorb_similarity`; extra
   actions are noise, missing ones optional), else into a pending pool where `min_support` mutually similar
   segments found a new variant (their medoid, minus steps most members lack). A sequence absorbed into a
   variant often enough becomes a variant of its own (a real alternative path, not noise), and a variant
   whose instances split cleanly on the presence of an action (the SR form's optional check box) is split.
   Variants whose steps are the same multiset (same steps, another order) are not split off: they are the
   same routine to a person and to the generator.
5. **Candidates**: each variant with `min_support` occurrences is a candidate, re-emitted with a higher
   version when its evidence grows by `emit_growth` or its steps change -- not on every occurrence, so
   the compacted topic is not flooded.

State lives in `UserState`, a plain picklable object (the Faust table value), so a restarted worker resumes
where it stopped: events it had seen are ignored and candidates already emitted are not emitted again.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import sys
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rote.discovery.abstraction import ActionAbstraction
from rote.discovery.align import lcs_align, similarity, similarity_upper_bound
from rote.discovery.parameters import analyse
from rote.discovery.scoring import Evidence, ScoreConfig, score
from rote.discovery.segmentation import estimate_starts
from rote.streams.schemas import Candidate, RoutineInstance, RoutineStep, Target, UserAction

# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    """Discovery settings. Defaults suit one person's desktop stream; see docs/discovery.md."""

    abstraction: ActionAbstraction = field(default_factory=ActionAbstraction)
    #: Occurrences before a routine (and an action, and a transition) counts as repeated.
    min_support: int = 3
    #: Shortest routine worth reporting, in actions.
    min_length: int = 3
    #: Events buffered before the first estimate of where routines start.
    warmup_events: int = 500
    #: Re-estimate routine starts every this many events ...
    refit_every: int = 2000
    #: ... over this many recent labels (also the window of the action frequencies).
    history_events: int = 5000
    #: A segment longer than this is closed (someone stopped doing routines).
    max_segment_events: int = 300
    #: An idle gap longer than this closes the open segment.
    max_gap_seconds: float = 1800.0
    #: Out-of-order tolerance: events are held this long (event time) before being processed.
    lateness_seconds: float = 5.0
    #: Event ids remembered for de-duplication.
    dedupe_window: int = 20000
    #: LCS similarity at which a segment counts as a noisy instance of a known variant.
    absorb_similarity: float = 0.8
    #: LCS similarity at which pending segments group into a new variant.
    cluster_similarity: float = 0.8
    #: A sequence absorbed into a variant becomes its own variant at this share of the variant's instances
    #: (or `promote_min` occurrences, whichever comes first).
    promote_share: float = 0.15
    promote_min: int = 10
    #: A variant is split on an action present in between this share and 1 - this share of its instances.
    split_share: float = 0.15
    #: Instances kept per variant (for parameters, splits and the candidate's `instances`).
    keep_instances: int = 20
    #: Instances put into each emitted candidate.
    candidate_instances: int = 10
    #: Segments waiting to form a new variant.
    max_pending: int = 200
    #: Variants kept per user; the least recently seen are evicted beyond this.
    max_variants: int = 200
    #: Variants not seen for this long (event time) are evicted at the next refit.
    variant_ttl_seconds: float = 60 * 86400.0
    #: Re-emit a candidate when its occurrences grew by this share since the last emission (or its steps
    #: changed); not on every occurrence, so the candidates topic is not flooded.
    emit_growth: float = 0.1
    #: Most recent instances used for steps, parameters and durations of a candidate.
    stats_instances: int = 20
    scoring: ScoreConfig = field(default_factory=ScoreConfig)


# --------------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Ev:
    """The part of an action discovery keeps: small, so thousands of users' state fits in memory."""

    event_id: str
    ts: float
    label: str
    app: str
    action_type: str
    value: str | None
    target: dict[str, Any]
    duration: float | None


@dataclass(slots=True)
class Segment:
    events: list[Ev]
    key: tuple[str, ...]
    aligned: list[int | None] = field(default_factory=list)


@dataclass
class Variant:
    vid: str
    steps: list[str]
    created: float
    count: int = 0
    exact: int = 0
    fitness_sum: float = 0.0
    duration_sum: float = 0.0
    first_seen: float = math.inf
    last_seen: float = -math.inf
    days: set[int] = field(default_factory=set)
    instances: deque[Segment] = field(default_factory=deque)
    key_counts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    split_checked_at: int = 0
    from_split: bool = False
    version: int = 0
    emitted_count: int = 0
    emitted_score: float = -1.0
    emitted_steps: tuple[str, ...] = ()
    last_score: float = 0.0

    @property
    def confirmed(self) -> bool:
        return True


class UserState:
    """One user's (or team's) discovery state. Plain data: pickles, and every part of it is bounded."""

    def __init__(self, user_id: str, *, keep_instances: int = 20) -> None:
        self.user_id = user_id
        self.keep_instances = keep_instances
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.heap: list[tuple[float, int, Ev]] = []
        self.seq = 0
        self.max_ts = -math.inf
        self.released_ts = -math.inf
        self.history: deque[str] = deque()
        self.label_counts: Counter[str] = Counter()
        self.since_refit = 0
        self.starts: list[str] = []
        self.warmup: list[Ev] | None = []
        self.open: list[Ev] = []
        self.variants: dict[str, Variant] = {}
        self.key_index: dict[tuple[str, ...], str] = {}
        self.pending: deque[Segment] = deque()
        self.events = 0
        self.duplicates = 0
        self.late = 0
        self.noise_events = 0
        self.segments = 0
        self.retracted: list[str] = []

    def memory_estimate(self) -> int:
        """Bytes of the pickled state: what a Faust table changelog stores for this user."""
        import pickle

        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DiscoveredRoutine:
    candidate: Candidate
    #: every kept occurrence: event ids of the events aligned to the routine's steps (missing steps left out)
    occurrences: list[list[str]]
    #: the same occurrences step by step (None where the step was missing)
    step_occurrences: list[list[str | None]]


@dataclass(frozen=True, kw_only=True)
class DiscoveryResult:
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


# --------------------------------------------------------------------------------------------------
# the discoverer
# --------------------------------------------------------------------------------------------------


def _utc(ts: float) -> datetime:
    try:
        return datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        # Float seconds lose the microseconds near the calendar's ends: a valid event at
        # 9999-12-31T23:59:59.999999Z comes back as year 10000. Clamp to the edge it came from.
        return (datetime.max if ts > 0 else datetime.min).replace(tzinfo=UTC)


def _common_target(targets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not targets:
        return {}
    first = targets[0]
    return {k: v for k, v in first.items() if all(t.get(k) == v for t in targets[1:])}


class RoutineDiscoverer:
    """Stateless logic over `UserState`: the Faust agent keeps one state per user in a table."""

    def __init__(self, config: DiscoveryConfig) -> None:
        self.config = config

    def new_state(self, user_id: str) -> UserState:
        return UserState(user_id, keep_instances=self.config.keep_instances)

    # ---------------------------------------------------------------------------------- ingest

    def learn_one(self, state: UserState, action: UserAction) -> list[Candidate]:
        """Take one action; return candidates that are new or whose version changed (to be emitted)."""
        cfg = self.config
        if action.event_id in state.seen:
            state.duplicates += 1
            state.seen.move_to_end(action.event_id)
            return []
        state.seen[action.event_id] = None
        if len(state.seen) > cfg.dedupe_window:
            state.seen.popitem(last=False)
        ts = action.timestamp.timestamp()
        if ts < state.released_ts:
            state.late += 1  # later than the lateness allowance: its segment is already closed
            return []
        ev = Ev(
            event_id=action.event_id,
            ts=ts,
            label=sys.intern(cfg.abstraction.label(action)),  # shared, so pickles once per user
            app=sys.intern(action.app),
            action_type=sys.intern(action.action_type),
            value=action.value,
            target={
                k: sys.intern(v) if isinstance(v, str) and len(v) < 512 else v
                for k, v in action.target.model_dump(exclude_none=True).items()
            },
            duration=action.duration_seconds,
        )
        state.seq += 1
        heapq.heappush(state.heap, (ts, state.seq, ev))
        state.max_ts = max(state.max_ts, ts)
        touched: set[str] = set()
        while state.heap and state.heap[0][0] <= state.max_ts - cfg.lateness_seconds:
            _, _, ready = heapq.heappop(state.heap)
            self._process(state, ready, touched)
        return self._emit(state, touched)

    def flush(self, state: UserState) -> list[Candidate]:
        """End of stream (or of a replay): process held events and close the open segment."""
        touched: set[str] = set()
        while state.heap:
            _, _, ready = heapq.heappop(state.heap)
            self._process(state, ready, touched)
        if state.warmup is not None:
            self._fit(state, final=True, touched=touched)
        if state.open:
            self._close(state, touched)
        return self._emit(state, touched)

    # ---------------------------------------------------------------------------------- processing

    def _process(self, state: UserState, ev: Ev, touched: set[str]) -> None:
        cfg = self.config
        state.events += 1
        state.released_ts = max(state.released_ts, ev.ts)
        state.history.append(ev.label)
        state.label_counts[ev.label] += 1
        if len(state.history) > cfg.history_events:
            old = state.history.popleft()
            state.label_counts[old] -= 1
            if state.label_counts[old] <= 0:
                del state.label_counts[old]
        if state.warmup is not None:
            state.warmup.append(ev)
            if len(state.warmup) >= cfg.warmup_events:
                self._fit(state, final=False, touched=touched)
            return
        self._segment(state, ev, touched)
        state.since_refit += 1
        if state.since_refit >= cfg.refit_every:
            self._refit(state, touched)

    def _fit(self, state: UserState, *, final: bool, touched: set[str]) -> None:
        cfg = self.config
        buffered = state.warmup or []
        state.warmup = None
        state.starts = estimate_starts(
            [e.label for e in buffered], min_support=cfg.min_support, min_length=cfg.min_length
        )
        for ev in buffered:
            self._segment(state, ev, touched)

    def _refit(self, state: UserState, touched: set[str]) -> None:
        cfg = self.config
        state.since_refit = 0
        before = set(state.starts)
        state.starts = estimate_starts(
            list(state.history), known=state.starts, min_support=cfg.min_support, min_length=cfg.min_length
        )
        if set(state.starts) - before:
            self._recut(state, set(state.starts) - before, touched)
        horizon = state.released_ts - cfg.variant_ttl_seconds
        for vid in [v.vid for v in state.variants.values() if v.last_seen < horizon]:
            self._drop_variant(state, vid)

    def _recut(self, state: UserState, new_starts: set[str], touched: set[str]) -> None:
        """A routine start learnt late: re-cut what was grouped before it was known.

        Until a second routine's start is known its instances are glued onto the first routine's segments;
        those land in the pending pool or in variants that contain the new start mid-way. Such variants
        are dissolved (their ids reported in `state.retracted`) and all these segments are cut again.
        """
        segs = list(state.pending)
        state.pending = deque()
        for v in list(state.variants.values()):
            if any(label in new_starts for label in v.steps[1:]):
                segs.extend(v.instances)
                if v.version > 0:
                    state.retracted.append(v.vid)
                self._drop_variant(state, v.vid)
                touched.discard(v.vid)
        del state.retracted[: -self.config.max_variants]
        segs.sort(key=lambda sg: sg.events[0].ts)
        for sg in segs:
            piece: list[Ev] = []
            for ev in sg.events:
                if ev.label in state.starts and len(piece) >= self.config.min_length:
                    self._assign(state, piece, touched)
                    piece = []
                piece.append(ev)
            if piece:
                self._assign(state, piece, touched)

    def drain_retracted(self, state: UserState) -> list[str]:
        """Candidate ids withdrawn since the last call (publish a tombstone for each)."""
        out, state.retracted = state.retracted, []
        return out

    def _segment(self, state: UserState, ev: Ev, touched: set[str]) -> None:
        cfg = self.config
        if state.open and (
            ev.ts - state.open[-1].ts > cfg.max_gap_seconds or len(state.open) >= cfg.max_segment_events
        ):
            self._close(state, touched)
        is_start = ev.label in state.starts
        if is_start and len(state.open) >= cfg.min_length:
            self._close(state, touched)
            state.open = [ev]
        elif state.open or is_start:
            state.open.append(ev)
        else:
            state.noise_events += 1

    # ---------------------------------------------------------------------------------- grouping

    def _frequent(self, state: UserState, label: str) -> bool:
        return state.label_counts.get(label, 0) >= self.config.min_support

    def _close(self, state: UserState, touched: set[str]) -> None:
        events, state.open = state.open, []
        self._assign(state, events, touched)

    def _assign(self, state: UserState, events: list[Ev], touched: set[str]) -> None:
        key = tuple(e.label for e in events if self._frequent(state, e.label))
        if len(key) < self.config.min_length:
            state.noise_events += len(events)
            return
        state.segments += 1
        seg = Segment(events=events, key=key)
        vid = state.key_index.get(key)
        if vid is not None and vid in state.variants:
            self._add(state, state.variants[vid], seg, touched)
            return
        best, best_sim = self._nearest(state, key)
        if best is not None and best_sim >= self.config.absorb_similarity:
            self._add(state, best, seg, touched)
            self._maybe_promote(state, best, key, touched)
            return
        self._pend(state, seg, touched)

    def _nearest(self, state: UserState, key: Sequence[str]) -> tuple[Variant | None, float]:
        kc = Counter(key)
        best: Variant | None = None
        best_sim = -1.0
        for v in state.variants.values():
            if similarity_upper_bound(kc, len(key), Counter(v.steps), len(v.steps)) <= best_sim:
                continue
            sim = similarity(key, v.steps)
            if sim > best_sim or (sim == best_sim and best is not None and v.count > best.count):
                best, best_sim = v, sim
        return best, best_sim

    def _add(self, state: UserState | None, v: Variant, seg: Segment, touched: set[str]) -> None:
        labels = [e.label for e in seg.events]
        seg.aligned = lcs_align(v.steps, labels)
        present = [i for i in seg.aligned if i is not None]
        v.count += 1
        v.exact += seg.key == tuple(v.steps)
        v.fitness_sum += len(present) / max(1, len(v.steps))
        if present:
            start, end = seg.events[present[0]].ts, seg.events[present[-1]].ts
            last = seg.events[present[-1]].duration or 0.0
            v.duration_sum += end - start + last
            v.first_seen = min(v.first_seen, start)
            v.last_seen = max(v.last_seen, end)
            if len(v.days) < 400:
                v.days.add(int(start // 86400))
        v.key_counts[seg.key] += 1
        if len(v.key_counts) > 64:
            for k, _ in v.key_counts.most_common()[48:]:
                del v.key_counts[k]
        v.instances.append(seg)
        while len(v.instances) > self.config.keep_instances:
            v.instances.popleft()
        touched.add(v.vid)
        if state is not None and v.count >= 2 * self.config.min_support and v.count >= 2 * v.split_checked_at:
            v.split_checked_at = v.count
            self._maybe_split(state, v, touched)

    def _new_variant(self, state: UserState, steps: list[str], created: float) -> Variant:
        digest = hashlib.sha1(("\x1f".join([state.user_id, *steps])).encode()).hexdigest()[:16]
        vid = f"rt-{digest}"
        n = 1
        while vid in state.variants:
            n += 1
            vid = f"rt-{digest}-{n}"
        v = Variant(vid=vid, steps=list(steps), created=created)
        state.variants[vid] = v
        state.key_index[tuple(steps)] = vid
        if len(state.variants) > self.config.max_variants:
            oldest = min(state.variants.values(), key=lambda x: x.last_seen)
            self._drop_variant(state, oldest.vid)
        return v

    def _drop_variant(self, state: UserState, vid: str) -> None:
        state.variants.pop(vid, None)
        for k in [k for k, x in state.key_index.items() if x == vid]:
            del state.key_index[k]

    def _maybe_promote(self, state: UserState, v: Variant, key: tuple[str, ...], touched: set[str]) -> None:
        """A sequence absorbed often enough is a real alternative path: give it its own variant."""
        cfg = self.config
        n = v.key_counts[key]
        if n < cfg.min_support or key in state.key_index or len(key) < cfg.min_length:
            return
        if n < cfg.promote_min and n < cfg.promote_share * v.count:
            return
        if Counter(key) == Counter(v.steps):
            return  # same steps in another order: the same routine
        movers = [s for s in v.instances if s.key == key]
        if len(movers) < cfg.min_support:
            return
        nv = self._new_variant(state, list(key), movers[0].events[0].ts)
        self._move(state, v, nv, movers, touched)

    def _move(
        self, state: UserState, src: Variant, dst: Variant, segs: list[Segment], touched: set[str]
    ) -> None:
        ids = {id(s) for s in segs}
        src.instances = deque(s for s in src.instances if id(s) not in ids)
        self._recount(src)
        for s in segs:
            self._add(state, dst, s, touched)
        touched.add(src.vid)

    def _recount(self, v: Variant) -> None:
        """Rebuild a variant's tallies from its kept instances after some moved away."""
        kept = list(v.instances)
        v.instances = deque()
        moved = v.count - len(kept)
        v.count = v.exact = 0
        v.fitness_sum = v.duration_sum = 0.0
        v.key_counts = Counter()
        v.first_seen, v.last_seen = math.inf, -math.inf
        dummy: set[str] = set()
        checked = v.split_checked_at
        for s in kept:
            self._add_quiet(v, s, dummy)
        v.split_checked_at = checked
        # instances evicted from the bounded store before the move still count as evidence
        if moved > 0 and kept and len(kept) >= self.config.keep_instances:
            scale = (len(kept) + moved) / len(kept)
            v.count = round(v.count * scale)
            v.exact = round(v.exact * scale)
            v.fitness_sum *= scale
            v.duration_sum *= scale

    def _add_quiet(self, v: Variant, seg: Segment, touched: set[str]) -> None:
        saved = v.split_checked_at
        v.split_checked_at = 1 << 60  # no split checks while rebuilding
        self._add(None, v, seg, touched)
        v.split_checked_at = saved

    def _pend(self, state: UserState, seg: Segment, touched: set[str]) -> None:
        cfg = self.config
        state.pending.append(seg)
        while len(state.pending) > cfg.max_pending:
            state.pending.popleft()
        group = [
            p for p in state.pending if p is not seg and similarity(p.key, seg.key) >= cfg.cluster_similarity
        ]
        if len(group) + 1 < cfg.min_support:
            return
        members = [*group, seg]
        steps = self._consensus(members)
        if len(steps) < cfg.min_length:
            return
        existing = state.key_index.get(tuple(steps))
        v = (
            state.variants[existing]
            if existing in state.variants
            else self._new_variant(state, steps, members[0].events[0].ts)
        )
        ids = {id(m) for m in members}
        state.pending = deque(p for p in state.pending if id(p) not in ids)
        for m in members:
            self._add(state, v, m, touched)

    def _consensus(self, members: Sequence[Segment]) -> list[str]:
        """Medoid of the members' label sequences, without the steps that most members lack."""
        sample = list(members)
        if len(sample) > 15:
            sample = random.Random(len(sample)).sample(sample, 15)
        keys = [m.key for m in sample]
        medoid = max(keys, key=lambda k: (sum(similarity(k, o) for o in keys), -len(k)))
        hits = [0] * len(medoid)
        for k in keys:
            for i, j in enumerate(lcs_align(medoid, k)):
                hits[i] += j is not None
        return [label for label, h in zip(medoid, hits, strict=True) if h * 2 >= len(keys)]

    def _maybe_split(self, state: UserState, v: Variant, touched: set[str]) -> None:
        """Split a variant whose instances fall into two clear groups by the presence of some action."""
        cfg = self.config
        if v.from_split:
            return
        segs = list(v.instances)
        n = len(segs)
        if n < 2 * cfg.min_support:
            return
        sets = [set(s.key) for s in segs]
        presence: Counter[str] = Counter()
        for s in sets:
            presence.update(s)
        cands = [
            lab
            for lab, c in presence.items()
            if cfg.split_share * n <= c <= (1 - cfg.split_share) * n
            and c >= cfg.min_support
            and n - c >= cfg.min_support
        ]
        if not cands:
            return

        def coherence(lab: str) -> tuple[int, float]:
            inside = [s for s in sets if lab in s]
            outside = [s for s in sets if lab not in s]
            agree = 0
            for other in cands:
                a = sum(other in s for s in inside) / len(inside)
                b = sum(other in s for s in outside) / len(outside)
                agree += abs(a - b) >= 0.9
            return agree, -abs(len(inside) / n - 0.5)

        best = max(sorted(cands), key=coherence)
        if coherence(best)[0] < 2:
            return  # one action alone varying is an optional step, not a variant
        with_lab = [s for s, st in zip(segs, sets, strict=True) if best in st]
        without = [s for s, st in zip(segs, sets, strict=True) if best not in st]
        minority = with_lab if len(with_lab) < len(without) else without
        majority = without if minority is with_lab else with_lab
        new_steps = self._consensus(minority)
        old_steps = self._consensus(majority)
        if len(new_steps) < cfg.min_length or Counter(new_steps) == Counter(old_steps):
            return
        if tuple(old_steps) != tuple(v.steps):
            for k in [k for k, x in state.key_index.items() if x == v.vid]:
                del state.key_index[k]
            v.steps = old_steps
            state.key_index.setdefault(tuple(old_steps), v.vid)
            v.instances = deque()
            v.count = 0
            for seg in majority:
                self._add_quiet(v, seg, touched)
        nv = self._new_variant(state, new_steps, minority[0].events[0].ts)
        nv.from_split = True
        v.from_split = True
        self._move(state, v, nv, minority, touched)

    # ---------------------------------------------------------------------------------- candidates

    def _emit(self, state: UserState, touched: set[str]) -> list[Candidate]:
        cfg = self.config
        out: list[Candidate] = []
        for vid in sorted(touched):
            v = state.variants.get(vid)
            if v is None or v.count < cfg.min_support:
                continue
            grown = v.count >= math.ceil(v.emitted_count * (1 + cfg.emit_growth))
            changed = tuple(v.steps) != v.emitted_steps
            if v.version == 0 or grown or changed:
                cand = self.build_candidate(state, v, version=v.version + 1)
                v.last_score = cand.score
                v.version += 1
                v.emitted_count = v.count
                v.emitted_score = cand.score
                v.emitted_steps = tuple(v.steps)
                out.append(cand)
        return out

    def _rank(self, state: UserState, v: Variant, value: float) -> int:
        return 1 + sum(
            1
            for o in state.variants.values()
            if o.vid != v.vid and o.count >= self.config.min_support and o.last_score > value
        )

    def build_candidate(self, state: UserState, v: Variant, *, version: int | None = None) -> Candidate:
        cfg = self.config
        recent = (
            list(v.instances)[-cfg.stats_instances :]
            if len(v.instances) > cfg.stats_instances
            else v.instances
        )
        kept = [s for s in recent if any(i is not None for i in s.aligned)]
        n_steps = len(v.steps)
        values = [[s.events[i].value if i is not None else None for i in s.aligned] for s in kept]
        params = analyse(values)
        params += [None] * (n_steps - len(params))
        steps: list[RoutineStep] = []
        for k, label in enumerate(v.steps):
            evs = [s.events[s.aligned[k]] for s in kept if s.aligned[k] is not None]  # type: ignore[index]
            durations = [self._step_duration(s, k) for s in kept]
            ds = [d for d in durations if d is not None]
            app = Counter(e.app for e in evs).most_common(1)[0][0] if evs else ""
            atype = (
                Counter(e.action_type for e in evs).most_common(1)[0][0] if evs else label.split(":", 1)[0]
            )
            steps.append(
                RoutineStep(
                    label=label,
                    app=app,
                    action_type=atype,
                    target=Target(**_common_target([e.target for e in evs])),
                    parameter=params[k],
                    optional=len(evs) < 0.9 * max(1, len(kept)),
                    mean_duration_seconds=round(sum(ds) / len(ds), 3) if ds else None,
                )
            )
        instances = [self._instance(s) for s in kept[-cfg.candidate_instances :]]
        mean_duration = v.duration_sum / v.count if v.count else 0.0
        regularity = v.fitness_sum / v.count if v.count else 0.0
        deviating = 1.0 - (v.exact / v.count if v.count else 0.0)
        sc = score(
            Evidence(
                occurrences=v.count,
                active_days=max(1, len(v.days)),
                mean_duration_seconds=mean_duration,
                n_steps=n_steps,
                parameters=params,
                regularity=regularity,
                deviating_share=deviating,
            ),
            cfg.scoring,
        )
        now = _utc(state.released_ts if state.released_ts > -math.inf else v.last_seen)
        return Candidate(
            candidate_id=v.vid,
            version=version if version is not None else max(1, v.version),
            user_id=state.user_id,
            routine=list(v.steps),
            steps=steps,
            occurrences=v.count,
            instances=instances,
            score=sc.score,
            breakdown=sc.breakdown,
            mean_duration_seconds=round(max(0.0, mean_duration), 3),
            observed_hours_per_year=sc.observed_hours_per_year,
            estimated_hours_saved_per_year=sc.estimated_hours_saved_per_year,
            rank=self._rank(state, v, sc.score),
            priority=sc.priority,
            first_seen=_utc(v.first_seen),
            last_seen=_utc(v.last_seen),
            updated_at=now,
        )

    @staticmethod
    def _step_duration(seg: Segment, k: int) -> float | None:
        i = seg.aligned[k]
        if i is None:
            return None
        ev = seg.events[i]
        if ev.duration is not None:
            return ev.duration
        prev = [j for j in seg.aligned[:k] if j is not None]
        if not prev:
            return None
        return max(0.0, ev.ts - seg.events[prev[-1]].ts)

    def _instance(self, seg: Segment) -> RoutineInstance:
        present = [i for i in seg.aligned if i is not None]
        return RoutineInstance(
            event_ids=[seg.events[i].event_id if i is not None else None for i in seg.aligned],
            values=[seg.events[i].value if i is not None else None for i in seg.aligned],
            start=_utc(seg.events[present[0]].ts),
            end=_utc(seg.events[present[-1]].ts),
            step_durations_seconds=[
                round(d, 3) if (d := self._step_duration(seg, k)) is not None else None
                for k in range(len(seg.aligned))
            ],
            targets=[Target(**seg.events[i].target) if i is not None else None for i in seg.aligned],
        )

    # ---------------------------------------------------------------------------------- batch view

    def result(self, state: UserState) -> DiscoveryResult:
        """Ranked routines with all kept occurrences; does not change what will be emitted."""
        cfg = self.config
        confirmed = [v for v in state.variants.values() if v.count >= cfg.min_support]
        built = []
        for v in confirmed:
            cand = self.build_candidate(state, v)
            v.last_score = cand.score
            built.append((v, cand))
        built.sort(key=lambda t: (-t[1].score, -t[0].count, t[0].vid))
        routines = []
        for rank, (v, cand) in enumerate(built, start=1):
            steps = [
                [s.events[i].event_id if i is not None else None for i in s.aligned]
                for s in v.instances
                if any(i is not None for i in s.aligned)
            ]
            routines.append(
                DiscoveredRoutine(
                    candidate=cand.model_copy(update={"rank": rank}),
                    occurrences=[[e for e in occ if e is not None] for occ in steps],
                    step_occurrences=steps,
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


def discover(
    actions: Iterable[UserAction],
    config: DiscoveryConfig | None = None,
    *,
    user_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DiscoveryResult:
    """Batch helper: replay `actions` through the streaming code and return the ranked routines.

    All occurrences are kept (the per-variant instance store is unbounded here) so they can be scored.
    """
    base = config or DiscoveryConfig()
    from dataclasses import replace

    cfg = replace(base, keep_instances=10**9)
    disc = RoutineDiscoverer(cfg)
    state: UserState | None = None
    for n, action in enumerate(actions, start=1):
        if state is None:
            state = disc.new_state(user_id or action.user_id)
        disc.learn_one(state, action)
        if progress is not None and n % 1000 == 0:
            progress(n)
    if state is None:
        state = disc.new_state(user_id or "user-1")
    disc.flush(state)
    return disc.result(state)
