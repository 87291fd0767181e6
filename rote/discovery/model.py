"""The data discovery keeps per user: events, segments, variants, threads and the state that holds them.

Everything here is plain data. `UserState` is what the Faust agent stores per user; it is bounded whatever
the length of the user's history (see `DiscoveryConfig` for each bound, and `RoutineDiscoverer` for the
byte budget it enforces) and it encodes to JSON data with `UserState.to_state` and back with
`UserState.from_state` (`rote.discovery.codec`, `rote.discovery.codec_read`), never with pickle: a record
read back from a changelog can only ever become these classes.

Targets are kept by reference as the producer handed them (a pydantic model, a msgspec Struct, or after a
restore a plain dict): reading their attributes is deferred to the rare moments a candidate is built or the
state is encoded, so the hot path never copies them.

Transition counts are integers (halved with the floor at each decay), so the state encodes exactly and
compactly.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import msgspec

from rote.discovery.dedupe import SeenIds

#: Microseconds per second; event times are integer microseconds since the epoch.
US = 1_000_000
#: "No time yet" sentinels (beyond any valid timestamp, exact in JSON).
NO_TIME_LO = -(1 << 62)
NO_TIME_HI = 1 << 62

#: Target attributes discovery reads, in a fixed order (the encoding relies on it).
TARGET_FIELDS: tuple[str, ...] = (
    "field",
    "element",
    "element_type",
    "workbook",
    "sheet",
    "cell",
    "column",
    "row",
    "url",
    "file",
    "title",
)


_NO_TARGET: tuple[Any, ...] = (None,) * len(TARGET_FIELDS)


def target_values(target: Any) -> tuple[Any, ...]:
    """The target's attributes as a tuple in `TARGET_FIELDS` order (models, Structs, dicts, tuples).

    Why a tuple: the state encoder and the candidate builder read every kept event's target, and the two
    forms producers hand in (msgspec `FastTarget`, pydantic `Target`) declare exactly these fields in this
    order, so one C-level call reads them all. A restored state keeps targets in this form.
    """
    if target is None:
        return _NO_TARGET
    cls = type(target)
    kind = _TARGET_KIND.get(cls)
    if kind is None:
        kind = _TARGET_KIND[cls] = _target_kind(cls)
    if kind == 0:
        return target
    if kind == 1:
        return msgspec.structs.astuple(target)
    if kind == 2:
        return tuple(target.get(n) for n in TARGET_FIELDS)
    if kind == 3:
        d = target.__dict__
        if tuple(d) == TARGET_FIELDS:
            return tuple(d.values())
    return tuple(getattr(target, n, None) for n in TARGET_FIELDS)


#: How to read each target class seen (0 tuple, 1 Struct with our fields, 2 dict, 3 model, 4 attributes).
_TARGET_KIND: dict[type, int] = {}


def _target_kind(cls: type) -> int:
    if cls is tuple:
        return 0
    if issubclass(cls, msgspec.Struct) and cls.__struct_fields__ == TARGET_FIELDS:
        return 1
    if issubclass(cls, dict):
        return 2
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict) and tuple(fields) == TARGET_FIELDS:
        return 3
    return 4


def target_dict(target: Any) -> dict[str, Any]:
    """The target's set attributes as a dict (works on models, Structs, dicts and tuples alike)."""
    return {n: v for n, v in zip(TARGET_FIELDS, target_values(target), strict=True) if v is not None}


def key_hash(key: tuple[str, ...] | list[str]) -> int:
    """A stable 32-bit digest of a label sequence (what variants count absorbed sequences by)."""
    return zlib.crc32("\x1f".join(key).encode("utf-8", "surrogatepass"))


class Ev(msgspec.Struct, gc=False):
    """The part of an action discovery keeps. A msgspec Struct: one is made for every action, and a Struct
    is made four times faster than a slotted dataclass (it holds no reference cycles, so it stays out of the
    garbage collector's tracking too)."""

    event_id: str
    #: event time in integer microseconds since the epoch (exact, so an encoded state round-trips exactly)
    ts: int
    label: str
    app: str
    action_type: str
    value: str | None
    target: Any
    duration: float | None
    #: microseconds (whole milliseconds) since the user's previous event, kept only where another event (of
    #: another routine, or noise) came between this one and its predecessor in its segment: the step then
    #: took this long, not the whole interval (interleaved work), and the instance's duration leaves the
    #: rest out
    gap: int | None = None


