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

Decoding the encoding gives a state that behaves exactly like the original (tested: same future
candidates, same encoding).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rote.discovery.dedupe import SeenIds
from rote.discovery.model import TARGET_FIELDS, Ev, Segment, Thread, UserState, Variant, target_values
from rote.discovery.packing import bounded, pack, pack_indices, pack_small, unpack, unpack_small
from rote.errors import StateError

_FIELD_INDEX = {name: i for i, name in enumerate(TARGET_FIELDS)}
_ROW = _FIELD_INDEX["row"]
_NO_TARGET: tuple[Any, ...] = (None,) * len(TARGET_FIELDS)


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
                    row += [fi, int(value) if fi == _ROW else self.s(str(value))]
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


# ------------------------------------------------------------------------------------------ decoding


def _fail(what: str) -> StateError:
    return StateError(f"invalid discovery state: {what}")


def _int(x: Any, what: str) -> int:
    if type(x) is not int:
        raise _fail(f"{what} must be an integer")
    return x


def _gap(x: Any) -> int:
    """An `Ev.gap` (in milliseconds) or a segment's idle time (in microseconds): not negative."""
    g = _int(x, "event gap")
    if not 0 <= g < 1 << 52:
        raise _fail("event gap out of range")
    return g


def _num(x: Any, what: str) -> float:
    if type(x) not in (int, float):
        raise _fail(f"{what} must be a number")
    return float(x)


def _str(x: Any, what: str) -> str:
    if type(x) is not str:
        raise _fail(f"{what} must be a string")
    return x


def _list(x: Any, what: str, n: int | None = None) -> list[Any]:
    if type(x) is not list:
        raise _fail(f"{what} must be a list")
    if n is not None and len(x) != n:
        raise _fail(f"{what} must have {n} fields")
    return x


def _bool(x: Any, what: str) -> bool:
    if type(x) is not bool:
        raise _fail(f"{what} must be a boolean")
    return x


def _opt_num(x: Any, what: str) -> float | None:
    return None if x is None else _num(x, what)


