"""The per-user byte budget: the encoded state stays under `state_budget_bytes` whatever the history.

Every structure of the state has its own bound (kept instances per variant and in events, pending
segments, variants, labels, transitions, the start estimator's window), and for ordinary streams these keep
a user's state well under the budget. They cannot bound the *bytes* of what users type, though: a routine
whose event ids are UUIDs, whose values are long, or a stream of hundreds of long distinct window titles
holds more per item. So the encoded size itself is measured (every `budget_check_every` events and at a
flush: deterministic in the event count, so batched and one-at-a-time learning agree) and, above
`shed_at` of the budget, data is given up in order of least harm until it is under `shed_to`:

1. the kept instances of all but the best-supported variant;
2. the events of pending segments (they still count as occurrences when a routine forms);
3. the best variant's instances beyond three (what the automation generator needs to infer a routine);
4. pending segments themselves;
5. the older half of the start estimator's window (twice), the best variant's instances down to one, the
   transition statistics (a decay);
6. the least useful variants (least supported first; an emitted one is retracted with a tombstone).

Each step is counted in `UserState.shed`. Losing kept instances costs the candidate examples, never the
routine; losing variants is the last resort (it takes a pathological stream: long distinct labels, or
dozens of long variants).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from rote.discovery.codec import encode_state
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import UserState
from rote.discovery.threads import Threader
from rote.discovery.variants import VariantMiner

_encode = msgspec.json.Encoder().encode


def encoded_bytes(state: UserState) -> int:
    """The size `rote.state.encode_state` writes for this state (its data part), up to a few bytes per
    variant: measured on the canonical encoding, so learning one action at a time and in batches (which
    emit different versions) take the same decisions."""
    return len(_encode(encode_state(state, canonical=True)))


#: Encoded bytes assumed per event held, and per event processed, when estimating growth since the last
#: measure (on the bundled log the codec spends ~30 per held event with its id, value and target, and the
#: start estimator's window and the statistics grow by ~1 per event until they are full).
_BYTES_PER_HELD = 40
_BYTES_PER_EVENT = 1
#: What a state holds before any event (the id ring, the envelope): the estimate's start.
_BASE_BYTES = 2048


def held_events(state: UserState) -> int:
    """Events the state holds (lateness heap, warm-up, open threads, kept instances, pending segments)."""
    n = len(state.heap) + (len(state.warmup) if state.warmup is not None else 0)
    for th in state.threads:
        n += len(th.open)
    for v in state.variants.values():
        for s in v.instances:
            n += len(s.events or ())
    for s in state.pending:
        n += len(s.events or ())
    return n


def check_budget(state: UserState, cfg: DiscoveryConfig, miner: VariantMiner, *, force: bool = False) -> None:
    """Estimate the encoded size from the last measure; measure (and trim) when it may near the budget.

    Why an estimate: encoding a 15 kB state costs about as much as processing a few hundred events, while
    what makes a state grow is almost only the events it holds, which are cheap to count.
    """
    size0, held0, at, labels0 = state.measured
    budget = cfg.state_budget_bytes
    if not at:  # never measured: everything is growth (a young state is far from the budget)
        size0 = _BASE_BYTES
    if not force and state.events - at < cfg.budget_measure_every:
        estimate = (
            size0
            + (held_events(state) - held0) * _BYTES_PER_HELD
            + (state.events - at) * _BYTES_PER_EVENT
            + label_bytes(state)
            - labels0
        )
        if estimate <= cfg.shed_at * budget:
            return
    enforce_budget(state, cfg, miner)


def label_bytes(state: UserState) -> int:
    """Characters of the labels the statistics know (long distinct labels are what else grows)."""
    return sum(len(x) for x in state.label_counts)


def enforce_budget(state: UserState, cfg: DiscoveryConfig, miner: VariantMiner) -> int:
    """Measure the state; trim it when it nears the budget. Returns the size after."""
    size = encoded_bytes(state)
    budget = cfg.state_budget_bytes
    if size > cfg.shed_at * budget:
        # a user whose routines do not fit keeps fewer instances from now on (down to two: one to learn
        # from, one to test), so the state settles instead of shedding again at every check
        state.keep_instances = max(2, min(state.keep_instances, cfg.keep_instances) - 1)
        target = cfg.shed_to * budget
        for step in _steps(state, cfg, miner):
            if not step():
                continue
            state.shed += 1
            size = encoded_bytes(state)
            if size <= target:
                break
    state.measured = [size, held_events(state), max(1, state.events), label_bytes(state)]
    return size


def _steps(state: UserState, cfg: DiscoveryConfig, miner: VariantMiner) -> list[Callable[[], bool]]:
    def strip_pending() -> bool:
        done = False
        for seg in state.pending:
            if seg.events is not None:
                seg.events = None
                done = True
        return done

    def thin(v_floor: int, best_floor: int) -> Callable[[], bool]:
        def run() -> bool:
            ranked = sorted(state.variants.values(), key=lambda v: (v.count, v.vid))
            done = False
            for k, v in enumerate(ranked):
                floor = min(best_floor, state.keep_instances) if k == len(ranked) - 1 else v_floor
                while len(v.instances) > floor:
                    v.instances.popleft()
                    done = True
            return done

        return run

    def drop_pending() -> bool:
        if not state.pending:
            return False
        state.pending.clear()
        return True

    def drop_variant() -> bool:
        if len(state.variants) <= 1:
            return False
        worst = min(state.variants.values(), key=lambda v: (v.count, -v.last_seen, v.vid))
        miner.drop_variant(state, worst.vid)
        return True

    def trim_history() -> bool:
        h = state.history
        if len(h) < 64:
            return False
        for _ in range(len(h) // 2):
            h.popleft()
        return True

    def decay() -> bool:
        Threader(cfg, miner).decay(state)
        return True

    steps: list[Callable[[], bool]] = [thin(0, cfg.keep_instances), strip_pending, thin(0, 3), drop_pending]
    steps += [trim_history, trim_history, thin(0, 2), thin(0, 1), decay]
    steps += [drop_variant] * max(0, cfg.max_variants - 1)
    return steps