@dataclass(slots=True)
class Segment:
    """One observed occurrence: the key (labels of its frequent events) and, while it may still become a
    kept instance, its events.

    In a variant's store `events` are exactly the events aligned to the variant's steps, in step order, and
    `aligned[k]` is the index of step k's event (None: step missing). A pending segment keeps all its events
    (`aligned` empty) until it is one of the oldest, when only its key and times remain (`events` None): it
    still counts as an occurrence but is never a kept instance.
    """

    key: tuple[str, ...]
    events: list[Ev] | None
    first_ts: int
    last_ts: int
    last_duration: float | None = None
    aligned: list[int | None] = field(default_factory=list)
    #: once `events` are gone: microseconds of the span spent on other work (`Ev.gap`), so the occurrence's
    #: duration still leaves them out
    idle: int = 0
    #: the encoder's table-independent work on `events` (valid while `events` is that same list)
    enc: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    def forget_events(self) -> None:
        """Keep only the key and times (and the time spent on other work within them)."""
        events = self.events
        if events is not None:
            key = set(self.key)
            present = [i for i, e in enumerate(events) if e.label in key]
            if present:
                edges = events[present[0]].ts - self.first_ts + self.last_ts - events[present[-1]].ts
                self.idle = max(0, edges) + idle_within(events, present, note=False)
            self.events = None


def idle_within(events: Sequence[Ev], present: Sequence[int], *, note: bool = True) -> int:
    """Microseconds between the first and last of the `present` events (indices, in order) spent on other
    work: where another event came between two of them (another routine's, noise, or one of `events` that
    is not present), only the time since it counts (`Ev.gap`). `note`: write that time into the event's
    `gap`, so its step time says the same."""
    idle = 0
    if not present:
        return 0
    prev_i = present[0]
    for i in present[1:]:
        e = events[i]
        g = e.gap
        if i != prev_i + 1:
            d = (e.ts - events[i - 1].ts) // 1000 * 1000
            if g is None or d < g:
                g = d
                if note:
                    e.gap = d
        span = e.ts - events[prev_i].ts
        if g is not None and g < span:
            idle += span - g
        prev_i = i
    return idle


@dataclass(slots=True)
class Thread:
    """One line of work in progress: the instance a person is doing, which other work may interrupt.

    `open` is the segment being built (cut before routine starts), `hist` the labels routed here that the
    start estimator has not yet seen in `UserState.history`.
    """

    tid: int
    first: str
    size: int
    last: str
    last_n: int
    last_ts: int
    prev: str | None = None  # the action before `last` in this thread
    open: list[Ev] = field(default_factory=list)
    #: (None: a label the statistics forgot, a blank in the window)
    hist: list[str | None] = field(default_factory=list)


@dataclass
class Variant:
    """One routine variant: a step sequence with its tallies and a few kept instances."""

    vid: str
    steps: list[str]
    count: int = 0
    exact: int = 0
    #: sums over occurrences of the share of steps present (in thousandths) and of the duration (in ms):
    #: integers, so the state encodes exactly and briefly
    fitness_milli: int = 0
    duration_ms: int = 0
    first_seen: int = NO_TIME_HI
    last_seen: int = NO_TIME_LO
    #: distinct days an occurrence started on (counted as days advance) and the latest such day
    n_days: int = 0
    last_day: int = NO_TIME_LO
    instances: deque[Segment] = field(default_factory=deque)
    #: occurrences absorbed per label sequence (by `key_hash`), the few most common
    key_counts: dict[int, int] = field(default_factory=dict)
    #: the label sequences of the most recent occurrences (the evidence for a split; far cheaper to keep
    #: than the instances themselves)
    recent_keys: deque[tuple[str, ...]] = field(default_factory=deque)
    split_checked_at: int = 0
    from_split: bool = False
    version: int = 0
    emitted_count: int = 0
    #: `key_hash` of the steps last emitted (a change of steps is a new version)
    emitted_steps: int = 0
    #: the user's event count when this variant was last emitted
    emitted_at: int = 0
    last_score: float = 0.0


