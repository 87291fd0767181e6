"""Threads: which work in progress each event continues (interleaved routines), and the transition counts
that decide it.

People interleave routines at the event level, and routines share actions. Each event is routed to the open
thread whose last action (or last two actions, when the last one is a shared hub such as a bare `copy`) it
most often follows in the stream, provided that transition was seen at least twice and either holds
`continue_share` of the predecessor's successors or has a lift of `continue_lift` over the action's base
rate (a rare routine branch has a high lift; the switch into an interrupting routine has a lift near 1).
Otherwise it opens a new thread (an interruption, or new work); ties go to the longer-lived thread, so a
repeated or stray action never takes the work over. A shared action thus goes to the thread whose context
it continues: label splitting by context without rewriting labels.

Why nested integer tables: routing asks, for every open thread, "how often did this action follow the
thread's last one?". `succ[last].get(x)` answers with two lookups on interned strings and no tuple built,
and almost every thread is rejected right there (fewer than two sightings). Counts are integers halved
(floor) at each decay, and each table has a cap, so the state stays small and exact.
"""

from __future__ import annotations

from typing import TypeVar

from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import Ev, Thread, UserState
from rote.discovery.variants import VariantMiner

K = TypeVar("K")

#: Labels kept in a thread's not-yet-retired history before it moves to the shared window.
_HIST_CHUNK = 256


