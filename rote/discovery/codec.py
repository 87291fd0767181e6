"""`UserState` to JSON data and back: compact, exact, and strict about what it accepts.

Why a hand-written codec: the state is read back from a Kafka changelog, so decoding must never build
anything but the state's own classes (no pickle) and must reject malformed data with `StateError` instead
of failing later in the hot path. It must also be small (the per-user budget is 20 kB whatever the history),
so labels and repeated strings are written once in tables and sequences refer to them by index, and event
times are integer microseconds written as deltas. Decoding the encoding gives a state that behaves exactly
like the original (tested: same future candidates).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Any

from rote.discovery.model import TARGET_FIELDS, Ev, Segment, Thread, UserState, Variant, target_dict
from rote.errors import StateError

_FIELD_INDEX = {name: i for i, name in enumerate(TARGET_FIELDS)}


class _Tables:
    """Labels and strings written once, referred to by index."""

    def __init__(self) -> None:
        self.labels: dict[str, int] = {}
        self.strings: dict[str, int] = {}

    def lab(self, label: str) -> int:
        i = self.labels.get(label)
        if i is None:
            i = self.labels[label] = len(self.labels)
        return i

    def labs(self, labels: Any) -> list[int]:
        return [self.lab(x) for x in labels]

    def s(self, text: str) -> int:
        i = self.strings.get(text)
        if i is None:
            i = self.strings[text] = len(self.strings)
        return i


def _enc_target(t: _Tables, target: Any) -> list[Any]:
    out: list[Any] = []
    for name, value in target_dict(target).items():
        fi = _FIELD_INDEX.get(name)
        if fi is None:
            continue
        if name == "row":
            out += [fi, int(value)]
        else:
            out += [fi, t.s(str(value))]
    return out


def _enc_events(t: _Tables, events: list[Ev]) -> list[Any]:
    """[base_ts, [event_id, dts, label, app, type, value, target, duration], ...]"""
    if not events:
        return []
    base = events[0].ts
    rows: list[Any] = [base]
    for e in events:
        rows.append(
            [
                e.event_id,
                e.ts - base,
                t.lab(e.label),
                t.s(e.app),
                t.s(e.action_type),
                e.value,
                _enc_target(t, e.target),
                e.duration,
            ]
        )
    return rows


def _enc_segment(t: _Tables, seg: Segment) -> list[Any]:
    return [_enc_events(t, seg.events), t.labs(seg.key), [-1 if i is None else i for i in seg.aligned]]


def encode_state(st: UserState) -> dict[str, Any]:
    t = _Tables()
    variants = []
    for v in st.variants.values():
        variants.append(
            {
                "vid": v.vid,
                "steps": t.labs(v.steps),
                "created": v.created,
                "n": [v.count, v.exact, v.split_checked_at, v.version, v.emitted_count],
                "f": [v.fitness_sum, v.duration_sum, v.emitted_score, v.last_score],
                "seen": [v.first_seen, v.last_seen],
                "days": sorted(v.days),
                "inst": [_enc_segment(t, s) for s in v.instances],
                "keys": [[t.labs(k), n] for k, n in v.key_counts.items()],
                "split": v.from_split,
                "esteps": t.labs(v.emitted_steps),
                "ename": v.emitted_name,
            }
        )
    heap = sorted(st.heap)
    out: dict[str, Any] = {
        "kind": UserState.STATE_KIND,
        "version": UserState.STATE_VERSION,
        "user": st.user_id,
        "keep": st.keep_instances,
        "ids": list(st.recent_ids),
        "heap": [[seq for _, seq, _ in heap], _enc_events_loose(t, [e for _, _, e in heap])],
        "seq": st.seq,
        "clock": [st.max_ts, st.released_ts],
        "prev": [None if x is None else t.lab(x) for x in (st.prev2_label, st.prev_label)],
        "triples": [[t.lab(a), t.lab(b), t.lab(c), n] for (a, b, c), n in st.triples.items()],
        "out2": [[t.lab(a), t.lab(b), n] for (a, b), n in st.out2.items()],
        "pairs": [[t.lab(a), t.lab(b), n] for (a, b), n in st.pairs.items()],
        "out": [[t.lab(a), n] for a, n in st.out.items()],
        "counts": [[t.lab(a), n] for a, n in st.label_counts.items()],
        "opened": [[t.lab(a), n] for a, n in st.opened.items()],
        "since": [st.since_decay, st.since_refit, st.next_tid],
        "total": st.total_count,
        "threads": [
            [
                th.tid,
                t.lab(th.first),
                th.size,
                t.lab(th.last),
                th.last_n,
                th.last_ts,
                None if th.prev is None else t.lab(th.prev),
                _enc_events(t, th.open),
                t.labs(th.hist),
            ]
            for th in st.threads
        ],
        "history": t.labs(st.history),
        "starts": t.labs(st.starts),
        "warmup": None if st.warmup is None else _enc_events_loose(t, st.warmup),
        "variants": variants,
        "key_index": [[t.labs(k), vid] for k, vid in st.key_index.items()],
        "pending": [_enc_segment(t, s) for s in st.pending],
        "stats": [st.events, st.duplicates, st.late, st.noise_events, st.segments],
        "retracted": list(st.retracted),
    }
    out["labels"] = list(t.labels)
    out["strings"] = list(t.strings)
    return out


def _enc_events_loose(t: _Tables, events: list[Ev]) -> list[Any]:
    """Events not in time order (the lateness heap): absolute times."""
    return [
        [
            e.event_id,
            e.ts,
            t.lab(e.label),
            t.s(e.app),
            t.s(e.action_type),
            e.value,
            _enc_target(t, e.target),
            e.duration,
        ]
        for e in events
    ]


# ------------------------------------------------------------------------------------------ decoding


def _fail(what: str) -> StateError:
    return StateError(f"invalid discovery state: {what}")


def _int(x: Any, what: str) -> int:
    if type(x) is not int:
        raise _fail(f"{what} must be an integer")
    return x


def _num(x: Any, what: str) -> float:
    if type(x) not in (int, float):
        raise _fail(f"{what} must be a number")
    return float(x)


def _str(x: Any, what: str) -> str:
    if type(x) is not str:
        raise _fail(f"{what} must be a string")
    return x


def _opt_str(x: Any, what: str) -> str | None:
    return None if x is None else _str(x, what)


def _list(x: Any, what: str) -> list[Any]:
    if type(x) is not list:
        raise _fail(f"{what} must be a list")
    return x


def _bool(x: Any, what: str) -> bool:
    if type(x) is not bool:
        raise _fail(f"{what} must be a boolean")
    return x


class _Reader:
    def __init__(self, labels: list[str], strings: list[str]) -> None:
        self.labels = labels
        self.strings = strings

    def lab(self, i: Any) -> str:
        i = _int(i, "label index")
        if not 0 <= i < len(self.labels):
            raise _fail("label index out of range")
        return self.labels[i]

    def labs(self, xs: Any, what: str) -> list[str]:
        return [self.lab(i) for i in _list(xs, what)]

    def s(self, i: Any) -> str:
        i = _int(i, "string index")
        if not 0 <= i < len(self.strings):
            raise _fail("string index out of range")
        return self.strings[i]

    def target(self, xs: Any) -> dict[str, Any]:
        xs = _list(xs, "target")
        if len(xs) % 2:
            raise _fail("target must have field/value pairs")
        out: dict[str, Any] = {}
        for k in range(0, len(xs), 2):
            fi = _int(xs[k], "target field")
            if not 0 <= fi < len(TARGET_FIELDS):
                raise _fail("target field out of range")
            name = TARGET_FIELDS[fi]
            out[name] = _int(xs[k + 1], "target row") if name == "row" else self.s(xs[k + 1])
        return out

    def event(self, row: Any, base: int) -> Ev:
        row = _list(row, "event")
        if len(row) != 8:
            raise _fail("event must have 8 fields")
        dur = row[7]
        return Ev(
            event_id=_str(row[0], "event id"),
            ts=base + _int(row[1], "event time"),
            label=self.lab(row[2]),
            app=self.s(row[3]),
            action_type=self.s(row[4]),
            value=_opt_str(row[5], "event value"),
            target=self.target(row[6]),
            duration=None if dur is None else _num(dur, "event duration"),
        )

    def events(self, xs: Any) -> list[Ev]:
        xs = _list(xs, "events")
        if not xs:
            return []
        base = _int(xs[0], "events base time")
        return [self.event(r, base) for r in xs[1:]]

    def loose(self, xs: Any) -> list[Ev]:
        return [self.event(r, 0) for r in _list(xs, "events")]

    def segment(self, x: Any) -> Segment:
        x = _list(x, "segment")
        if len(x) != 3:
            raise _fail("segment must have 3 fields")
        events = self.events(x[0])
        aligned: list[int | None] = []
        for i in _list(x[2], "alignment"):
            i = _int(i, "alignment index")
            if not -1 <= i < len(events):
                raise _fail("alignment index out of range")
            aligned.append(None if i < 0 else i)
        return Segment(events=events, key=tuple(self.labs(x[1], "segment key")), aligned=aligned)


def _pairs(x: Any, what: str, n: int) -> list[list[Any]]:
    rows = _list(x, what)
    for r in rows:
        if type(r) is not list or len(r) != n:
            raise _fail(f"{what} rows must have {n} fields")
    return rows


_KEYS = frozenset(
    [
        "kind",
        "version",
        "user",
        "keep",
        "ids",
        "heap",
        "seq",
        "clock",
        "prev",
        "triples",
        "out2",
        "pairs",
        "out",
        "counts",
        "opened",
        "since",
        "total",
        "threads",
        "history",
        "starts",
        "warmup",
        "variants",
        "key_index",
        "pending",
        "stats",
        "retracted",
        "labels",
        "strings",
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
    r = _Reader(labels, strings)
    st.user_id = _str(data["user"], "user")
    st.keep_instances = _int(data["keep"], "keep")
    st.recent_ids = OrderedDict((_str(i, "event id"), None) for i in _list(data["ids"], "ids"))
    heap = _list(data["heap"], "heap")
    if len(heap) != 2:
        raise _fail("heap must have 2 fields")
    seqs = [_int(s, "heap sequence") for s in _list(heap[0], "heap sequence")]
    evs = r.loose(heap[1])
    if len(seqs) != len(evs):
        raise _fail("heap sequence and events differ in length")
    st.heap = sorted((e.ts, s, e) for s, e in zip(seqs, evs, strict=True))
    st.seq = _int(data["seq"], "seq")
    clock = _list(data["clock"], "clock")
    if len(clock) != 2:
        raise _fail("clock must have 2 fields")
    st.max_ts, st.released_ts = _int(clock[0], "clock"), _int(clock[1], "clock")
    prev = _list(data["prev"], "prev")
    if len(prev) != 2:
        raise _fail("prev must have 2 fields")
    st.prev2_label, st.prev_label = (None if x is None else r.lab(x) for x in prev)
    st.triples = {
        (r.lab(a), r.lab(b), r.lab(c)): _num(n, "triple count")
        for a, b, c, n in _pairs(data["triples"], "triples", 4)
    }
    st.out2 = {(r.lab(a), r.lab(b)): _num(n, "out2 count") for a, b, n in _pairs(data["out2"], "out2", 3)}
    st.pairs = {(r.lab(a), r.lab(b)): _num(n, "pair count") for a, b, n in _pairs(data["pairs"], "pairs", 3)}
    st.out = {r.lab(a): _num(n, "out count") for a, n in _pairs(data["out"], "out", 2)}
    st.label_counts = {r.lab(a): _num(n, "label count") for a, n in _pairs(data["counts"], "counts", 2)}
    st.opened = {r.lab(a): _num(n, "opened count") for a, n in _pairs(data["opened"], "opened", 2)}
    since = _list(data["since"], "since")
    if len(since) != 3:
        raise _fail("since must have 3 fields")
    st.since_decay, st.since_refit, st.next_tid = (_int(x, "since") for x in since)
    st.total_count = _num(data["total"], "total count")
    st.threads = []
    for row in _pairs(data["threads"], "threads", 9):
        st.threads.append(
            Thread(
                tid=_int(row[0], "thread id"),
                first=r.lab(row[1]),
                size=_int(row[2], "thread size"),
                last=r.lab(row[3]),
                last_n=_int(row[4], "thread position"),
                last_ts=_int(row[5], "thread time"),
                prev=None if row[6] is None else r.lab(row[6]),
                open=r.events(row[7]),
                hist=r.labs(row[8], "thread history"),
            )
        )
    st.history = deque(r.labs(data["history"], "history"))
    st.starts = r.labs(data["starts"], "starts")
    st.start_set = frozenset(st.starts)
    st.warmup = None if data["warmup"] is None else r.loose(data["warmup"])
    st.variants = {}
    for x in _list(data["variants"], "variants"):
        v = _variant(r, x)
        st.variants[v.vid] = v
    st.key_index = {}
    for k, vid in _pairs(data["key_index"], "key_index", 2):
        st.key_index[tuple(r.labs(k, "key"))] = _str(vid, "variant id")
    st.pending = deque(r.segment(s) for s in _list(data["pending"], "pending"))
    stats = _list(data["stats"], "stats")
    if len(stats) != 5:
        raise _fail("stats must have 5 fields")
    st.events, st.duplicates, st.late, st.noise_events, st.segments = (_int(x, "stat") for x in stats)
    st.retracted = [_str(x, "retracted id") for x in _list(data["retracted"], "retracted")]


_VKEYS = {"vid", "steps", "created", "n", "f", "seen", "days", "inst", "keys", "split", "esteps", "ename"}


def _variant(r: _Reader, x: Any) -> Variant:
    if type(x) is not dict or set(x) != _VKEYS:
        raise _fail("variant fields")
    n = _list(x["n"], "variant counts")
    f = _list(x["f"], "variant sums")
    seen = _list(x["seen"], "variant seen")
    if len(n) != 5 or len(f) != 4 or len(seen) != 2:
        raise _fail("variant tallies")
    v = Variant(
        vid=_str(x["vid"], "variant id"),
        steps=r.labs(x["steps"], "steps"),
        created=_int(x["created"], "created"),
    )
    v.count, v.exact, v.split_checked_at, v.version, v.emitted_count = (_int(a, "variant count") for a in n)
    v.fitness_sum, v.duration_sum, v.emitted_score, v.last_score = (_num(a, "variant sum") for a in f)
    v.first_seen, v.last_seen = _int(seen[0], "first seen"), _int(seen[1], "last seen")
    v.days = {_int(d, "day") for d in _list(x["days"], "days")}
    v.instances = deque(r.segment(s) for s in _list(x["inst"], "instances"))
    v.key_counts = Counter()
    for k, c in _pairs(x["keys"], "key counts", 2):
        v.key_counts[tuple(r.labs(k, "key"))] = _int(c, "key count")
    v.from_split = _bool(x["split"], "from split")
    v.emitted_steps = tuple(r.labs(x["esteps"], "emitted steps"))
    v.emitted_name = _str(x["ename"], "emitted name")
    return v