class _Reader:
    def __init__(
        self, labels: list[str], strings: list[str], values: list[str], targets: list[tuple[Any, ...]]
    ) -> None:
        self.labels = labels
        self.strings = strings
        self.values = values
        self.targets = targets

    def lab(self, i: Any) -> str:
        i = _int(i, "label index")
        if not 0 <= i < len(self.labels):
            raise _fail("label index out of range")
        return self.labels[i]

    def opt_lab(self, i: Any) -> str | None:
        return None if _int(i, "label index") == -1 else self.lab(i)

    def labs(self, xs: Any, what: str) -> list[str]:
        labels = self.labels
        return [labels[i] for i in bounded(unpack(xs, what), 0, len(labels), what)]

    def flat(self, xs: Any, what: str) -> dict[str, int]:
        xs = _list(xs, what, 2)
        keys = self.labs(xs[0], what)
        counts = unpack(xs[1], what)
        if len(keys) != len(counts):
            raise _fail(f"{what}: labels and counts differ in length")
        return dict(zip(keys, counts, strict=True))

    def flat2(self, xs: Any, what: str) -> dict[tuple[str, str], int]:
        xs = _list(xs, what, 2)
        keys = self.labs(xs[0], what)
        counts = unpack(xs[1], what)
        if len(keys) != 2 * len(counts):
            raise _fail(f"{what}: labels and counts differ in length")
        return {(keys[2 * k], keys[2 * k + 1]): c for k, c in enumerate(counts)}

    def nested(self, xs: Any, what: str, pair: bool) -> dict[Any, dict[str, int]]:
        xs = _list(xs, what, 2)
        shape = unpack(xs[0], what)
        counts = unpack(xs[1], what)
        out: dict[Any, dict[str, int]] = {}
        k = c = 0
        try:
            while k < len(shape):
                if pair:
                    key: Any = (self.lab(shape[k]), self.lab(shape[k + 1]))
                    k += 2
                else:
                    key = self.lab(shape[k])
                    k += 1
                n = shape[k]
                k += 1
                if n < 0 or k + n > len(shape) or c + n > len(counts):
                    raise _fail(f"{what} is truncated")
                out[key] = {self.lab(shape[k + j]): counts[c + j] for j in range(n)}
                k += n
                c += n
        except IndexError:
            raise _fail(f"{what} is truncated") from None
        if c != len(counts):
            raise _fail(f"{what}: counts left over")
        return out

    def load_events(self, x: Any) -> None:
        """The state's event block (see `_Block`); holders then `take` their events in order."""
        if type(x) is not list or len(x) not in (8, 9):
            raise _fail("events: expected a list of 8 or 9 columns")
        ids = _ids(x[0])
        n = len(ids)
        dts = unpack_small(x[1], "event times")
        cols = [unpack(x[k], "event column") for k in range(2, 7)]
        if len(dts) != n or any(len(c) != n for c in cols):
            raise _fail("event columns differ in length")
        durations: list[Any] = [None] * n if x[7] is None else _list(x[7], "event durations", n)
        gaps: list[int | None] = [None] * n
        if len(x) == 9:
            pairs = _list(x[8], "event gaps")
            if len(pairs) % 2:
                raise _fail("event gaps: index and value pairs")
            last = -1
            for k in range(0, len(pairs), 2):
                i = _int(pairs[k], "event gap index")
                if not last < i < n:
                    raise _fail("event gap index out of order or range")
                gaps[i] = 1000 * _gap(pairs[k + 1])
                last = i
        ns = len(self.strings)
        labels = [self.labels[i] for i in bounded(cols[0], 0, len(self.labels), "event labels")]
        apps = bounded(cols[1], 0, ns, "event apps")
        types = bounded(cols[2], 0, ns, "event types")
        values = bounded(cols[3], 0, len(self.values) + 1, "event values")
        targets = bounded(cols[4], 0, len(self.targets) + 1, "event targets")
        strings, vals, tgts = self.strings, self.values, self.targets
        self._rows = [
            (
                ids[k],
                dts[k],
                labels[k],
                strings[apps[k]],
                strings[types[k]],
                None if values[k] == 0 else vals[values[k] - 1],
                tgts[targets[k] - 1] if targets[k] else _NO_TARGET,
                _opt_num(durations[k], "event duration"),
                gaps[k],
            )
            for k in range(n)
        ]
        self._next = 0

    def take(self, ref: Any) -> list[Ev]:
        """The next events of the block, for a holder's ``[base time, unit, count]``."""
        ref = _list(ref, "event reference", 3)
        base = _int(ref[0], "events base time")
        unit = _int(ref[1], "event time unit")
        n = _int(ref[2], "event count")
        if unit not in (1, 1000) or n < 0 or self._next + n > len(self._rows):
            raise _fail("event reference out of range")
        rows = self._rows[self._next : self._next + n]
        self._next += n
        out = []
        ts = base
        for eid, dt, label, app, atype, value, target, dur, gap in rows:
            ts += dt * unit
            out.append(Ev(eid, ts, label, app, atype, value, target, dur, gap))
        return out

    def finished(self) -> bool:
        return self._next == len(self._rows)

    def segment(self, x: Any, steps: list[str] | None) -> Segment:
        if steps is not None:
            x = _list(x, "instance", 3)
            events: list[Ev] | None = self.take(x[1])
            if not events:
                raise _fail("a kept instance must have events")
            first, last = events[0], events[-1]
            x = [x[0], None, [first.ts, last.ts], last.duration, x[2]]
        else:
            if type(x) is not list or len(x) not in (5, 6):
                raise _fail("segment: expected a list of 5 or 6 fields")
            events = None if x[1] is None else self.take(x[1])
        times = _list(x[2], "segment times", 2)
        limit = len(events) if events is not None else 0
        if type(x[4]) is list and len(x[4]) == 2 and type(x[4][0]) is int and type(x[4][1]) is str:
            n, bits = x[4]
            try:
                mask = int(bits, 16)
            except ValueError:
                raise _fail("alignment bit set") from None
            if n < 0 or mask < 0 or mask >> n or mask.bit_count() != limit:
                raise _fail("alignment bit set does not fit the events")
            aligned: list[int | None] = []
            j = 0
            for k in range(n):
                if mask >> k & 1:
                    aligned.append(j)
                    j += 1
                else:
                    aligned.append(None)
        else:
            raw = bounded(unpack(x[4], "alignment"), 0, limit + 1, "alignment")
            aligned = [None if i == 0 else i - 1 for i in raw]
        if steps is not None and (events is None or len(aligned) != len(steps)):
            raise _fail("a kept instance must have its events and one alignment per step")
        if x[0] is None:
            if steps is None:
                raise _fail("segment key")
            key = tuple(steps)
        else:
            key = tuple(self.labs(x[0], "segment key"))
        first_ts, last_ts = _int(times[0], "segment start"), _int(times[1], "segment end")
        idle = _gap(x[5]) if len(x) == 6 else 0
        if idle and not idle <= last_ts - first_ts:
            raise _fail("segment idle time longer than the segment")
        return Segment(
            key=key,
            events=events,
            first_ts=first_ts,
            last_ts=last_ts,
            last_duration=_opt_num(x[3], "segment duration"),
            aligned=aligned,
            idle=idle,
        )


