"""Streaming routine discovery: one user's action stream in, routine candidates out.

Per user, incremental and bounded (docs/discovery.md has the method and the results):

1. **Ingest**: de-duplicate by event id (`dedupe.py`), hold events for `lateness_seconds` so out-of-order
   arrivals are put back in time order, drop (and count) events later than that.
2. **Abstract** each action to a label (`abstraction.py`) and count the stream's transitions (decayed).
3. **Thread** (`threads.py`): people interleave routines, so each event is routed to the open *thread*
   (the work in progress it continues). Labels that keep opening threads are where routines start.
4. **Segment** each thread: cut before every routine start (estimated over the threads' label sequences as
   in Leno et al. ICPM 2020, plus the interruption starts of step 3, and revised at each refit:
   `refit.py`), close on idle gaps.
5. **Group** closed segments into variants (`variants.py`) and **emit** candidates (`candidates.py`).

Cost: the per-action path is a few dictionary operations and never grows with the history; everything
heavier (grouping a closed segment, re-estimating starts, building a candidate) happens once per segment,
per `refit_every` events or per emitted version. The state is measured against its byte budget every
`budget_check_bytes` of payload taken in and trimmed (`budget.py`) when it nears it.

The state (`UserState`) is plain data encoded with `to_state`/`from_state`, so a restarted worker resumes
exactly: events it had seen are ignored and candidates already emitted are not emitted again.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zlib import crc32

from rote.discovery.budget import check_budget
from rote.discovery.candidates import CandidateBuilder, DiscoveredRoutine, DiscoveryResult
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import NO_TIME_LO, US, Ev, Thread, UserState, key_hash, target_values
from rote.discovery.refit import StartKeeper
from rote.discovery.threads import Threader
from rote.discovery.variants import VariantMiner
from rote.streams.schemas import Candidate

__all__ = [
    "DiscoveredRoutine",
    "DiscoveryConfig",
    "DiscoveryResult",
    "RoutineDiscoverer",
    "UserState",
    "discover",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
#: Ids remembered of the events processed at exactly the newest processed time (ties).
_MAX_TIES = 64


def ts_us(ts: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch, exactly (timedelta arithmetic, no floats)."""
    return (ts - _EPOCH) // _ONE_US


#: distinct targets and names `RoutineDiscoverer` shares between events, and their characters, before it
#: starts afresh; a longer one is not shared
_MAX_SHARED = 1 << 14
_MAX_SHARED_CHARS = 4 << 20
_MAX_SHARED_ITEM_CHARS = 1024


