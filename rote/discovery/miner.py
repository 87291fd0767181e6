"""Streaming routine discovery: one user's action stream in, routine candidates out.

Per user, incremental and bounded (docs/discovery.md has the method and the results):

1. **Ingest**: de-duplicate by event id, hold events for `lateness_seconds` so out-of-order arrivals are
   put back in time order, drop (and count) events later than that.
2. **Abstract** each action to a label (`abstraction.py`) and count the stream's transitions (decayed).
3. **Thread**: people interleave routines, so each event is routed to the open *thread* (the work in
   progress it continues): the thread whose last action it most often follows in the stream, if that share
   is at least `continue_share`; otherwise it opens a thread of its own (an interruption, or new work). A
   shared action (the same "open the spreadsheet" in two routines) goes to the thread whose context it
   continues, so it is split by context without any label rewriting. Labels that keep opening threads are
   where routines start.
4. **Segment** each thread: cut before every routine start (estimated over the threads' label sequences as
   in Leno et al. ICPM 2020, plus the interruption starts of step 3), close on idle gaps.
5. **Group** closed segments into variants (`variants.py`) and **emit** candidates (`candidates.py`).

The state (`UserState`) is plain data encoded with `to_state`/`from_state`, so a restarted worker resumes
exactly: events it had seen are ignored and candidates already emitted are not emitted again.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from rote.discovery.candidates import CandidateBuilder, DiscoveredRoutine, DiscoveryResult
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import US, Ev, Thread, UserState
from rote.discovery.segmentation import estimate_starts
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


def _ts_us(ts: Any) -> int:
    """Aware datetime -> integer microseconds since the epoch, exactly (no float rounding)."""
    return (
        (ts.toordinal() - 719163) * 86_400_000_000
        + (ts.hour * 3600 + ts.minute * 60 + ts.second) * US
        + ts.microsecond
        - _offset_us(ts)
    )


def _offset_us(ts: Any) -> int:
    off = ts.utcoffset()
    if not off:
        return 0
    return (off.days * 86400 + off.seconds) * US + off.microseconds


class RoutineDiscoverer:
    """Stateless logic over `UserState`: the Faust agent keeps one state per user in a table."""

    def __init__(self, config: DiscoveryConfig) -> None:
        self.config = config
        self.miner = VariantMiner(config)
        self.builder = CandidateBuilder(config)
        self._label = config.abstraction.label_of
        self._lateness_us = int(config.lateness_seconds * US)
        self._gap_us = int(config.max_gap_seconds * US)

    def new_state(self, user_id: str) -> UserState:
        return UserState(user_id, keep_instances=self.config.keep_instances)

    # ---------------------------------------------------------------------------------- ingest

    def learn_one(self, state: UserState, action: Any) -> list[Candidate]:
        """Take one action; return candidates that are new or whose version changed (to be emitted)."""
        touched: set[str] = set()
        self._ingest(state, action, touched)
        return self._emit(state, touched)

    def learn_many(self, state: UserState, actions: Iterable[Any]) -> list[Candidate]:
        """A batch of one user's actions: the same final state as `learn_one` in a loop; each changed
        candidate is emitted once, at its latest version."""
        touched: set[str] = set()
        ingest = self._ingest
        for action in actions:
            ingest(state, action, touched)
        return self._emit(state, touched)

    def _ingest(self, state: UserState, action: Any, touched: set[str]) -> None:
        eid = action.event_id
        seen = state.recent_ids
        if eid in seen:
            state.duplicates += 1
            return
        ts = _ts_us(action.timestamp)
        if ts < state.released_ts:
            state.late += 1  # later than the lateness allowance (or a replay of an old event)
            return
        seen[eid] = None
        if len(seen) > self.config.dedupe_window:
            seen.popitem(last=False)
        app = action.app
        atype = action.action_type
        target = action.target
        ev = Ev(
            event_id=eid,
            ts=ts,
            label=sys.intern(self._label(app, atype, target)),
            app=app,
            action_type=atype,
            value=action.value,
            target=target,
            duration=action.duration_seconds,
        )
        state.seq += 1
        if ts > state.max_ts:
            state.max_ts = ts
        heap = state.heap
        horizon = state.max_ts - self._lateness_us
        if not heap and ts <= horizon:
            self._process(state, ev, touched)
            return
        heapq.heappush(heap, (ts, state.seq, ev))
        while heap and heap[0][0] <= horizon:
            self._process(state, heapq.heappop(heap)[2], touched)

    def flush(self, state: UserState) -> list[Candidate]:
        """End of stream (or of a replay): process held events and close every open thread."""
        touched: set[str] = set()
        while state.heap:
            self._process(state, heapq.heappop(state.heap)[2], touched)
        if state.warmup is not None:
            self._fit(state, touched)
        for th in list(state.threads):
            self._close_thread(state, th, touched)
        return self._emit(state, touched)

    def drain_retracted(self, state: UserState) -> list[str]:
        """Candidate ids withdrawn since the last call (publish a tombstone for each)."""
        out, state.retracted = state.retracted, []
        return out

    # ---------------------------------------------------------------------------------- processing

    def _process(self, state: UserState, ev: Ev, touched: set[str]) -> None:
        cfg = self.config
        state.events += 1
        if ev.ts > state.released_ts:
            state.released_ts = ev.ts
        x = ev.label
        counts = state.label_counts
        counts[x] = counts.get(x, 0.0) + 1.0
        state.total_count += 1.0
        if state.warmup is not None:
            self._count_pair(state, x)
            state.warmup.append(ev)
            if len(state.warmup) >= cfg.warmup_events:
                self._fit(state, touched)
            return
        th = self._route(state, ev, touched)
        self._count_pair(state, x)
        self._segment(state, th, ev, touched)
        state.since_refit += 1
        if state.since_refit >= cfg.refit_every:
            self._refit(state, touched)
        state.since_decay += 1
        if state.since_decay >= cfg.decay_every:
            self._decay(state)
        if state.events & 15 == 0:
            self._close_idle(state, touched)

    @staticmethod
    def _count_pair(state: UserState, x: str) -> None:
        prev = state.prev_label
        if prev is not None:
            key = (prev, x)
            state.pairs[key] = state.pairs.get(key, 0.0) + 1.0
            state.out[prev] = state.out.get(prev, 0.0) + 1.0
            p2 = state.prev2_label
            if p2 is not None:
                k2 = (p2, prev)
                k3 = (p2, prev, x)
                state.triples[k3] = state.triples.get(k3, 0.0) + 1.0
                state.out2[k2] = state.out2.get(k2, 0.0) + 1.0
        state.prev2_label = prev
        state.prev_label = x

    def _route(self, state: UserState, ev: Ev, touched: set[str], *, fitting: bool = False) -> Thread:
        """The thread this event continues, or a new one (see the module docstring, step 3)."""
        x = ev.label
        pairs = state.pairs
        out = state.out
        cfg = self.config
        best: Thread | None = None
        bp = 0.0
        theta = cfg.continue_share
        # lift: how much more often x follows a thread's last action than x occurs at all. A rare branch of
        # a routine has a high lift; the switch into an interrupting routine has a lift near 1.
        base = state.label_counts.get(x, 0.0) / max(1.0, state.total_count)
        min_lift = cfg.continue_lift
        triples = state.triples
        out2 = state.out2
        ms = float(cfg.min_support)
        for th in state.threads:
            o = out.get(th.last)
            if not o:
                continue
            c = pairs.get((th.last, x), 0.0)
            q = c / o
            if th.prev is not None:
                # a shared action ("copy" before any of twelve fields) is disambiguated by the one before it
                o2 = out2.get((th.prev, th.last), 0.0)
                if o2 >= ms:
                    q2 = triples.get((th.prev, th.last, x), 0.0) / o2
                    if q2 > q:
                        q = q2
            if c < 2.0 or (q < theta and q < min_lift * base):
                continue
            # equal evidence: the longer-lived thread (a repeated or stray action opens a thread that must
            # not take the work over)
            if q > bp or (q == bp and best is not None and th.size > best.size):
                best, bp = th, q
        n = state.events
        if best is None:
            best = Thread(tid=state.next_tid, first=x, size=0, last=x, last_n=n, last_ts=ev.ts)
            state.next_tid += 1
            state.threads.append(best)
            if len(state.threads) > self.config.max_threads and not fitting:
                oldest = min(state.threads, key=lambda t: t.last_n)
                self._close_thread(state, oldest, touched)
        best.size += 1
        if best.size == self.config.min_length:
            # a thread that lived on: its first action began real work, not a stray event
            state.opened[best.first] = state.opened.get(best.first, 0.0) + 1.0
        best.prev = best.last if best.size > 1 else None
        best.last = x
        best.last_n = n
        best.hist.append(x)
        if len(best.hist) > 256:
            self._retire_hist(state, best)
        return best

    def _retire_hist(self, state: UserState, th: Thread) -> None:
        h = state.history
        if th.size >= self.config.min_length:  # a stray action's own thread tells nothing about routines
            h.extend(th.hist)
        th.hist = []
        over = len(h) - self.config.history_events
        for _ in range(over):
            h.popleft()

    def _close_thread(self, state: UserState, th: Thread, touched: set[str]) -> None:
        if th in state.threads:
            state.threads.remove(th)
        self._retire_hist(state, th)
        if th.open:
            events, th.open = th.open, []
            self.miner.assign(state, events, touched)

    def _close_idle(self, state: UserState, touched: set[str]) -> None:
        n = state.events
        idle = self.config.thread_idle_events
        for th in [t for t in state.threads if n - t.last_n > idle]:
            self._close_thread(state, th, touched)

    def _segment(self, state: UserState, th: Thread, ev: Ev, touched: set[str]) -> None:
        cfg = self.config
        seg = th.open
        if seg and (ev.ts - th.last_ts > self._gap_us or len(seg) >= cfg.max_segment_events):
            th.open = []
            self.miner.assign(state, seg, touched)
            seg = th.open
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

    def _interrupt_starts(self, state: UserState) -> list[str]:
        cfg = self.config
        out = []
        for label, n in sorted(state.opened.items(), key=lambda kv: (-kv[1], kv[0])):
            c = state.label_counts.get(label, 0.0)
            if n >= cfg.min_support and c and n >= cfg.interrupt_start_share * c:
                out.append(label)
        return out

    def _thread_ordered(self, state: UserState) -> list[str]:
        seq = list(state.history)
        for th in sorted(state.threads, key=lambda t: t.tid):
            if th.size >= self.config.min_length:
                seq.extend(th.hist)
        return seq

    def _estimate(self, state: UserState, known: list[str]) -> list[str]:
        cfg = self.config
        seq = self._thread_ordered(state)
        return estimate_starts(
            seq,
            known=known,
            prefer=self._interrupt_starts(state),
            min_support=cfg.min_support,
            min_length=cfg.min_length,
        )

    def _set_starts(self, state: UserState, starts: list[str]) -> None:
        state.starts = starts
        state.start_set = frozenset(starts)

    def _fit(self, state: UserState, touched: set[str]) -> None:
        """End of warm-up: thread the buffered events, estimate starts on the threads, then segment."""
        buffered = state.warmup or []
        state.warmup = None
        routed: list[tuple[Thread, Ev]] = []
        events = state.events
        for k, ev in enumerate(buffered):
            state.events = events - len(buffered) + k + 1
            routed.append((self._route(state, ev, touched, fitting=True), ev))
        state.events = events
        self._set_starts(state, self._estimate(state, []))
        for th, ev in routed:
            self._segment(state, th, ev, touched)
        # threads beyond the cap (kept open while the warm-up was replayed) close now, least recent first
        while len(state.threads) > self.config.max_threads:
            self._close_thread(state, min(state.threads, key=lambda t: t.last_n), touched)

    def _refit(self, state: UserState, touched: set[str]) -> None:
        cfg = self.config
        state.since_refit = 0
        before = set(state.starts)
        self._set_starts(state, self._estimate(state, state.starts))
        new = set(state.starts) - before
        if new:
            self._recut(state, new, touched)
        horizon = state.released_ts - int(cfg.variant_ttl_seconds * US)
        for vid in [v.vid for v in state.variants.values() if v.last_seen < horizon]:
            self.miner.drop_variant(state, vid)

    def _recut(self, state: UserState, new_starts: set[str], touched: set[str]) -> None:
        """A routine start learnt late: re-cut what was grouped before it was known.

        Until a routine's start is known its instances are glued onto another routine's segments; those
        land in the pending pool or in variants that contain the new start mid-way. Such variants are
        dissolved (their ids reported in `state.retracted`) and all these segments are cut again.
        """
        segs = list(state.pending)
        state.pending = deque()
        for v in list(state.variants.values()):
            if any(label in new_starts for label in v.steps[1:]):
                segs.extend(v.instances)
                self.miner.drop_variant(state, v.vid)
                touched.discard(v.vid)
        segs.sort(key=lambda sg: sg.events[0].ts)
        for sg in segs:
            piece: list[Ev] = []
            for ev in sg.events:
                if ev.label in state.start_set and len(piece) >= self.config.min_length:
                    self.miner.assign(state, piece, touched)
                    piece = []
                piece.append(ev)
            if piece:
                self.miner.assign(state, piece, touched)

    @staticmethod
    def _decay(state: UserState) -> None:
        """Halve the transition statistics: recent behaviour weighs more, and the tables stay bounded."""
        state.since_decay = 0
        state.pairs = {k: n / 2 for k, n in state.pairs.items() if n >= 2.0}
        state.out = {k: n / 2 for k, n in state.out.items() if n >= 2.0}
        state.opened = {k: n / 2 for k, n in state.opened.items() if n >= 2.0}
        state.triples = {k: n / 2 for k, n in state.triples.items() if n >= 2.0}
        state.out2 = {k: n / 2 for k, n in state.out2.items() if n >= 2.0}
        state.label_counts = {k: n / 2 for k, n in state.label_counts.items() if n >= 1.0}
        state.total_count = sum(state.label_counts.values())

    # ---------------------------------------------------------------------------------- candidates

    def _emit(self, state: UserState, touched: set[str]) -> list[Candidate]:
        if not touched:
            return []
        cfg = self.config
        out: list[Candidate] = []
        for vid in sorted(touched):
            v = state.variants.get(vid)
            if v is None or v.count < cfg.min_support:
                continue
            grown = v.count >= math.ceil(v.emitted_count * (1 + cfg.emit_growth))
            changed = tuple(v.steps) != v.emitted_steps
            if v.version == 0 or grown or changed:
                cand = self.builder.build(state, v, version=v.version + 1)
                v.last_score = cand.score
                v.version += 1
                v.emitted_count = v.count
                v.emitted_score = cand.score
                v.emitted_steps = tuple(v.steps)
                v.emitted_name = cand.name
                out.append(cand)
        return out

    def build_candidate(self, state: UserState, vid: str) -> Candidate:
        return self.builder.build(state, state.variants[vid])

    def result(self, state: UserState) -> DiscoveryResult:
        """Ranked routines with their kept occurrences; does not change what will be emitted."""
        return self.builder.result(state)


def discover(
    actions: Iterable[Any],
    config: DiscoveryConfig | None = None,
    *,
    user_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DiscoveryResult:
    """Batch helper: replay `actions` through the streaming code and return the ranked routines.

    All occurrences are kept (the per-variant instance store is unbounded here) so they can be scored.
    """
    cfg = replace(config or DiscoveryConfig(), keep_instances=10**9, max_kept_instances=10**9)
    disc = RoutineDiscoverer(cfg)
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
