"""`UserState` to JSON data and back: compact, exact, and strict about what it accepts.

Why a hand-written codec: the state is read back from a Kafka changelog, so decoding must never build
anything but the state's own classes (no pickle) and must reject malformed data with `StateError` instead
of failing later in the hot path. It must also be small (the per-user budget is 20 kB whatever the history):

* labels, strings (apps, action types, values, target texts) and targets are written once, in per-state
  tables, and referred to by index;
* integer columns (label sequences, transition counts, times, indices) are packed (`packing.py`);
* an event list is columnar: times as deltas, event ids with the prefix they share with the previous id
  left out (``"13:101-b1d6"`` = the previous id's first 13 characters + ``101-b1d6``);
* whatever can be derived is not written (the label total, the heap's id set, the table sizes, the key
  index's keys).

This module writes the format; `codec_read` reads it back (`decode_state`), checking every field.
Decoding the encoding gives a state that behaves exactly like the original (tested: same future
candidates, same encoding).
"""

from __future__ import annotations

from typing import Any

from rote.discovery.model import TARGET_FIELDS, Ev, Segment, UserState, target_values
from rote.discovery.packing import pack, pack_indices, pack_small

#: the target field written as an integer (a spreadsheet row), all others as strings
ROW = TARGET_FIELDS.index("row")


class _Tables:
    """Labels, strings (apps, action types, target texts), values and targets written once, by index."""

    def __init__(self) -> None:
        self.labels: dict[str, int] = {}
        self.strings: dict[str, int] = {}
        self.values: dict[str, int] = {}
        self.targets: dict[tuple[Any, ...], int] = {}
        self.target_rows: list[str | list[int]] = []

    def lab(self, label: str) -> int:
        i = self.labels.get(label)
        if i is None:
            i = self.labels[label] = len(self.labels)
        return i

    def labs(self, labels: Any) -> str | list[int]:
        lab = self.lab
        return pack_indices([lab(x) for x in labels])

    def s(self, text: str) -> int:
        i = self.strings.get(text)
        if i is None:
            i = self.strings[text] = len(self.strings)
        return i

    def value(self, text: str | None) -> int:
        """1 + the value's index (0: no value)."""
        if text is None:
            return 0
        i = self.values.get(text)
        if i is None:
            i = self.values[text] = len(self.values)
        return i + 1

    def target(self, target: Any) -> int:
        """1 + the target's index in the table (0: no target attributes)."""
        key = target_values(target)
        got = self.targets.get(key)
        if got is None:
            row: list[int] = []
            for fi, value in enumerate(key):
                if value is not None:
                    row += [fi, int(value) if fi == ROW else self.s(str(value))]
            if not row:
                got = 0
            else:
                self.target_rows.append(pack(row))
                got = len(self.target_rows)
            self.targets[key] = got
        return got


def _enc_ids(ids: list[str]) -> list[str]:
    """Each id without the prefix it shares with the previous one: ``"<shared length>:<rest>"``."""
    out = []
    prev = ""
    k0 = 0
    for x in ids:
        limit = min(len(x), len(prev), 999)
        k = k0 if k0 <= limit and x[:k0] == prev[:k0] else 0
        while k < limit and x[k] == prev[k]:
            k += 1
        out.append(f"{k}:{x[k:]}")
        prev = x
        k0 = k
    return out


