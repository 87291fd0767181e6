"""Grouping closed segments into routine variants (the old miner's grouping, bounded).

A closed segment's key is its sequence of frequent labels. Exact key of a known variant: that variant.
A key a variant absorbed before: that variant again. Else the most similar variant by LCS similarity >=
`absorb_other_similarity`, or by `absorb_similarity` if at most one action apart each way: a noisy instance
(extra actions are noise, missing ones optional). Else it waits in a
bounded pending pool, where `min_support` mutually similar segments found a new variant (their medoid
without the steps most lack). A sequence absorbed into a variant often enough becomes its own variant (a
real alternative path), and a variant whose instances split cleanly on the presence of a group of actions
(the SR form's optional check box and its field) is split. Sequences with the same steps in another order
are not split off: the same routine to a person and to the generator. Each kept instance is aligned to its
variant's steps (LCS), so interleaved noise never enters.

Cost: comparisons are bit-parallel LCS (`align.py`) with the segment prepared once against all variants,
after a length bound that already rules most out; alignments are computed only for occurrences kept as
instances (an exact key needs none).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, deque
from collections.abc import Sequence

from rote.discovery.align import Masks, lcs_align, lcs_length, similarity
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import (
    NO_TIME_HI,
    NO_TIME_LO,
    US,
    Ev,
    Segment,
    UserState,
    Variant,
    idle_within,
    key_hash,
)

DAY_US = 86400 * US
#: Absorbed label sequences counted per variant (the most common are kept when there are more).
_KEY_COUNTS = 8
_KEY_COUNTS_KEEP = 6


def _absorbs(key: Sequence[str], steps: Sequence[str], sim: float, cfg: DiscoveryConfig) -> bool:
    """Is `key` a noisy instance of the variant `steps` (LCS similarity `sim`)? At `absorb_other_similarity`
    whatever it adds or lacks (one other step of 15); at `absorb_similarity` only if it is at most one
    action apart each way (one extra, missing or other step: a short routine with one noise action).
    Two other steps of a long variant are another variant (Bosco log9's rare branches)."""
    if sim >= cfg.absorb_other_similarity:
        return True
    if sim < cfg.absorb_similarity:
        return False
    a, b = len(key), len(steps)
    common = round(sim * (a + b) / 2)
    return a - common <= 1 and b - common <= 1


class VariantMiner:
    def __init__(self, config: DiscoveryConfig) -> None:
        self.config = config

    # ------------------------------------------------------------------------------------ assign

    def frequent(self, state: UserState, label: str) -> bool:
        return state.label_counts.get(label, 0) >= self.config.min_support

    def assign(self, state: UserState, events: list[Ev], touched: set[str]) -> None:
        cfg = self.config
        counts = state.label_counts
        ms = cfg.min_support
        key = tuple([e.label for e in events if counts.get(e.label, 0) >= ms])
        if len(key) < cfg.min_length:
            state.noise_events += len(events)
            return
        state.segments += 1
        last = events[-1]
        seg = Segment(key, events, events[0].ts, last.ts, last.duration)
        vid = state.key_index.get(key)
        if vid is not None and vid in state.variants:
            self.add(state, state.variants[vid], seg, touched)
            return
        h = key_hash(key)
        for v in state.variants.values():
            if h in v.key_counts and len(v.steps) >= cfg.min_length:
                self.add(state, v, seg, touched, h=h)
                self.maybe_promote(state, v, key, touched)
                return
        best, best_sim = self.nearest(state, key)
        if best is not None and _absorbs(key, best.steps, best_sim, cfg):
            self.add(state, best, seg, touched, h=h)
            self.maybe_promote(state, best, key, touched)
            return
        self.pend(state, seg, touched)

    def nearest(self, state: UserState, key: Sequence[str]) -> tuple[Variant | None, float]:
        prepared = Masks(key)
        lk = len(key)
        best: Variant | None = None
        best_sim = -1.0
        for v in state.variants.values():
            ls = len(v.steps)
            if 2.0 * min(lk, ls) / ((lk + ls) or 1) < best_sim:
                continue  # even a full match of the shorter one would not beat the best
            sim = prepared.similarity(v.steps)
            if sim > best_sim or (sim == best_sim and best is not None and v.count > best.count):
                best, best_sim = v, sim
        return best, best_sim

    def add(
        self, state: UserState | None, v: Variant, seg: Segment, touched: set[str], *, h: int | None = None
    ) -> None:
        cfg = self.config
        steps = v.steps
        n_steps = len(steps)
        exact = seg.key == tuple(steps)
        events = seg.events
        idle = 0
        if events is None:
            # only the key and times are left: an occurrence to count, not an instance to keep
            present_n = n_steps if exact else lcs_length(steps, seg.key)
            first_ts, last_ts, last_dur, idle = seg.first_ts, seg.last_ts, seg.last_duration, seg.idle
        else:
            if exact and len(events) == n_steps:
                seg.aligned = list(range(n_steps))
            elif exact:
                stepset = set(steps)
                seg.aligned = [i for i, e in enumerate(events) if e.label in stepset]
                if len(seg.aligned) != n_steps:  # a label's frequency changed under us: align properly
                    seg.aligned = lcs_align(steps, [e.label for e in events])
            else:
                seg.aligned = lcs_align(steps, [e.label for e in events])
            present = [i for i in seg.aligned if i is not None]
            present_n = len(present)
            if present:
                first, last = events[present[0]], events[present[-1]]
                first_ts, last_ts, last_dur = first.ts, last.ts, last.duration
                # time within the instance spent on other work (interleaved routines, noise: `Ev.gap`):
                # an event of its thread that is not one of its steps counts as other work too
                idle = idle_within(events, present)
            if state is not None and present_n < len(events):
                # keep only what the instance is made of: the events aligned to the steps
                _trim(seg, present)
        v.count += 1
        v.exact += exact
        v.fitness_milli += round(1000 * present_n / max(1, n_steps))
        if present_n:
            v.duration_ms += (last_ts - first_ts - idle) // 1000 + round(1000 * (last_dur or 0.0))
            if first_ts < v.first_seen:
                v.first_seen = first_ts
            if last_ts > v.last_seen:
                v.last_seen = last_ts
            day = first_ts // DAY_US
            if day > v.last_day:
                v.last_day = day
                v.n_days += 1
        rk = v.recent_keys
        rk.append(seg.key)
        if len(rk) > cfg.split_keys:
            rk.popleft()
        kc = v.key_counts
        if h is None:
            h = key_hash(seg.key)
        kc[h] = kc.get(h, 0) + 1
        if len(kc) > _KEY_COUNTS:
            v.key_counts = dict(sorted(kc.items(), key=lambda kv: -kv[1])[:_KEY_COUNTS_KEEP])
        touched.add(v.vid)
        if seg.events is None:
            return
        v.instances.append(seg)
        keep = state.keep_instances if state is not None else cfg.keep_instances
        while len(v.instances) > keep:
            v.instances.popleft()
        if state is None:
            return
        self._budget(state, v)
        if v.count >= 2 * cfg.min_support and v.count >= 2 * v.split_checked_at:
            v.split_checked_at = v.count
            self.maybe_split(state, v, touched)

    def _budget(self, state: UserState, current: Variant) -> None:
        """Keep at most `max_kept_events` in instances over all variants: the least supported variants give
        theirs up first, the variant just added to last (and keeps two)."""
        cap = self.config.max_kept_events
        if cap >= len(state.variants) * state.keep_instances * self.config.max_segment_events:
            return  # cannot be exceeded (the batch helper keeps every instance)
        total = 0
        for v in state.variants.values():
            for s in v.instances:
                total += len(s.events or ())
        if total <= cap:
            return
        for v in sorted(state.variants.values(), key=lambda x: (x.count, x.vid)):
            if v is current:
                continue
            while v.instances and total > cap:
                total -= len(v.instances.popleft().events or ())
            if total <= cap:
                return
        # a long routine alone: its own oldest instances go, down to two (one to learn from, one to test)
        while len(current.instances) > 2 and total > cap:
            total -= len(current.instances.popleft().events or ())

    def new_variant(self, state: UserState, steps: list[str]) -> Variant:
        digest = hashlib.sha1(("\x1f".join([state.user_id, *steps])).encode("utf-8", "surrogatepass"))
        base = f"rt-{digest.hexdigest()[:16]}"
        vid = base
        n = 1
        while vid in state.variants:
            n += 1
            vid = f"{base}-{n}"
        v = Variant(vid=vid, steps=list(steps))
        state.variants[vid] = v
        state.key_index[tuple(steps)] = vid
        if len(state.variants) > self.config.max_variants:
            oldest = min(state.variants.values(), key=lambda x: (x.last_seen, x.count))
            if oldest is not v:
                self.drop_variant(state, oldest.vid)
        return v

    def drop_variant(self, state: UserState, vid: str) -> None:
        v = state.variants.pop(vid, None)
        if v is not None and v.version > 0:
            state.retracted.append(vid)
            del state.retracted[: -self.config.max_variants]
        for k in [k for k, x in state.key_index.items() if x == vid]:
            del state.key_index[k]

    # ------------------------------------------------------------------------------------ promote/split

    def maybe_promote(self, state: UserState, v: Variant, key: tuple[str, ...], touched: set[str]) -> None:
        """A sequence absorbed often enough is a real alternative path: give it its own variant."""
        cfg = self.config
        n = v.key_counts.get(key_hash(key), 0)
        if n < cfg.min_support or key in state.key_index or len(key) < cfg.min_length:
            return
        if n < cfg.promote_min and n < cfg.promote_share * v.count:
            return
        if Counter(key) == Counter(v.steps):
            return  # same steps in another order: the same routine
        movers = [s for s in v.instances if s.key == key]
        if len(movers) < min(cfg.min_support, state.keep_instances):
            return
        nv = self.new_variant(state, list(key))
        rest = [k for k in v.recent_keys if k != key]
        self._move(state, v, nv, movers, touched, moved_total=n)
        v.recent_keys = deque(rest)

    def _move(
        self,
        state: UserState,
        src: Variant,
        dst: Variant,
        segs: list[Segment],
        touched: set[str],
        *,
        moved_total: int | None = None,
    ) -> None:
        ids = {id(s) for s in segs}
        kept = [s for s in src.instances if id(s) not in ids]
        gone = moved_total if moved_total is not None else len(segs)
        seen, before = (src.first_seen, src.last_seen, src.n_days, src.last_day), src.count
        self._recount(src, kept, gone)
        for s in segs:
            self.add(state, dst, s, touched)
        if moved_total is not None and moved_total > len(segs):
            dst.count += moved_total - len(segs)  # instances the bounded store no longer holds
            _inherit_days(dst, seen, moved_total / before if before > 0 else 0.0)
        touched.add(src.vid)

    def _recount(self, v: Variant, kept: list[Segment], gone: int) -> None:
        """Rebuild a variant's tallies from its kept instances after `gone` occurrences moved away."""
        before = v.count
        seen = (v.first_seen, v.last_seen, v.n_days, v.last_day)
        scale_base = len(kept)
        v.instances = deque()
        v.count = v.exact = 0
        v.fitness_milli = v.duration_ms = 0
        v.key_counts = {}
        v.recent_keys = deque()
        v.first_seen, v.last_seen = NO_TIME_HI, NO_TIME_LO
        v.n_days, v.last_day = 0, NO_TIME_LO
        checked = v.split_checked_at
        for s in kept:
            self.add(None, v, s, set())
        v.split_checked_at = checked
        remaining = max(len(kept), before - gone)
        if scale_base and remaining > scale_base:
            scale = remaining / scale_base
            v.count = remaining
            v.exact = round(v.exact * scale)
            v.fitness_milli = round(v.fitness_milli * scale)
            v.duration_ms = round(v.duration_ms * scale)
            _inherit_days(v, seen, remaining / before if before > 0 else 0.0, first=True)

    def pend(self, state: UserState, seg: Segment, touched: set[str]) -> None:
        cfg = self.config
        pending = state.pending
        pending.append(seg)
        while len(pending) > cfg.max_pending:
            pending.popleft()
        keep = cfg.pending_with_events
        if len(pending) > keep:
            pending[-keep - 1].forget_events()  # the oldest ones only count, they are never kept instances
        prepared = Masks(seg.key)
        lk = len(seg.key)
        need = cfg.cluster_similarity
        group = [
            p
            for p in pending
            if p is not seg
            and 2.0 * min(lk, len(p.key)) / (lk + len(p.key)) >= need
            and prepared.similarity(p.key) >= need
        ]
        if len(group) + 1 < cfg.min_support:
            return
        members = [*group, seg]
        steps = self.consensus(members)
        if len(steps) < cfg.min_length:
            return
        existing = state.key_index.get(tuple(steps))
        v = (
            state.variants[existing]
            if existing is not None and existing in state.variants
            else self.new_variant(state, steps)
        )
        ids = {id(m) for m in members}
        state.pending = deque(p for p in pending if id(p) not in ids)
        for m in members:
            self.add(state, v, m, touched)

    @staticmethod
    def consensus(members: Sequence[Segment]) -> list[str]:
        """Medoid of the members' label sequences, without the steps that most members lack."""
        sample = list(members)
        if len(sample) > 15:
            sample = random.Random(len(sample)).sample(sample, 15)
        keys = [m.key for m in sample]
        prepared = [Masks(k) for k in keys]

        def total(i: int) -> float:
            return sum(prepared[i].similarity(o) for o in keys)

        mi = max(range(len(keys)), key=lambda i: (total(i), -len(keys[i])))
        medoid = keys[mi]
        hits = [0] * len(medoid)
        for k in keys:
            for i, j in enumerate(lcs_align(medoid, k)):
                hits[i] += j is not None
        return [label for label, h in zip(medoid, hits, strict=True) if h * 2 >= len(keys)]

    def maybe_split(self, state: UserState, v: Variant, touched: set[str]) -> None:
        """Split a variant whose occurrences fall into two clear groups by the presence of some actions.

        The evidence is the label sequences of the most recent occurrences (`recent_keys`); the kept
        instances of the smaller group move with it, and its share of the occurrences is moved as counts.
        """
        cfg = self.config
        if v.from_split:
            return
        keys = list(v.recent_keys)
        n = len(keys)
        if n < 2 * cfg.min_support:
            return
        sets = [set(k) for k in keys]
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
        with_lab = [k for k, st in zip(keys, sets, strict=True) if best in st]
        without = [k for k, st in zip(keys, sets, strict=True) if best not in st]
        minority_has = len(with_lab) < len(without)
        minority, majority = (with_lab, without) if minority_has else (without, with_lab)
        new_steps = _consensus_keys(minority)
        old_steps = _consensus_keys(majority)
        if len(new_steps) < cfg.min_length or Counter(new_steps) == Counter(old_steps):
            return
        share = len(minority) / n
        if tuple(old_steps) != tuple(v.steps):
            for k in [k for k, x in state.key_index.items() if x == v.vid]:
                del state.key_index[k]
            v.steps = old_steps
            state.key_index.setdefault(tuple(old_steps), v.vid)
        nv = self.new_variant(state, new_steps)
        nv.from_split = True
        v.from_split = True
        movers = [s for s in v.instances if (best in s.key) == minority_has]
        self._move(state, v, nv, movers, touched, moved_total=max(len(minority), round(share * v.count)))
        v.recent_keys = deque(majority)
        nv.recent_keys = deque(minority[-cfg.split_keys :])
        # the majority's alignment follows the (possibly new) steps; an instance keeps only aligned events
        for kept in v.instances:
            _realign(kept, v.steps)


def _consensus_keys(keys: Sequence[tuple[str, ...]]) -> list[str]:
    return VariantMiner.consensus([Segment(k, None, 0, 0) for k in keys])


def _realign(seg: Segment, steps: list[str]) -> None:
    events = seg.events or []
    seg.aligned = lcs_align(steps, [e.label for e in events])
    present = [i for i in seg.aligned if i is not None]
    if len(present) < len(events):
        _trim(seg, present)


def _trim(seg: Segment, present: list[int]) -> None:
    """Keep only the aligned events (`present`: their indices, in step order); the times follow them."""
    events = seg.events or []
    kept = [events[i] for i in present]
    j = iter(range(len(present)))
    seg.aligned = [None if i is None else next(j) for i in seg.aligned]
    seg.events = kept
    if kept:
        seg.first_ts, seg.last_ts, seg.last_duration = kept[0].ts, kept[-1].ts, kept[-1].duration


__all__ = ["VariantMiner", "similarity"]


def _inherit_days(v: Variant, seen: tuple[int, int, int, int], share: float, *, first: bool = False) -> None:
    """Days for occurrences counted but no longer held (a bounded store): `share` of the occurrences that
    had `seen` = (first seen, last seen, days, last day) are `v`'s. Counted from the held instances alone,
    11 occurrences looked like 11 on one day (24 s apart) and the hours saved per year were ten times too
    many; they were among those occurrences, so their days scale with them. `first`: `v` keeps the earlier
    occurrences (a variant rebuilt after some moved away), so it also keeps the first time they were seen;
    its last time is its newest held instance's (the store keeps the newest)."""
    first_seen, _last_seen, days, last_day = seen
    if days <= 0 or share <= 0.0:
        return
    v.n_days = max(v.n_days, min(v.count, round(days * min(1.0, share))))
    v.last_day = max(v.last_day, last_day)
    if first:
        v.first_seen = min(v.first_seen, first_seen)
