"""Where routines start, kept up to date: the estimate at the end of the warm-up and at each refit, and
what changes with the starts (variants cut at a dropped start withdrawn, segments cut again at new ones).

`RoutineDiscoverer` (miner.py) routes and segments events; this is the part of it that decides and revises
where segments are cut (segmentation.py's estimator, mdl.py's description-length judge) and re-cuts what
was grouped under starts that changed. State lives in `UserState` only, as everywhere in discovery.
"""

from __future__ import annotations

from collections.abc import Sequence

from rote.discovery.config import DiscoveryConfig
from rote.discovery.mdl import improve_starts
from rote.discovery.model import US, Ev, Segment, UserState
from rote.discovery.segmentation import estimate_starts, frequent_labels
from rote.discovery.variants import VariantMiner

__all__ = ["StartKeeper"]


class StartKeeper:
    """The routine starts of each user's stream: estimated, judged and revised (see the module docstring)."""

    def __init__(self, config: DiscoveryConfig, miner: VariantMiner) -> None:
        self.config = config
        self.miner = miner

    def interrupt_starts(self, state: UserState) -> list[str]:
        cfg = self.config
        out = []
        for label, n in sorted(state.opened.items(), key=lambda kv: (-kv[1], kv[0])):
            c = state.label_counts.get(label, 0)
            if n >= cfg.min_support and c and n >= cfg.interrupt_start_share * c:
                out.append(label)
        return out

    def thread_ordered(self, state: UserState) -> list[str]:
        seq = [x for x in state.history if x is not None]
        for th in sorted(state.threads, key=lambda t: t.tid):
            if th.size >= self.config.min_length:
                seq.extend(x for x in th.hist if x is not None)
        return seq

    def estimate(self, state: UserState, seq: list[str], known: list[str]) -> list[str]:
        cfg = self.config
        starts = estimate_starts(
            seq,
            known=known,
            prefer=self.interrupt_starts(state),
            min_support=cfg.min_support,
            min_length=cfg.min_length,
            body_share=cfg.start_body_share,
            trial_bodies=cfg.start_trial_bodies,
            coherent_prefer=cfg.start_coherent_prefer,
            retest=cfg.start_retest,
            entry_anchor=cfg.start_entry_anchor,
            entry_glued=cfg.start_entry_glued,
            loop_rounds=cfg.start_loop_rounds,
            loop_share=cfg.start_loop_share,
        )
        if cfg.start_description_gain <= 0 or not known:
            return starts
        freq = frequent_labels(seq, cfg.min_support)
        return improve_starts(
            [x for x in seq if x in freq],
            starts,
            previous=known,
            min_length=cfg.min_length,
            min_gain=cfg.start_description_gain,
        )

    def set_starts(self, state: UserState, starts: list[str]) -> None:
        state.starts = starts
        state.start_set = frozenset(starts)

    def refit(self, state: UserState, touched: set[str]) -> None:
        cfg = self.config
        state.since_refit = 0
        before = set(state.starts)
        seq = self.thread_ordered(state)
        self.set_starts(state, self.estimate(state, seq, state.starts))
        dropped = before - state.start_set
        # a known start still frequent in the window is dropped only when the estimator re-anchored or
        # found it inside a routine known before it (`estimate_starts`, `retest`), or when dropping it
        # shortens the window's description (`mdl.improve_starts`)
        held: list[Segment] = []
        if dropped and any(seq.count(s) >= cfg.min_support for s in dropped):
            held = self.unanchor(state, dropped, touched)
        new = set(state.starts) - before
        if new or held:
            self.recut(state, new, touched, held)
        horizon = state.released_ts - int(cfg.variant_ttl_seconds * US)
        for vid in [v.vid for v in state.variants.values() if v.last_seen < horizon]:
            self.miner.drop_variant(state, vid)

    def unanchor(self, state: UserState, dropped: set[str], touched: set[str]) -> list[Segment]:
        """Known starts were dropped (the anchor began only fragments and the starts were re-estimated
        from scratch, or a start accepted on an earlier window is a step inside a routine known before
        it, or dropping it shortened the window's description, `mdl.improve_starts`): what was cut at a
        start no longer known is pieces of instances, not instances. Those variants are withdrawn (ids in
        `state.retracted`) and such pending segments leave the pool; the threads' open work is cut at the
        remaining starts from now on.

        Returns the withdrawn segments whose events are still kept (`start_recut_unanchored`, else none):
        the pieces of the instances seen so far, which `recut` joins and cuts again at the new starts.
        Without them a re-anchoring late in a stream forgets every instance of a routine seen before it
        (an SR+RT mix whose starts came right only after the last StudentRecord instance found one routine).
        """
        keep = self.config.start_recut_unanchored
        held: list[Segment] = []
        for v in list(state.variants.values()):
            if v.steps and v.steps[0] in dropped:
                if keep:
                    held.extend(sg for sg in v.instances if sg.events is not None)
                self.miner.drop_variant(state, v.vid)
                touched.discard(v.vid)
        kept: list[Segment] = []
        for sg in state.pending:
            if not sg.key or sg.key[0] not in dropped:
                kept.append(sg)
            elif keep and sg.events is not None:
                held.append(sg)
        state.pending.clear()
        state.pending.extend(kept)
        return held

    def recut(
        self, state: UserState, new_starts: set[str], touched: set[str], held: Sequence[Segment] = ()
    ) -> None:
        """A routine start learnt late, or starts dropped: re-cut what was grouped before.

        Until a routine's start is known its instances are glued onto another routine's segments; those
        land in the pending pool or in variants that contain the new start mid-way. Such variants are
        dissolved (their ids reported in `state.retracted`) and the segments whose events are still kept
        are cut again (the others only ever counted), with the pieces of dropped starts (`held`).

        With `start_recut_unanchored`, segments that follow one another in time (the next begins after the
        previous ended) are joined before cutting: a routine cut at a wrong start (a step inside it) lies
        in two consecutive segments, its end in one and its beginning in the next.
        """
        segs = [s for s in state.pending if s.events is not None]
        state.pending.clear()
        for v in list(state.variants.values()):
            if any(label in new_starts for label in v.steps[1:]):
                segs.extend(v.instances)
                self.miner.drop_variant(state, v.vid)
                touched.discard(v.vid)
        segs.extend(held)
        segs.sort(key=lambda sg: sg.first_ts)
        join = self.config.start_recut_unanchored
        runs: list[list[Ev]] = []
        end = -1
        for sg in segs:
            events = list(sg.events or ())
            if join and runs and sg.first_ts >= end:
                runs[-1].extend(events)
            else:
                runs.append(events)
            end = max(end, sg.last_ts) if join else sg.last_ts
        min_length = self.config.min_length
        for run in runs:
            piece: list[Ev] = []
            for ev in run:
                if ev.label in state.start_set and len(piece) >= min_length:
                    self.miner.assign(state, piece, touched)
                    piece = []
                piece.append(ev)
            if piece:
                self.miner.assign(state, piece, touched)