def _table_free(events: list[Ev]) -> tuple[Any, ...]:
    """What encoding an event list costs regardless of the tables: ids, times (as deltas, in ms when
    every delta is whole milliseconds), the base time."""
    base = events[0].ts
    dts = []
    prev = base
    for e in events:
        dts.append(e.ts - prev)
        prev = e.ts
    unit = 1000 if all(d % 1000 == 0 for d in dts) else 1  # most loggers stamp milliseconds
    if unit != 1:
        dts = [d // unit for d in dts]
    return events, _enc_ids([e.event_id for e in events]), dts, unit, base


class _Block:
    """Every event the state holds (lateness heap, warm-up, open threads, kept instances, pending
    segments), encoded once as columns; each holder refers to its events as ``[base time, unit, count]``,
    taken in this order when decoding."""

    def __init__(self, t: _Tables) -> None:
        self.t = t
        self.events: list[Ev] = []
        self.ids: list[str] = []
        self.dts: list[int] = []

    def add(self, events: list[Ev], owner: Segment | None = None) -> list[int]:
        if not events:
            return [0, 1, 0]
        cache = owner.enc if owner is not None else None
        if cache is None or cache[0] is not events:
            cache = _table_free(events)
            if owner is not None:
                owner.enc = cache
        _, ids, dts, unit, base = cache
        self.events += events
        self.ids += ids
        self.dts += dts
        return [base, unit, len(events)]

    def finish(self) -> list[Any]:
        """[ids, time deltas, labels, apps, types, values, targets, durations or None, gaps]: the gaps
        (`Ev.gap`) as index and milliseconds pairs, the column left out when no event has one (as states
        written before it were)"""
        events = self.events
        t = self.t
        # table lookups inlined (setdefault with the next index): this runs for every held event at every
        # checkpoint
        labels, strings, values, targets = t.labels, t.strings, t.values, t.targets
        lab = [labels.setdefault(e.label, len(labels)) for e in events]
        apps = [strings.setdefault(e.app, len(strings)) for e in events]
        types = [strings.setdefault(e.action_type, len(strings)) for e in events]
        vals = [0 if e.value is None else values.setdefault(e.value, len(values)) + 1 for e in events]
        tgts = []
        for e in events:
            key = e.target if type(e.target) is tuple else target_values(e.target)
            got = targets.get(key)
            tgts.append(t.target(key) if got is None else got)
        durations = [e.duration for e in events]
        out = [
            self.ids,
            pack_small(self.dts),
            pack(lab),
            pack(apps),
            pack(types),
            pack(vals),
            pack(tgts),
            None if all(d is None for d in durations) else durations,
        ]
        # few events have a gap: [index, milliseconds, index, milliseconds, ...]
        gaps = [x for k, e in enumerate(events) if e.gap is not None for x in (k, e.gap // 1000)]
        if gaps:
            out.append(gaps)
        return out


def _enc_segment(t: _Tables, block: _Block, seg: Segment, steps: tuple[str, ...] | None = None) -> list[Any]:
    """[key (None: the variant's steps), events, [first, last time], last duration, alignment, idle (when
    not 0)]; an
    alignment that takes the events in order (a kept instance's) is written as the bit set of the steps
    present."""
    aligned = seg.aligned
    present = [k for k, i in enumerate(aligned) if i is not None]
    if all(aligned[k] == j for j, k in enumerate(present)) and (
        seg.events is None or len(present) == len(seg.events)
    ):
        align: Any = sum(1 << k for k in present) if aligned else 0
        align = [len(aligned), format(align, "x")]
    else:
        align = pack([0 if i is None else i + 1 for i in aligned])
    if steps is not None:  # a kept instance: its times are its events'
        return [None if seg.key == steps else t.labs(seg.key), block.add(seg.events or [], seg), align]
    out = [
        t.labs(seg.key),
        None if seg.events is None else block.add(seg.events, seg),
        [seg.first_ts, seg.last_ts],
        seg.last_duration,
        align,
    ]
    if seg.idle:
        out.append(seg.idle)  # (left out when none, as states before it were written)
    return out


def _enc_keys(t: _Tables, keys: Any) -> list[Any]:
    """Label sequences, each distinct one written once: [[sequence, ...], order]."""
    distinct: dict[tuple[str, ...], int] = {}
    order = [distinct.setdefault(k, len(distinct)) for k in keys]
    return [[t.labs(k) for k in distinct], pack_indices(order)]


def _flat(t: _Tables, d: dict[str, int]) -> list[Any]:
    """[labels, counts]: labels and counts packed apart (each at its own width)."""
    lab = t.lab
    return [pack([lab(a) for a in d]), pack(list(d.values()))]


def _flat2(t: _Tables, d: dict[tuple[str, str], int]) -> list[Any]:
    lab = t.lab
    keys: list[int] = []
    for a, b in d:
        keys += [lab(a), lab(b)]
    return [pack(keys), pack(list(d.values()))]


def _nested(t: _Tables, d: dict[Any, dict[str, int]], pair: bool) -> list[Any]:
    """[structure, counts]: per outer key its label(s), its number of entries and their labels; the
    counts of all entries in the same order."""
    lab = t.lab
    shape: list[int] = []
    counts: list[int] = []
    for k, inner in d.items():
        if pair:
            shape += [lab(k[0]), lab(k[1]), len(inner)]
        else:
            shape += [lab(k), len(inner)]
        shape += [lab(b) for b in inner]
        counts += inner.values()
    return [pack(shape), pack(counts)]


def encode_state(st: UserState, *, canonical: bool = False) -> dict[str, Any]:
    """The state as JSON data. `canonical`: with what only records emissions (versions, emitted counts,
    scores) zeroed, so its size, which the byte budget acts on, does not depend on how often candidates were
    emitted (one action at a time or in batches)."""
    t = _Tables()
    block = _Block(t)
    heap = sorted(st.heap, key=lambda item: (item[0], item[1]))

    def opt(x: str | None) -> int:
        return -1 if x is None else t.lab(x)

    out: dict[str, Any] = {
        "kind": UserState.STATE_KIND,
        "version": UserState.STATE_VERSION,
        "user": st.user_id,
        "keep": st.keep_instances,
        "seen": st.seen.to_data(),
        "ties": list(st.tie_ids),
        "heap": [pack([seq for _, seq, _ in heap]), block.add([e for _, _, e in heap])],
        "seq": st.seq,
        "clock": [st.max_ts, st.released_ts],
        "prev": [opt(st.prev2_label), opt(st.prev_label)],
    }
    out["warmup"] = None if st.warmup is None else block.add(st.warmup)
    out["threads"] = [
        [
            th.tid,
            t.lab(th.first),
            th.size,
            t.lab(th.last),
            th.last_n,
            th.last_ts,
            opt(th.prev),
            block.add(th.open),
            pack_indices([0 if x is None else t.lab(x) + 1 for x in th.hist]),
        ]
        for th in st.threads
    ]
    variants = []
    for v in st.variants.values():
        variants.append(
            [
                v.vid,
                t.labs(v.steps),
                [
                    v.count,
                    v.exact,
                    v.split_checked_at,
                    0 if canonical else v.version,
                    0 if canonical else v.emitted_count,
                    0 if canonical else v.emitted_steps,
                    v.n_days,
                    v.last_day,
                    v.first_seen,
                    v.last_seen,
                    v.fitness_milli,
                    v.duration_ms,
                    0 if canonical else v.emitted_at,
                ],
                0.0 if canonical else v.last_score,
                [pack(list(v.key_counts)), pack(list(v.key_counts.values()))],
                v.from_split,
                [_enc_segment(t, block, s, tuple(v.steps)) for s in v.instances],
                _enc_keys(t, v.recent_keys),
            ]
        )
    out["variants"] = variants
    position = {vid: k for k, vid in enumerate(st.variants)}
    out["pending"] = [_enc_segment(t, block, s) for s in st.pending]
    out.update(
        {
            "succ": _nested(t, st.succ, False),
            "outs": _flat(t, st.outs),
            "succ2": _nested(t, st.succ2, True),
            "outs2": _flat2(t, st.outs2),
            "counts": _flat(t, st.label_counts),
            "opened": _flat(t, st.opened),
            "since": [st.since_decay, st.since_refit, st.next_tid],
            "history": pack_indices([0 if x is None else t.lab(x) + 1 for x in st.history]),
            "starts": t.labs(st.starts),
            "index": pack([position[vid] for vid in st.key_index.values()]),
            "stats": [
                st.events,
                st.duplicates,
                st.late,
                st.noise_events,
                st.segments,
                st.shed,
                st.payload,
                st.check_at,
            ],
            "measured": list(st.measured),
            "retracted": list(st.retracted),
        }
    )
    out["events"] = block.finish()
    out["labels"] = list(t.labels)
    out["strings"] = list(t.strings)
    out["values"] = list(t.values)
    out["targets"] = t.target_rows
    return out