class RoutineDiscoverer:
    """Stateless logic over `UserState`: the Faust agent keeps one state per user in a table."""

    def __init__(self, config: DiscoveryConfig, *, emit: bool = True) -> None:
        """`emit=False`: learn without building candidates (the batch helper ranks them at the end)."""
        self.config = config
        self._emitting = emit
        self.miner = VariantMiner(config)
        self.builder = CandidateBuilder(config)
        self.threads = Threader(config, self.miner)
        self.starts = StartKeeper(config, self.miner)
        self._label = config.abstraction.labeler()
        self._lateness_us = int(config.lateness_seconds * US)
        self._gap_us = int(config.max_gap_seconds * US)
        self._max_value = config.max_value_chars
        self._max_held = config.max_held
        #: one shared copy of each target, application and action type seen lately: a decoded action brings
        #: its own copies, and a user's kept events (the warm-up buffer, open segments, kept instances) held
        #: them all, most alike (the bundled log: 80 kB of live state per user at 50 actions, 27 kB shared).
        #: Bounded in entries and characters, cleared when full; a target with long texts is not shared (the
        #: state's budget cuts those, and a copy kept here would outlive the cut).
        self._shared: dict[Any, Any] = {}
        self._shared_chars = 0

    def _share(self, x: Any) -> Any:
        """`x`, remembered as the copy to share if it is small and there is room (see `_shared`)."""
        size = len(x) if type(x) is str else sum(len(v) for v in target_values(x) if type(v) is str)
        if size > _MAX_SHARED_ITEM_CHARS:
            return x
        if len(self._shared) >= _MAX_SHARED or self._shared_chars + size > _MAX_SHARED_CHARS:
            self._shared.clear()
            self._shared_chars = 0
        self._shared[x] = x
        self._shared_chars += size
        return x

    def new_state(self, user_id: str) -> UserState:
        return UserState(
            user_id, keep_instances=self.config.keep_instances, dedupe_window=self.config.dedupe_window
        )

    # ---------------------------------------------------------------------------------- ingest

    def learn_one(self, state: UserState, action: Any) -> list[Candidate]:
        """Take one action; return candidates that are new or whose version changed (to be emitted)."""
        return self._ingest(state, (action,), set())

    def learn_many(self, state: UserState, actions: Iterable[Any]) -> list[Candidate]:
        """A batch of one user's actions: the same final state as `learn_one` in a loop; each changed
        candidate is emitted once, at its latest version."""
        touched: set[str] = set()
        emitted = self._ingest(state, actions, touched)
        if len(emitted) > 1:
            latest = {c.candidate_id: c for c in emitted}  # a variant emitted twice in one batch: its last
            emitted = list(latest.values())
        return emitted

    def _ingest(self, state: UserState, actions: Iterable[Any], touched: set[str]) -> list[Candidate]:
        """De-duplicate, abstract and hold each action for the lateness allowance; process the events it
        releases in time order. One loop over the batch with what it reads hoisted out of it: this is the
        per-action path of every user.

        Emission is decided after each event that touched a variant, as `learn_one` would: decided once at
        the end of a batch, a variant that reached `emit_min_occurrences` in the batch and lost an instance
        to a split before its end went unpublished, so what was found depended on how a producer batched.
        """
        emitted: list[Candidate] = []
        emit = self._emit if self._emitting else None
        seen = state.seen
        ring, fps, window = seen.ring, seen.counts, seen.window
        held = state.held
        heap = state.heap
        label_of = self._label
        shared = self._shared
        max_value = self._max_value
        max_held = self._max_held
        lateness = self._lateness_us
        process = self._process
        push, pop = heapq.heappush, heapq.heappop
        for action in actions:
            eid = action.event_id
            ts = (action.timestamp - _EPOCH) // _ONE_US
            released = state.released_ts
            if ts <= released:
                if ts < released:
                    # older than anything still processable: a redelivery, or an event later than allowed
                    if eid in seen:
                        state.duplicates += 1
                    else:
                        state.late += 1
                    continue
                ties = state.tie_ids
                if eid in ties or eid in held or (len(ties) >= _MAX_TIES and eid in seen):
                    state.duplicates += 1
                    continue
            elif eid in held:
                state.duplicates += 1
                continue
            # remember the id (`SeenIds.add`, written out)
            fp = crc32(eid.encode("utf-8", "surrogatepass")) & 0xFFFF
            if len(ring) < window:
                ring.append(fp)
            else:
                pos = seen.pos
                old = ring[pos]
                c = fps[old] - 1
                if c:
                    fps[old] = c
                else:
                    del fps[old]
                ring[pos] = fp
                seen.pos = (pos + 1) % window
            fps[fp] = fps.get(fp, 0) + 1
            value = action.value
            if value is not None and len(value) > max_value:
                value = _clip_value(value, max_value)
            app = action.app
            atype = action.action_type
            target = action.target
            try:
                got = shared.get(target)
            except TypeError:  # an unhashable target (a caller's dict): not shared
                got = target
            target = self._share(target) if got is None else got
            got = shared.get(app)
            app = self._share(app) if got is None else got
            got = shared.get(atype)
            atype = self._share(atype) if got is None else got
            label = label_of(app, atype, target)
            # (the label twice: its key is also in the target the state keeps)
            state.payload += len(eid) + 2 * len(label) + (len(value) if value is not None else 0)
            ev = Ev(eid, ts, label, app, atype, value, target, action.duration_seconds)
            seq = state.seq = state.seq + 1
            max_ts = state.max_ts
            if ts > max_ts:
                max_ts = state.max_ts = ts
            horizon = max_ts - lateness
            if not heap and ts <= horizon:
                process(state, ev, touched)
                if touched and emit is not None:
                    emitted += emit(state, touched)
                    touched.clear()
                continue
            # held for the lateness allowance: an event arriving later but stamped earlier goes before it
            push(heap, (ts, seq, ev))
            held.add(eid)
            while heap and (heap[0][0] <= horizon or len(heap) > max_held):
                out = pop(heap)[2]
                held.discard(out.event_id)
                process(state, out, touched)
                if touched and emit is not None:
                    emitted += emit(state, touched)
                    touched.clear()
        return emitted

    def flush(self, state: UserState) -> list[Candidate]:
        """End of stream (or of a replay): process held events, close every open thread, and emit every
        candidate whose latest growth was held back."""
        touched: set[str] = set()
        while state.heap:
            ev = heapq.heappop(state.heap)[2]
            state.held.discard(ev.event_id)
            self._process(state, ev, touched)
        if state.warmup is not None:
            self._fit(state, touched)
        for th in list(state.threads):
            self.threads.close(state, th, touched)
        if self.config.state_budget_bytes > 0:
            check_budget(state, self.config, self.miner, force=True)
        touched.update(state.variants)
        return self._emit(state, touched, final=True)

    def drain_retracted(self, state: UserState) -> list[str]:
        """Candidate ids withdrawn since the last call (publish a tombstone for each)."""
        out, state.retracted = state.retracted, []
        return out

    # ---------------------------------------------------------------------------------- processing

    def _process(self, state: UserState, ev: Ev, touched: set[str]) -> None:
        """One event in time order: count it, route it to its thread, segment the thread.

        The common case is written out here (no helper calls): it runs for every action of every user.
        """
        cfg = self.config
        n = state.events = state.events + 1
        ts = ev.ts
        prev_ts = state.released_ts  # the user's previous event (time order)
        if ts > prev_ts:
            state.released_ts = ts
            state.tie_ids = [ev.event_id]
        elif len(state.tie_ids) < _MAX_TIES:
            state.tie_ids.append(ev.event_id)
        x = ev.label
        counts = state.label_counts
        c = counts.get(x)
        if c is None:
            counts[x] = 1
            state.label_chars += len(x)
            if len(counts) > cfg.max_labels or state.label_chars > cfg.max_label_chars:
                self.threads.prune_labels(state)
        else:
            counts[x] = c + 1
        state.total_count += 1
        threads = self.threads
        if state.warmup is not None:
            # routing waits for the end of the warm-up: the first instances are only recognised as such
            # once the transitions they make have been seen a few times
            threads.count(state, x)
            state.warmup.append(ev)
            if len(state.warmup) >= cfg.warmup_events:
                self._fit(state, touched)
            elif cfg.state_budget_bytes > 0 and state.payload >= state.check_at:
                state.check_at = state.payload + cfg.budget_check_bytes
                if check_budget(state, cfg, self.miner, warming=True):
                    self._fit(state, touched)  # a warm-up of long events ends early: its buffer is not shed
            return
        th = threads.route(state, ev, touched)
        # count the transitions into x (see `Threader.count`)
        prev = state.prev_label
        if prev is not None:
            d = state.succ.get(prev)
            if d is None:
                d = state.succ[prev] = {}
            c = d.get(x)
            if c is None:
                d[x] = 1
                state.n_pairs += 1
                if state.n_pairs > cfg.max_pairs:
                    threads.prune_pairs(state)
            else:
                d[x] = c + 1
            outs = state.outs
            outs[prev] = outs.get(prev, 0) + 1
            p2 = state.prev2_label
            if p2 is not None:
                k2 = (p2, prev)
                d2 = state.succ2.get(k2)
                if d2 is None:
                    d2 = state.succ2[k2] = {}
                c = d2.get(x)
                if c is None:
                    d2[x] = 1
                    state.n_triples += 1
                    if state.n_triples > cfg.max_triples:
                        threads.prune_triples(state)
                else:
                    d2[x] = c + 1
                outs2 = state.outs2
                outs2[k2] = outs2.get(k2, 0) + 1
        state.prev2_label = prev
        state.prev_label = x
        # segment the thread (see `_segment`)
        seg = th.open
        if seg and (ts - th.last_ts > self._gap_us or len(seg) >= cfg.max_segment_events):
            th.open = []
            self.miner.assign(state, seg, touched)
            seg = th.open
        if th.last_ts < prev_ts <= ts:
            ev.gap = (ts - prev_ts) // 1000 * 1000  # other work came between (see `Ev.gap`)
        th.last_ts = ts
        if x in state.start_set:
            if len(seg) >= cfg.min_length:
                th.open = [ev]  # (its gap is kept: a recut may join it to the segment before)
                self.miner.assign(state, seg, touched)
            else:
                seg.append(ev)
        elif seg:
            seg.append(ev)
        else:
            state.noise_events += 1
        since = state.since_refit = state.since_refit + 1
        if since >= cfg.refit_every:
            self.starts.refit(state, touched)
        since = state.since_decay = state.since_decay + 1
        if since >= cfg.decay_every:
            threads.decay(state)
        if n & 15 == 0:
            threads.close_idle(state, touched)
        if state.payload >= state.check_at and cfg.state_budget_bytes > 0:
            state.check_at = state.payload + cfg.budget_check_bytes
            check_budget(state, cfg, self.miner)

    def _segment(self, state: UserState, th: Thread, ev: Ev, touched: set[str], prev_ts: int) -> None:
        """Add an event to its thread's open segment: cut before a routine start, close on an idle gap or
        at `max_segment_events`; an event before any start is noise. `prev_ts`: the time of the user's
        previous event (`Ev.gap`)."""
        cfg = self.config
        seg = th.open
        if seg and (ev.ts - th.last_ts > self._gap_us or len(seg) >= cfg.max_segment_events):
            th.open = []
            self.miner.assign(state, seg, touched)
            seg = th.open
        if th.last_ts < prev_ts <= ev.ts:
            ev.gap = (ev.ts - prev_ts) // 1000 * 1000
        th.last_ts = ev.ts
        is_start = ev.label in state.start_set
        if is_start and len(seg) >= cfg.min_length:
            th.open = [ev]
            self.miner.assign(state, seg, touched)
        elif seg or is_start:
            seg.append(ev)
        else:
            state.noise_events += 1

    # ---------------------------------------------------------------------------------- starts

    def _fit(self, state: UserState, touched: set[str]) -> None:
        """End of warm-up: route the buffered events to threads (with the whole warm-up's transition
        counts), estimate starts on those threads, then segment each thread's events (threads that closed
        meanwhile are segmented and closed too, so no event is lost)."""
        buffered = state.warmup or []
        state.warmup = None
        events = state.events
        routed: list[tuple[int, Ev]] = []
        route = self.threads.route
        retired: list[tuple[int, list[str | None]]] = []
        # Threads idle in the warm-up are not closed while it is routed (a routine's thread is still
        # forming: the transitions that continue it are being counted); beyond `max_threads` the least
        # recently continued one is, as always.
        self.threads.sink = retired
        try:
            for k, ev in enumerate(buffered):
                state.events = events - len(buffered) + k + 1
                routed.append((route(state, ev, touched).tid, ev))
        finally:
            self.threads.sink = None
        state.events = events
        # the start estimator reads the warm-up thread by thread, in the order the threads began (the
        # stream's first routine anchors it), whether they closed meanwhile or are still open
        parts = sorted(
            [*retired, *((th.tid, th.hist) for th in state.threads if th.size >= self.config.min_length)],
            key=lambda p: p[0],
        )
        seq = [x for _, hist in parts for x in hist if x is not None]
        self.starts.set_starts(state, self.starts.estimate(state, seq, []))
        counts, ms = state.label_counts, self.config.min_support
        for _, hist in sorted(retired, key=lambda p: p[0]):
            state.history.extend(x if x is not None and counts.get(x, 0) >= ms else None for x in hist)
        over = len(state.history) - self.config.history_events
        for _ in range(max(0, over)):
            state.history.popleft()
        active = {th.tid: th for th in state.threads}
        closed: dict[int, Thread] = {}
        prev_ts = NO_TIME_LO
        for tid, ev in routed:
            th = active.get(tid)
            if th is None:
                th = closed.get(tid)
                if th is None:
                    th = Thread(tid=tid, first=ev.label, size=0, last=ev.label, last_n=0, last_ts=ev.ts)
                    closed[tid] = th
            self._segment(state, th, ev, touched, prev_ts)
            prev_ts = ev.ts
        for th in closed.values():
            if th.open:
                segment, th.open = th.open, []
                self.miner.assign(state, segment, touched)

    # ---------------------------------------------------------------------------------- candidates

    def _emit(self, state: UserState, touched: set[str], *, final: bool = False) -> list[Candidate]:
        """Candidates to publish: a variant's first version at `emit_min_occurrences`, then a new one when
        its steps changed or its occurrences grew by `emit_growth`, at most once per `emit_every_events`
        (`final`, at a flush: whenever so)."""
        if not touched or not self._emitting:
            return []
        cfg = self.config
        out: list[Candidate] = []
        for vid in sorted(touched):
            v = state.variants.get(vid)
            if v is None or v.count < cfg.emit_min_occurrences:
                continue
            steps_hash = key_hash(v.steps)
            if v.version:
                grown = v.count >= math.ceil(v.emitted_count * (1 + cfg.emit_growth))
                due = final or state.events - v.emitted_at >= cfg.emit_every_events
                if not ((grown or steps_hash != v.emitted_steps) and due):
                    continue
            if not self.builder.describable(v):
                continue  # its instances were given up for the byte budget: the next one kept describes it
            cand = self.builder.build(state, v, version=v.version + 1)
            v.last_score = cand.score
            v.version += 1
            v.emitted_count = v.count
            v.emitted_steps = steps_hash
            v.emitted_at = state.events
            out.append(cand)
        return out

    def build_candidate(self, state: UserState, vid: str) -> Candidate:
        return self.builder.build(state, state.variants[vid])

    def result(self, state: UserState) -> DiscoveryResult:
        """Ranked routines with their kept occurrences; does not change what will be emitted."""
        return self.builder.result(state)


