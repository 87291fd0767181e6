"""Reading a discovery state back from its JSON data (the format is described in `codec`), strictly.

Why apart from the encoder: the decoder is the part that faces untrusted input (a changelog anyone with
write access to the topic can forge), so every field is type-checked and range-checked here before the
state's own classes are built, and a malformed state raises `StateError`, never a later failure in the hot
path. The encoder only ever sees states the miner built.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rote.discovery.codec import ROW
from rote.discovery.dedupe import SeenIds
from rote.discovery.model import (
    NO_TIME_HI,
    NO_TIME_LO,
    TARGET_FIELDS,
    Ev,
    Segment,
    Thread,
    UserState,
    Variant,
)
from rote.discovery.packing import bounded, unpack, unpack_small
from rote.errors import StateError
from rote.streams.schemas import MAX_ACTION_SECONDS

NO_TARGET: tuple[Any, ...] = (None,) * len(TARGET_FIELDS)
#: The longest alignment a segment may have (one entry per routine step; routines have at most a few hundred)
MAX_ALIGNMENT = 1 << 16
#: Counters stay below 2**53 (exact as floats)
MAX_COUNT = 1 << 53
#: How many instances a variant may keep (the budget sheds to 2; the default is 4)
MAX_KEEP = 1 << 10


def _fail(what: str) -> StateError:
    return StateError(f"invalid discovery state: {what}")


def _int(x: Any, what: str) -> int:
    if type(x) is not int:
        raise _fail(f"{what} must be an integer")
    if not NO_TIME_LO <= x <= NO_TIME_HI:  # times (µs) and their sentinels are the widest integers written
        raise _fail(f"{what} out of range")
    return x


def _count(x: Any, what: str) -> int:
    """A counter (occurrences, events, bytes, milliseconds): never negative, and small enough for the float
    arithmetic of scoring (a forged 10**60 decoded, then made learning raise OverflowError)."""
    n = _int(x, what)
    if not 0 <= n < MAX_COUNT:
        raise _fail(f"{what} out of range")
    return n


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


def _opt_duration(x: Any, what: str) -> float | None:
    """An event's own duration (seconds), as the event schema allows it: finite and not negative (a forged
    -5 or NaN decoded, then made the candidate's instance invalid in the hot path)."""
    d = _opt_num(x, what)
    if d is not None and not 0.0 <= d <= MAX_ACTION_SECONDS:
        raise _fail(f"{what} out of range")
    return d


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
                tgts[targets[k] - 1] if targets[k] else NO_TARGET,
                _opt_duration(durations[k], "event duration"),
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
            if (steps is not None and n != len(steps)) or not 0 <= n <= MAX_ALIGNMENT:
                # checked before the loop below: a forged `n` of 10**9 held a worker for 19 s and then
                # raised MemoryError, not StateError (an attacker's sweep)
                raise _fail("alignment length does not fit the routine")
            if mask < 0 or mask >> n or mask.bit_count() != limit:
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
            last_duration=_opt_duration(x[3], "segment duration"),
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
    if not all(labels):
        raise _fail("a label is empty")
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
            if fi == ROW:
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
    if not 1 <= st.keep_instances <= MAX_KEEP:
        raise _fail("keep out of range")
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
    st.since_decay, st.since_refit, st.next_tid = (_count(x, "since") for x in since)
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
    stats = [_count(x, "stat") for x in _list(data["stats"], "stats", 8)]
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
    n = [
        # last day, first and last seen are times (or their sentinels); the others are counters
        _int(a, "variant time") if k in (7, 8, 9) else _count(a, "variant count")
        for k, a in enumerate(_list(x[2], "variant counts", 13))
    ]
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