class Threader:
    def __init__(self, config: DiscoveryConfig, miner: VariantMiner) -> None:
        self.config = config
        self.miner = miner
        #: while the warm-up is routed: where closing threads leave their labels (thread id, labels)
        self.sink: list[tuple[int, list[str | None]]] | None = None
        # the settings `route` reads for every action
        self._theta = config.continue_share
        self._lift = config.continue_lift
        self._min_lift = config.continue_min_lift
        self._ms = config.min_support
        self._min_length = config.min_length
        self._skips = bool(config.route_skips)
        self._rare_joins = config.rare_joins
        self._weak_joins = config.weak_joins

    # ------------------------------------------------------------------------------------ routing

    def route(self, state: UserState, ev: Ev, touched: set[str]) -> Thread:
        """The thread this event continues, or a new one (see the module docstring)."""
        x = ev.label
        best: Thread | None = None
        bp = 0.0
        threads = state.threads
        if threads:
            succ = state.succ
            outs = state.outs
            # lift: how much more often x follows a thread's last action than x occurs at all
            total = state.total_count
            base = state.label_counts.get(x, 0) / total if total > 0 else 0.0
            min_q = self._lift * base
            if self._theta < min_q:
                min_q = self._theta
            # ... and never less often than it occurs anyway (a label that is half the stream follows
            # everything: following a thread's action says nothing about belonging to it)
            floor = self._min_lift * base
            if min_q < floor:
                min_q = floor
            for th in threads:
                last = th.last
                d = succ.get(last)
                if d is None:
                    continue
                c = d.get(x, 0)
                if c < 2:
                    continue
                o = outs.get(last, 0)
                q = c / o if o > c else 1.0
                prev = th.prev
                if prev is not None and q < 1.0:
                    # a shared action ("copy" before any of twelve fields) is disambiguated by the one before
                    k2 = (prev, last)
                    o2 = state.outs2.get(k2, 0)
                    if o2 >= self._ms:
                        d2 = state.succ2.get(k2)
                        if d2 is not None:
                            q2 = d2.get(x, 0) / o2
                            if q2 > q:
                                q = q2
                if q < min_q:
                    continue
                # equal evidence: the longer-lived thread (a stray action's thread must not take work over)
                if q > bp or (q == bp and best is not None and th.size > best.size):
                    best, bp = th, q
            if best is None and self._skips:
                best = self._skip_route(state, x)
            if best is None and self._rare_joins:
                recent = max(threads, key=lambda t: t.last_n)
                if state.label_counts.get(x, 0) <= self._ms:
                    # an action seen too rarely to have transitions of its own (a rare branch of a
                    # routine, a one-off page) belongs to the work in progress, not to a new line of work
                    best = recent
                elif self._weak_joins and state.opened.get(x, 0) < self._ms:
                    # a transition seen once, into an action that is not known to begin interruptions:
                    # the work in progress goes on (a rare branch of it)
                    d = succ.get(recent.last)
                    if d is not None and d.get(x, 0) >= 1:
                        best = recent
        n = state.events
        if best is None:
            best = Thread(tid=state.next_tid, first=x, size=0, last=x, last_n=n, last_ts=ev.ts)
            state.next_tid += 1
            threads.append(best)
            if len(threads) > self.config.max_threads:
                self.close(state, min(threads, key=lambda t: t.last_n), touched)
        size = best.size = best.size + 1
        if size == self._min_length:
            # a thread that lived on: its first action began real work, not a stray event
            state.opened[best.first] = state.opened.get(best.first, 0) + 1
        best.prev = best.last if size > 1 else None
        best.last = x
        best.last_n = n
        hist = best.hist
        hist.append(x)
        if len(hist) > _HIST_CHUNK:
            self.retire_hist(state, best)
        return best

    def _skip_route(self, state: UserState, x: str) -> Thread | None:
        """No thread continues `x` directly: does one continue it across one step? Loggers stamp some
        events late (a spreadsheet read logged after the copy it fed), so `x` may come one step early
        (it follows a successor of the thread's last action) or one step late (it follows the action before
        the last one). Only threads that lived on (a stray event's thread takes nothing this way)."""
        cfg = self.config
        succ, outs = state.succ, state.outs
        min_q = cfg.skip_share
        best: Thread | None = None
        bq = 0.0
        for th in state.threads:
            if th.size < cfg.min_length:
                continue
            q = 0.0
            d = succ.get(th.last) if cfg.route_skips != "late" else None
            if d:
                o = max(1, outs.get(th.last, 0))
                for y, cy in d.items():
                    if cy < 2 or y == x:
                        continue
                    d2 = succ.get(y)
                    cx = d2.get(x, 0) if d2 else 0
                    if cx >= 2:
                        q = max(q, cy / o * cx / max(cx, outs.get(y, 0)))
            if th.prev is not None and cfg.route_skips != "early":
                dp = succ.get(th.prev)
                cx = dp.get(x, 0) if dp else 0
                if cx >= 2:
                    q = max(q, cx / max(cx, outs.get(th.prev, 0)))
            if q < min_q:
                continue
            if q > bq or (q == bq and best is not None and th.size > best.size):
                best, bq = th, q
        return best

    def count(self, state: UserState, x: str) -> None:
        """Count the transitions into `x` (first and second order) of the raw stream (written out again in
        `RoutineDiscoverer._process`, the per-action path)."""
        prev = state.prev_label
        if prev is not None:
            d = state.succ.get(prev)
            if d is None:
                d = state.succ[prev] = {}
            c = d.get(x)
            if c is None:
                d[x] = 1
                state.n_pairs += 1
                if state.n_pairs > self.config.max_pairs:
                    self.prune_pairs(state)
            else:
                d[x] = c + 1
            state.outs[prev] = state.outs.get(prev, 0) + 1
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
                    if state.n_triples > self.config.max_triples:
                        self.prune_triples(state)
                else:
                    d2[x] = c + 1
                state.outs2[k2] = state.outs2.get(k2, 0) + 1
        state.prev2_label = prev
        state.prev_label = x

    # ------------------------------------------------------------------------------------ closing

    def retire_hist(self, state: UserState, th: Thread) -> None:
        """Move a thread's labels into the start estimator's window (labels no longer counted as blanks)."""
        h = state.history
        if th.size >= self.config.min_length:  # a stray action's own thread tells nothing about routines
            if self.sink is not None:
                self.sink.append((th.tid, th.hist))
                th.hist = []
                return
            # a label seen fewer than `min_support` times cannot be frequent in the window either: a blank
            # (the estimator skips it all the same, and the state does not keep its text)
            counts = state.label_counts
            ms = self._ms
            h.extend(x if x is not None and counts.get(x, 0) >= ms else None for x in th.hist)
        th.hist = []
        over = len(h) - self.config.history_events
        for _ in range(over):
            h.popleft()

    def close(self, state: UserState, th: Thread, touched: set[str]) -> None:
        if th in state.threads:
            state.threads.remove(th)
        self.retire_hist(state, th)
        if th.open:
            events, th.open = th.open, []
            self.miner.assign(state, events, touched)

    def close_idle(self, state: UserState, touched: set[str]) -> None:
        n = state.events
        idle = self.config.thread_idle_events
        for th in [t for t in state.threads if n - t.last_n > idle]:
            self.close(state, th, touched)

    # ------------------------------------------------------------------------------------ bounds

    def decay(self, state: UserState) -> None:
        """Halve the transition statistics: recent behaviour weighs more, and the tables stay bounded."""
        state.since_decay = 0
        state.succ = _halve_nested(state.succ)
        state.outs = _halve(state.outs)
        state.succ2 = _halve_nested(state.succ2)
        state.outs2 = _halve(state.outs2)
        state.opened = _halve(state.opened)
        state.label_counts = _halve(state.label_counts)
        state.total_count = sum(state.label_counts.values())
        _restrict(state)
        recount_tables(state)

    def prune_labels(self, state: UserState) -> None:
        """Too many labels: forget those seen once (noise), or if that is not enough, decay everything."""
        counts = state.label_counts
        gone = {x for x, n in counts.items() if n <= 1}
        kept_chars = sum(len(x) for x in counts if x not in gone)
        cfg = self.config
        if len(counts) - len(gone) > cfg.max_labels * 3 // 4 or kept_chars > cfg.max_label_chars * 3 // 4:
            self.decay(state)
            return
        for x in gone:
            del counts[x]
        state.total_count = sum(counts.values())
        _restrict(state)
        recount_tables(state)

    def prune_pairs(self, state: UserState) -> None:
        state.n_pairs = _drop_singletons(state.succ)
        if state.n_pairs > self.config.max_pairs * 3 // 4:
            self.decay(state)

    def prune_triples(self, state: UserState) -> None:
        state.n_triples = _drop_singletons(state.succ2)
        state.outs2 = {k: n for k, n in state.outs2.items() if k in state.succ2}
        if state.n_triples > self.config.max_triples * 3 // 4:
            self.decay(state)