class UserState:
    """One user's (or team's) discovery state; see the module docstring."""

    STATE_KIND: ClassVar[str] = "rote.discovery.user"
    STATE_VERSION: ClassVar[int] = 2

    # slots: every attribute is read on the per-action path
    __slots__ = (
        "check_at",
        "duplicates",
        "events",
        "heap",
        "held",
        "history",
        "keep_instances",
        "key_index",
        "label_chars",
        "label_counts",
        "late",
        "max_ts",
        "measured",
        "n_pairs",
        "n_triples",
        "next_tid",
        "noise_events",
        "opened",
        "outs",
        "outs2",
        "payload",
        "pending",
        "prev2_label",
        "prev_label",
        "released_ts",
        "retracted",
        "seen",
        "segments",
        "seq",
        "shed",
        "since_decay",
        "since_refit",
        "start_set",
        "starts",
        "succ",
        "succ2",
        "threads",
        "tie_ids",
        "total_count",
        "user_id",
        "variants",
        "warmup",
    )

    def __init__(self, user_id: str, *, keep_instances: int = 4, dedupe_window: int = 320) -> None:
        self.user_id = user_id
        self.keep_instances = keep_instances
        # ingest
        self.seen = SeenIds(dedupe_window)
        self.tie_ids: list[str] = []  # ids processed at exactly `released_ts`
        self.heap: list[tuple[int, int, Ev]] = []
        self.held: set[str] = set()  # ids in `heap` (derived, not encoded)
        self.seq = 0
        self.max_ts = NO_TIME_LO
        self.released_ts = NO_TIME_LO
        # transition statistics of the raw stream (integers, halved at each decay)
        self.prev_label: str | None = None
        self.prev2_label: str | None = None
        self.succ: dict[str, dict[str, int]] = {}
        self.outs: dict[str, int] = {}
        self.succ2: dict[tuple[str, str], dict[str, int]] = {}
        self.outs2: dict[tuple[str, str], int] = {}
        self.label_counts: dict[str, int] = {}
        self.total_count = 0  # sum of label_counts (decayed alike)
        self.opened: dict[str, int] = {}  # how often each label opened a thread that lived on
        self.n_pairs = 0  # entries in `succ` and in `succ2` (derived, not encoded)
        self.n_triples = 0
        self.label_chars = 0  # characters of the labels in `label_counts` (derived, not encoded)
        self.since_decay = 0
        # threads and segmentation
        self.threads: list[Thread] = []
        self.next_tid = 0
        #: labels in thread order for the start estimator (None: a label too rare to matter when it retired)
        self.history: deque[str | None] = deque()
        self.since_refit = 0
        self.starts: list[str] = []
        self.start_set: frozenset[str] = frozenset()  # derived from `starts`, not encoded
        #: events of the warm-up (None once warmed up)
        self.warmup: list[Ev] | None = []
        # variants
        self.variants: dict[str, Variant] = {}
        self.key_index: dict[tuple[str, ...], str] = {}
        self.pending: deque[Segment] = deque()
        # counters
        self.events = 0
        self.duplicates = 0
        self.late = 0
        self.noise_events = 0
        self.segments = 0
        self.retracted: list[str] = []
        #: times the byte budget had to shed data (kept instances, pending segments, variants)
        self.shed = 0
        #: the last exact measure of the encoded size, the events held then, when (event count), the
        #: characters of the known labels then, bytes per held event, `payload` then, and the length of the
        #: start estimator's window then (`budget.py`)
        self.measured: list[int | float] = [0, 0, 0, 0, 0.0, 0, 0]
        #: characters of the ids, values and labels of all events taken in (what held events weigh), and
        #: the payload at which the byte budget is next checked
        self.payload = 0
        self.check_at = 0

    def to_state(self) -> dict[str, Any]:
        """JSON data only (dicts with str keys, lists, str, int, float, bool, None)."""
        from rote.discovery.codec import encode_state

        return encode_state(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Self:
        """Rebuild a state from `to_state` data; raises `rote.errors.StateError` on anything malformed."""
        from rote.discovery.codec_read import decode_state

        state = cls.__new__(cls)
        decode_state(state, data)
        return state

    def encoded_size(self) -> int:
        """Bytes of the JSON encoding of `to_state()`: what a changelog stores for this user."""
        import json

        return len(json.dumps(self.to_state(), separators=(",", ":"), ensure_ascii=False).encode())
