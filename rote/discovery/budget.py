"""The per-user byte budget: the encoded state stays under `state_budget_bytes` whatever the history.

Every structure of the state has its own bound (kept instances per variant and in events, pending
segments, variants, labels, transitions, the start estimator's window), and for ordinary streams these keep
a user's state well under the budget. They cannot bound the *bytes* of what users type, though: a routine
whose event ids are UUIDs, whose values are long, or a stream of hundreds of long distinct window titles
holds more per item. So the encoded size itself is estimated (every `budget_check_bytes` of payload taken
in), measured when the estimate nears the budget (and every `budget_measure_every` events and at a
flush: deterministic in the event count, so batched and one-at-a-time learning agree) and, above
`shed_at` of the budget, data is given up in order of least harm until it is under `shed_to`:

0. target texts longer than 256 characters (cut, with a digest of the whole);
1. the kept instances of all but the best-supported variant;
2. the events of pending segments (they still count as occurrences when a routine forms);
3. the best variant's instances beyond three (what the automation generator needs to infer a routine);
4. pending segments themselves;
5. the threads' labels (moved into the start estimator's window), the older half of that window (twice),
   the best variant's instances down to one, the transition statistics (a decay);
6. the least useful variants (least supported first; an emitted one is retracted with a tombstone).

Each step is counted in `UserState.shed`. Losing kept instances costs the candidate examples, never the
routine; losing variants is the last resort (it takes a pathological stream: long distinct labels, or
dozens of long variants).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from rote.discovery.codec import encode_state
from rote.discovery.config import DiscoveryConfig
from rote.discovery.model import Ev, UserState, target_values
from rote.discovery.threads import Threader
from rote.discovery.variants import VariantMiner

_encode = msgspec.json.Encoder().encode


def encoded_bytes(state: UserState) -> int:
    """The size `rote.state.encode_state` writes for this state (its data part), up to a few bytes per
    variant: measured on the canonical encoding, so learning one action at a time and in batches (which
    emit different versions) take the same decisions."""
    return len(_encode(encode_state(state, canonical=True)))


#: Bytes a held event costs besides its id and value (times, label/app/type/target indices, share of the
#: tables), per label of the start estimator's window (it grows until it is full), and what a state holds
#: before any event: the estimate's parts (on the bundled log a held event costs ~30 bytes in all).
_BYTES_PER_HELD = 16
_BYTES_PER_LABEL = 2
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


def check_budget(
    state: UserState, cfg: DiscoveryConfig, miner: VariantMiner, *, force: bool = False, warming: bool = False
) -> bool:
    """Estimate the encoded size from the last measure; measure (and trim) when it may near the budget.

    `warming`: the state is still buffering its warm-up, which cannot be trimmed; returns whether it is
    near the budget (the caller then ends the warm-up). Otherwise returns whether it was measured.

    Why an estimate: encoding a 15 kB state costs about as much as processing a few hundred events, while
    what makes a state grow is the events it holds, which are cheap to count. What an event weighs is
    taken from the payload the recent events brought (ids, values, labels: `UserState.payload`), or from
    the last measure when that was more.
    """
    size0, held0, at, labels0, per_held0, payload0, history0 = state.measured
    budget = cfg.state_budget_bytes
    if not at:  # never measured: everything is growth
        size0 = _BASE_BYTES
    if not force and state.events - at < cfg.budget_measure_every:
        recent = state.events - at
        # what a held event weighs: as last measured, unless events have since grown heavier than they were
        # (or nothing was measured yet): then the recent payload per event says
        recent_payload = (state.payload - payload0) / recent if recent > 0 else 0.0
        per_held = float(per_held0)
        if not at or recent_payload > 2 * payload0 / at:
            per_held = max(per_held, recent_payload + _BYTES_PER_HELD)
        estimate = (
            size0
            + (held_events(state) - held0) * per_held
            + (len(state.history) - history0) * _BYTES_PER_LABEL
            + 1.2 * (label_bytes(state) - labels0)
        )
        if estimate <= cfg.shed_at * budget:
            return False
    if warming:
        return _measure(state) > cfg.shed_at * budget
    enforce_budget(state, cfg, miner)
    return True


def label_bytes(state: UserState) -> int:
    """Characters of the labels the statistics know: every label any table holds (long distinct labels are
    what else grows)."""
    return state.label_chars


def enforce_budget(state: UserState, cfg: DiscoveryConfig, miner: VariantMiner) -> int:
    """Measure the state; trim it when it nears the budget. Returns the size after."""
    data = encode_state(state, canonical=True)
    size = len(_encode(data))
    budget = cfg.state_budget_bytes
    if size > cfg.shed_at * budget:
        # a user whose routines do not fit keeps fewer instances from now on (down to two: one to learn
        # from, one to test), so the state settles instead of shedding again at every check
        state.keep_instances = max(2, min(state.keep_instances, cfg.keep_instances) - 1)
        target = cfg.shed_to * budget
        # a step that gives up held events is judged by what they weighed at this measure; the state is
        # encoded again only when that says the target is reached (or the step freed something else)
        held = held_events(state)
        per_held = _parts(data) / held if held else 0.0
        current = True  # does `data` encode the state as it is now?
        for step in _steps(state, cfg, miner):
            if not step():
                continue
            state.shed += 1
            current = False
            now = held_events(state)
            if now < held and size - (held - now) * per_held > target:
                size -= round((held - now) * per_held)
                held = now
                continue
            data = encode_state(state, canonical=True)
            size = len(_encode(data))
            held = held_events(state)
            current = True
            if size <= target:
                break
        if not current:
            data = encode_state(state, canonical=True)
            size = len(_encode(data))
    _record(state, data, size)
    return size


def _parts(data: dict[str, Any]) -> int:
    """What the held events cost in an encoding: the event block and the tables only they fill."""
    return sum(len(_encode(data[k])) for k in ("events", "values", "strings", "targets"))


def _measure(state: UserState) -> int:
    """Measure without trimming (a warm-up cannot be trimmed), and remember the measure."""
    data = encode_state(state, canonical=True)
    size = len(_encode(data))
    _record(state, data, size)
    return size


def _record(state: UserState, data: dict[str, Any], size: int) -> None:
    held = held_events(state)
    per_held = _parts(data) / held if held else 0.0
    state.measured = [
        size,
        held,
        max(1, state.events),
        label_bytes(state),
        round(per_held, 1),
        state.payload,
        len(state.history),
    ]


#: Target texts are cut to this many characters when shedding.
_TARGET_CHARS = 256


def _clip(text: str) -> str:
    digest = zlib.crc32(text.encode("utf-8", "surrogatepass"))
    return f"{text[:_TARGET_CHARS]}~{digest:08x}"


def _held(state: UserState) -> Iterator[Ev]:
    for _, _, ev in state.heap:
        yield ev
    yield from state.warmup or ()
    for th in state.threads:
        yield from th.open
    for v in state.variants.values():
        for seg in v.instances:
            yield from seg.events or ()
    for seg in state.pending:
        yield from seg.events or ()


def _steps(state: UserState, cfg: DiscoveryConfig, miner: VariantMiner) -> list[Callable[[], bool]]:
    def clip_targets() -> bool:
        """Target texts longer than `_TARGET_CHARS` (a producer may send 8 kB titles) are cut, with a digest
        of the whole so distinct texts stay distinct: a target names where, not what."""
        done = False
        for ev in _held(state):
            tv = target_values(ev.target)
            if any(type(x) is str and len(x) > _TARGET_CHARS for x in tv):
                ev.target = tuple(_clip(x) if type(x) is str and len(x) > _TARGET_CHARS else x for x in tv)
                done = True
        return done

    def strip_pending() -> bool:
        done = False
        for seg in state.pending:
            if seg.events is not None:
                seg.forget_events()
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

    def retire_hists() -> bool:
        """The threads' labels go to the start estimator's window now (their rare ones as blanks)."""
        done = False
        for th in state.threads:
            if th.hist:
                Threader(cfg, miner).retire_hist(state, th)
                done = True
        return done

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

    steps: list[Callable[[], bool]] = [clip_targets, thin(0, cfg.keep_instances), strip_pending, thin(0, 3)]
    steps += [drop_pending]
    steps += [retire_hists, trim_history, trim_history, thin(0, 2), thin(0, 1), decay]
    steps += [drop_variant] * max(0, cfg.max_variants - 1)
    return steps
