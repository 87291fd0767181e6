"""Grouping closed segments into routine variants (the old miner's grouping, bounded).

A closed segment's key is its sequence of frequent labels. Exact key of a known variant: that variant.
Else the most similar variant by LCS similarity >= `absorb_similarity`: a noisy instance (extra actions are
noise, missing ones optional). Else it waits in a bounded pending pool, where `min_support` mutually similar
segments found a new variant (their medoid without the steps most lack). A sequence absorbed into a
variant often enough becomes its own variant (a real alternative path), and a variant whose instances split
cleanly on the presence of a group of actions (the SR form's optional check box and its field) is split.
Sequences with the same steps in another order are not split off: the same routine to a person and to the
generator. Each kept instance is aligned to its variant's steps (LCS), so interleaved noise never enters.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, deque
from collections.abc import Sequence

from rote.discovery.align import lcs_align, similarity, similarity_upper_bound
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import NO_TIME_HI, NO_TIME_LO, US, Ev, Segment, UserState, Variant

DAY_US = 86400 * US


class VariantMiner:
    def __init__(self, config: DiscoveryConfig) -> None:
        self.config = config

    # ------------------------------------------------------------------------------------ assign

    def frequent(self, state: UserState, label: str) -> bool:
        return state.label_counts.get(label, 0.0) >= self.config.min_support

    def assign(self, state: UserState, events: list[Ev], touched: set[str]) -> None:
        cfg = self.config
        counts = state.label_counts
        ms = cfg.min_support
        key = tuple(e.label for e in events if counts.get(e.label, 0.0) >= ms)
        if len(key) < cfg.min_length:
            state.noise_events += len(events)
            return
        state.segments += 1
        seg = Segment(events=events, key=key)
        vid = state.key_index.get(key)
        if vid is not None and vid in state.variants:
            self.add(state, state.variants[vid], seg, touched)
            return
        best, best_sim = self.nearest(state, key)
        if best is not None and best_sim >= cfg.absorb_similarity:
            self.add(state, best, seg, touched)
            self.maybe_promote(state, best, key, touched)
            return
        self.pend(state, seg, touched)

    def nearest(self, state: UserState, key: Sequence[str]) -> tuple[Variant | None, float]:
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

    def add(self, state: UserState | None, v: Variant, seg: Segment, touched: set[str]) -> None:
        cfg = self.config
        labels = [e.label for e in seg.events]
        if seg.key == tuple(v.steps) and len(labels) == len(v.steps):
            seg.aligned = list(range(len(labels)))
        else:
            seg.aligned = lcs_align(v.steps, labels)
        present = [i for i in seg.aligned if i is not None]
        v.count += 1
        v.exact += seg.key == tuple(v.steps)
        v.fitness_sum += len(present) / max(1, len(v.steps))
        if present:
            first, last = seg.events[present[0]], seg.events[present[-1]]
            v.duration_sum += (last.ts - first.ts) / US + (last.duration or 0.0)
            v.first_seen = min(v.first_seen, first.ts)
            v.last_seen = max(v.last_seen, last.ts)
            if len(v.days) < 400:
                v.days.add(first.ts // DAY_US)
        if state is not None and len(present) < len(seg.events):
            # keep only what the instance is made of: the events aligned to the steps
            seg.events = [seg.events[i] for i in present]
            j = iter(range(len(present)))
            seg.aligned = [None if i is None else next(j) for i in seg.aligned]
        v.key_counts[seg.key] += 1
        if len(v.key_counts) > 12:
            for k, _ in v.key_counts.most_common()[8:]:
                del v.key_counts[k]
        v.instances.append(seg)
        keep = state.keep_instances if state is not None else cfg.keep_instances
        while len(v.instances) > keep:
            v.instances.popleft()
        touched.add(v.vid)
        if state is None:
            return
        self._budget(state, v)
        if v.count >= 2 * cfg.min_support and v.count >= 2 * v.split_checked_at:
            v.split_checked_at = v.count
            self.maybe_split(state, v, touched)

    def _budget(self, state: UserState, current: Variant) -> None:
        """Keep at most `max_kept_instances` over all variants: the least supported give theirs up first."""
        cap = self.config.max_kept_instances if state.keep_instances <= self.config.keep_instances else None
        if cap is None:
            return
        total = sum(len(v.instances) for v in state.variants.values())
        if total <= cap:
            return
        for v in sorted(state.variants.values(), key=lambda x: (x.count, x.vid)):
            if v is current:
                continue
            while len(v.instances) > 1 and total > cap:
                v.instances.popleft()
                total -= 1
            if total <= cap:
                return

    def new_variant(self, state: UserState, steps: list[str], created: int) -> Variant:
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
        n = v.key_counts[key]
        if n < cfg.min_support or key in state.key_index or len(key) < cfg.min_length:
            return
        if n < cfg.promote_min and n < cfg.promote_share * v.count:
            return
        if Counter(key) == Counter(v.steps):
            return  # same steps in another order: the same routine
        movers = [s for s in v.instances if s.key == key]
        if len(movers) < min(cfg.min_support, state.keep_instances):
            return
        nv = self.new_variant(state, list(key), movers[0].events[0].ts)
        self._move(state, v, nv, movers, touched, moved_total=n)

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
        self._recount(src, kept, gone)
        for s in segs:
            self.add(state, dst, s, touched)
        if moved_total is not None and moved_total > len(segs):
            dst.count += moved_total - len(segs)  # instances the bounded store no longer holds
        touched.add(src.vid)

    def _recount(self, v: Variant, kept: list[Segment], gone: int) -> None:
        """Rebuild a variant's tallies from its kept instances after `gone` occurrences moved away."""
        before = v.count
        scale_base = len(kept)
        v.instances = deque()
        v.count = v.exact = 0
        v.fitness_sum = v.duration_sum = 0.0
        v.key_counts = Counter()
        v.first_seen, v.last_seen = NO_TIME_HI, NO_TIME_LO
        checked = v.split_checked_at
        for s in kept:
            self.add(None, v, s, set())
        v.split_checked_at = checked
        remaining = max(len(kept), before - gone)
        if scale_base and remaining > scale_base:
            scale = remaining / scale_base
            v.count = remaining
            v.exact = round(v.exact * scale)
            v.fitness_sum *= scale
            v.duration_sum *= scale

    def pend(self, state: UserState, seg: Segment, touched: set[str]) -> None:
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
        steps = self.consensus(members)
        if len(steps) < cfg.min_length:
            return
        existing = state.key_index.get(tuple(steps))
        v = (
            state.variants[existing]
            if existing is not None and existing in state.variants
            else self.new_variant(state, steps, members[0].events[0].ts)
        )
        ids = {id(m) for m in members}
        state.pending = deque(p for p in state.pending if id(p) not in ids)
        for m in members:
            self.add(state, v, m, touched)

    @staticmethod
    def consensus(members: Sequence[Segment]) -> list[str]:
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

    def maybe_split(self, state: UserState, v: Variant, touched: set[str]) -> None:
        """Split a variant whose instances fall into two clear groups by the presence of some actions."""
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
        new_steps = self.consensus(minority)
        old_steps = self.consensus(majority)
        if len(new_steps) < cfg.min_length or Counter(new_steps) == Counter(old_steps):
            return
        share = len(minority) / n
        if tuple(old_steps) != tuple(v.steps):
            for k in [k for k, x in state.key_index.items() if x == v.vid]:
                del state.key_index[k]
            v.steps = old_steps
            state.key_index.setdefault(tuple(old_steps), v.vid)
        nv = self.new_variant(state, new_steps, minority[0].events[0].ts)
        nv.from_split = True
        v.from_split = True
        self._move(state, v, nv, minority, touched, moved_total=max(len(minority), round(share * v.count)))
        # the majority's alignment follows the (possibly new) steps
        for kept in v.instances:
            kept.aligned = lcs_align(v.steps, [e.label for e in kept.events])
