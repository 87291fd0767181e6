"""The data discovery keeps per user: events, segments, variants, threads and the state that holds them.

Everything here is plain data. `UserState` is what the Faust agent stores per user; it is bounded whatever
the length of the user's history (see `DiscoveryConfig` for each bound) and it encodes to JSON data with
`UserState.to_state` and back with `UserState.from_state` (`rote.discovery.codec`), never with pickle: a
record read back from a changelog can only ever become these classes.

Targets are kept by reference as the producer handed them (a pydantic model, a msgspec Struct, or after a
restore a plain dict): reading their attributes is deferred to the rare moments a candidate is built or the
state is encoded, so the hot path never copies them.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

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


def target_dict(target: Any) -> dict[str, Any]:
    """The target's set attributes as a dict (works on models, Structs and dicts alike)."""
    if target is None:
        return {}
    if isinstance(target, dict):
        return {k: v for k, v in target.items() if v is not None}
    out: dict[str, Any] = {}
    for name in TARGET_FIELDS:
        v = getattr(target, name, None)
        if v is not None:
            out[name] = v
    return out


@dataclass(slots=True)
class Ev:
    """The part of an action discovery keeps."""

    event_id: str
    #: event time in integer microseconds since the epoch (exact, so an encoded state round-trips exactly)
    ts: int
    label: str
    app: str
    action_type: str
    value: str | None
    target: Any
    duration: float | None


@dataclass(slots=True)
class Segment:
    """One observed occurrence: its events and the key (labels of its frequent events)."""

    events: list[Ev]
    key: tuple[str, ...]
    aligned: list[int | None] = field(default_factory=list)


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
    hist: list[str] = field(default_factory=list)


@dataclass
class Variant:
    """One routine variant: a step sequence with its tallies and a few kept instances."""

    vid: str
    steps: list[str]
    created: int
    count: int = 0
    exact: int = 0
    fitness_sum: float = 0.0
    duration_sum: float = 0.0
    first_seen: int = NO_TIME_HI
    last_seen: int = NO_TIME_LO
    days: set[int] = field(default_factory=set)
    instances: deque[Segment] = field(default_factory=deque)
    key_counts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    split_checked_at: int = 0
    from_split: bool = False
    version: int = 0
    emitted_count: int = 0
    emitted_score: float = -1.0
    emitted_steps: tuple[str, ...] = ()
    emitted_name: str = ""
    last_score: float = 0.0


class UserState:
    """One user's (or team's) discovery state; see the module docstring."""

    STATE_KIND: ClassVar[str] = "rote.discovery.user"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, user_id: str, *, keep_instances: int = 6) -> None:
        self.user_id = user_id
        self.keep_instances = keep_instances
        # ingest
        self.recent_ids: OrderedDict[str, None] = OrderedDict()
        self.heap: list[tuple[float, int, Ev]] = []
        self.seq = 0
        self.max_ts = NO_TIME_LO
        self.released_ts = NO_TIME_LO
        # transition statistics of the raw stream (decayed)
        self.prev_label: str | None = None
        self.pairs: dict[tuple[str, str], float] = {}
        self.out: dict[str, float] = {}
        self.prev2_label: str | None = None
        self.triples: dict[tuple[str, str, str], float] = {}
        self.out2: dict[tuple[str, str], float] = {}
        self.label_counts: dict[str, float] = {}
        self.total_count = 0.0  # sum of label_counts (decayed alike)
        self.opened: dict[str, float] = {}  # how often each label opened a new thread (an interruption)
        self.since_decay = 0
        # threads and segmentation
        self.threads: list[Thread] = []
        self.next_tid = 0
        self.history: deque[str] = deque()
        self.since_refit = 0
        self.starts: list[str] = []
        self.start_set: frozenset[str] = frozenset()  # derived from `starts`, not encoded
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

    def to_state(self) -> dict[str, Any]:
        """JSON data only (dicts with str keys, lists, str, int, float, bool, None)."""
        from rote.discovery.codec import encode_state

        return encode_state(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Self:
        """Rebuild a state from `to_state` data; raises `rote.errors.StateError` on anything malformed."""
        from rote.discovery.codec import decode_state

        state = cls.__new__(cls)
        decode_state(state, data)
        return state

    def encoded_size(self) -> int:
        """Bytes of the JSON encoding of `to_state()`: what a changelog stores for this user."""
        import json

        return len(json.dumps(self.to_state(), separators=(",", ":"), ensure_ascii=False).encode())