def _ids(x: Any) -> list[str]:
    out = []
    prev = ""
    for item in _list(x, "event ids"):
        text = _str(item, "event id")
        head, sep, rest = text.partition(":")
        if not sep or not head.isdigit() or len(head) > 3 or int(head) > len(prev):
            raise _fail("event id is not prefix-encoded")
        prev = prev[: int(head)] + rest
        if not prev:
            raise _fail("empty event id")
        out.append(prev)
    return out


_KEYS = frozenset(
    [
        "kind",
        "version",
        "user",
        "keep",
        "seen",
        "ties",
        "heap",
        "seq",
        "clock",
        "prev",
        "succ",
        "outs",
        "succ2",
        "outs2",
        "counts",
        "opened",
        "since",
        "threads",
        "history",
        "starts",
        "warmup",
        "variants",
        "index",
        "pending",
        "stats",
        "measured",
        "retracted",
        "labels",
        "strings",
        "values",
        "targets",
        "events",
    ]
)


def decode_state(st: UserState, data: Any) -> None:
    if type(data) is not dict:
        raise _fail("not an object")
    if set(data) != _KEYS:
        raise _fail(f"unexpected or missing fields: {sorted(set(data) ^ _KEYS)}")
    if data["kind"] != UserState.STATE_KIND:
        raise _fail(f"kind {data['kind']!r} is not {UserState.STATE_KIND!r}")
    if data["version"] != UserState.STATE_VERSION:
        raise _fail(f"version {data['version']!r} is not {UserState.STATE_VERSION}")
    labels = [_str(x, "label") for x in _list(data["labels"], "labels")]
    strings = [_str(x, "string") for x in _list(data["strings"], "strings")]
    values = [_str(x, "value") for x in _list(data["values"], "values")]
    targets: list[tuple[Any, ...]] = []
    for row in _list(data["targets"], "targets"):
        ints = unpack(row, "target")
        if len(ints) % 2 or not ints:
            raise _fail("target must have field/value pairs")
        tgt: list[Any] = [None] * len(TARGET_FIELDS)
        for k in range(0, len(ints), 2):
            fi, val = ints[k], ints[k + 1]
            if not 0 <= fi < len(TARGET_FIELDS):
                raise _fail("target field out of range")
            if fi == _ROW:
                tgt[fi] = val
            else:
                if not 0 <= val < len(strings):
                    raise _fail("target string out of range")
                tgt[fi] = strings[val]
        targets.append(tuple(tgt))
    r = _Reader(labels, strings, values, targets)
    r.load_events(data["events"])
    st.user_id = _str(data["user"], "user")
    st.keep_instances = _int(data["keep"], "keep")
    st.seen = SeenIds.from_data(data["seen"])
    st.tie_ids = [_str(x, "tie id") for x in _list(data["ties"], "ties")]
    heap = _list(data["heap"], "heap", 2)
    seqs = unpack(heap[0], "heap sequence")
    evs = r.take(heap[1])
    if len(seqs) != len(evs):
        raise _fail("heap sequence and events differ in length")
    st.heap = sorted(((e.ts, s, e) for s, e in zip(seqs, evs, strict=True)), key=lambda it: (it[0], it[1]))
    st.held = {e.event_id for e in evs}
    st.seq = _int(data["seq"], "seq")
    clock = _list(data["clock"], "clock", 2)
    st.max_ts, st.released_ts = _int(clock[0], "clock"), _int(clock[1], "clock")
    prev = _list(data["prev"], "prev", 2)
    st.prev2_label, st.prev_label = r.opt_lab(prev[0]), r.opt_lab(prev[1])
    st.succ = r.nested(data["succ"], "successors", False)
    st.outs = r.flat(data["outs"], "successor totals")
    st.succ2 = r.nested(data["succ2"], "second-order successors", True)
    st.outs2 = r.flat2(data["outs2"], "second-order totals")
    st.label_counts = r.flat(data["counts"], "label counts")
    st.total_count = sum(st.label_counts.values())
    st.opened = r.flat(data["opened"], "opened")
    st.n_pairs = sum(len(d) for d in st.succ.values())
    st.n_triples = sum(len(d) for d in st.succ2.values())
    st.label_chars = sum(len(x) for x in st.label_counts)
    since = _list(data["since"], "since", 3)
    st.since_decay, st.since_refit, st.next_tid = (_int(x, "since") for x in since)
    st.warmup = None if data["warmup"] is None else r.take(data["warmup"])
    st.threads = []
    for row in _list(data["threads"], "threads"):
        row = _list(row, "thread", 9)
        st.threads.append(
            Thread(
                tid=_int(row[0], "thread id"),
                first=r.lab(row[1]),
                size=_int(row[2], "thread size"),
                last=r.lab(row[3]),
                last_n=_int(row[4], "thread position"),
                last_ts=_int(row[5], "thread time"),
                prev=r.opt_lab(row[6]),
                open=r.take(row[7]),
                hist=[
                    None if i == 0 else labels[i - 1]
                    for i in bounded(unpack(row[8], "thread history"), 0, len(labels) + 1, "thread history")
                ],
            )
        )
    hist = bounded(unpack(data["history"], "history"), 0, len(labels) + 1, "history")
    st.history = deque(None if i == 0 else labels[i - 1] for i in hist)
    st.starts = r.labs(data["starts"], "starts")
    st.start_set = frozenset(st.starts)
    st.variants = {}
    for x in _list(data["variants"], "variants"):
        v = _variant(r, x)
        st.variants[v.vid] = v
    st.key_index = {}
    listed = list(st.variants.values())
    for k in bounded(unpack(data["index"], "index"), 0, len(listed), "index"):
        v = listed[k]
        st.key_index[tuple(v.steps)] = v.vid
    st.pending = deque(r.segment(s, None) for s in _list(data["pending"], "pending"))
    if not r.finished():
        raise _fail("events no holder refers to")
    stats = [_int(x, "stat") for x in _list(data["stats"], "stats", 8)]
    st.events, st.duplicates, st.late, st.noise_events, st.segments, st.shed, st.payload, st.check_at = stats
    measured = _list(data["measured"], "measured", 7)
    st.measured = [_int(x, "measure") for x in measured[:4]] + [
        _num(measured[4], "measure"),
        _int(measured[5], "measure"),
        _int(measured[6], "measure"),
    ]
    st.retracted = [_str(x, "retracted id") for x in _list(data["retracted"], "retracted")]