def _restrict(state: UserState) -> None:
    """Keep transitions only between labels the label table still counts (the others were noise), so no
    table holds a label the statistics forgot."""
    known = state.label_counts
    state.succ = {a: {b: n for b, n in d.items() if b in known} for a, d in state.succ.items() if a in known}
    state.succ = {a: d for a, d in state.succ.items() if d}
    state.outs = {a: n for a, n in state.outs.items() if a in known}
    state.succ2 = {
        k: {b: n for b, n in d.items() if b in known}
        for k, d in state.succ2.items()
        if k[0] in known and k[1] in known
    }
    state.succ2 = {k: d for k, d in state.succ2.items() if d}
    state.outs2 = {k: n for k, n in state.outs2.items() if k in state.succ2}
    state.opened = {x: n for x, n in state.opened.items() if x in known}
    # nor do the threads' unretired labels (they would only ever be blanks in the window)
    for th in state.threads:
        th.hist = [x if x in known else None for x in th.hist]


def recount_tables(state: UserState) -> None:
    """The sizes of the transition tables and of the label table (derived, so not encoded)."""
    state.n_pairs = sum(len(d) for d in state.succ.values())
    state.n_triples = sum(len(d) for d in state.succ2.values())
    state.label_chars = sum(len(x) for x in state.label_counts)


def _halve(d: dict[K, int]) -> dict[K, int]:
    return {k: n >> 1 for k, n in d.items() if n >= 2}


def _halve_nested(d: dict[K, dict[str, int]]) -> dict[K, dict[str, int]]:
    out: dict[K, dict[str, int]] = {}
    for k, inner in d.items():
        h = _halve(inner)
        if h:
            out[k] = h
    return out


def _drop_singletons(d: dict[K, dict[str, int]]) -> int:
    """Drop transitions seen once (in place); returns how many remain."""
    size = 0
    for k in list(d):
        inner = d[k]
        for b in [b for b, n in inner.items() if n <= 1]:
            del inner[b]
        if inner:
            size += len(inner)
        else:
            del d[k]
    return size