def _clip_value(value: str, limit: int) -> str:
    """A prefix of a long value plus a digest of the whole: equal values stay equal, the state stays small."""
    digest = zlib.crc32(value.encode("utf-8", "surrogatepass"))
    return f"{value[:limit]}…#{digest:08x}"


def discover(
    actions: Iterable[Any],
    config: DiscoveryConfig | None = None,
    *,
    user_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DiscoveryResult:
    """Batch helper: replay `actions` through the streaming code and return the ranked routines.

    All occurrences are kept (the per-variant instance store, the pending segments' events and the byte
    budget are lifted here) so they can be scored.
    """
    base = config or DiscoveryConfig()
    cfg = replace(
        base,
        keep_instances=10**9,
        max_kept_events=10**12,
        state_budget_bytes=0,
        pending_with_events=base.max_pending,
    )
    disc = RoutineDiscoverer(cfg, emit=False)
    state: UserState | None = None
    batch: list[Any] = []
    for n, action in enumerate(actions, start=1):
        if state is None:
            state = disc.new_state(user_id or action.user_id)
        batch.append(action)
        if len(batch) >= 1000:
            disc.learn_many(state, batch)
            batch = []
            if progress is not None:
                progress(n)
    if state is None:
        state = disc.new_state(user_id or "user-1")
    disc.learn_many(state, batch)
    disc.flush(state)
    return disc.result(state)