def _variant(r: _Reader, x: Any) -> Variant:
    x = _list(x, "variant", 8)
    n = [_int(a, "variant count") for a in _list(x[2], "variant counts", 13)]
    v = Variant(vid=_str(x[0], "variant id"), steps=r.labs(x[1], "steps"))
    if not v.steps:
        raise _fail("a variant must have steps")
    (
        v.count,
        v.exact,
        v.split_checked_at,
        v.version,
        v.emitted_count,
        v.emitted_steps,
        v.n_days,
        v.last_day,
        v.first_seen,
        v.last_seen,
        v.fitness_milli,
        v.duration_ms,
        v.emitted_at,
    ) = n
    v.last_score = _num(x[3], "variant score")
    kc = _list(x[4], "key counts", 2)
    hashes, counts = unpack(kc[0], "key counts"), unpack(kc[1], "key counts")
    if len(hashes) != len(counts):
        raise _fail("key counts differ in length")
    v.key_counts = dict(zip(hashes, counts, strict=True))
    v.from_split = _bool(x[5], "from split")
    v.instances = deque(r.segment(s, v.steps) for s in _list(x[6], "instances"))
    keys = _list(x[7], "recent keys", 2)
    distinct = [tuple(r.labs(k, "recent key")) for k in _list(keys[0], "recent keys")]
    v.recent_keys = deque(
        distinct[i] for i in bounded(unpack(keys[1], "recent keys"), 0, len(distinct), "key")
    )
    return v
