"""Durable agent state: a per-key checkpoint plus a write-ahead log, both data-only bytes in Faust tables.

Why two tables: writing a key's whole state on every event would push its full size to the changelog per
event (and, for big states, past Kafka's message size limit). So each event's bytes (or one batch of a
user's actions) go to a small write-ahead table (one record per event or batch), and the state itself is
checkpointed after `checkpoint_every` units of work (actions, events) or when the agent asks; the log
records the checkpoint covers are then deleted.

Why bytes and a live cache beside the tables: the tables hold only what `rote.state` encodes (JSON data in a
versioned envelope) and Faust reads them back with its raw codec, so nothing in a changelog can construct an
object (a pickle written there used to run code in every worker). The decoded, live state objects sit in
`DurableState._live`, keyed like the table; a record that does not decode is skipped, logged and counted in
`rote_state_records_rejected_total`, and the key continues from what remains valid.

The commit sequence, per event (what makes delivery at-least-once and output never lost):

1. `apply(key, item)`: the decoded, validated event changes the live state (restored first: checkpoint +
   log replay). Agents validate each event once, at ingress, and hand the result here.
2. If the event produced outputs, the agent `stage`s them in the key's outbox.
3. `record(key, ...)`: the event (its validated, redacted form) is appended to the log, or, when a
   checkpoint is due or outputs were staged, the state is checkpointed instead (it includes the event and
   the outbox). Both are table writes inside stream iteration, so they land in the changelog partition of
   the event being processed (co-partitioned with the source topic).
4. The outputs are published once the checkpoint is on the broker, and `unstage`d (agents/outbox.py).
5. Faust commits the event's offset once the agent's body for it has finished (`settled_events`,
   agents/common.py: a body cancelled half-way leaves its event unacknowledged), flushing the producer
   first.

A crash before 3 re-delivers the event to a state without it (nothing was published); a crash after 3
restores the state with the event in it and with any outputs not yet unstaged, which are checked against
their topic and published only if missing (`pending_outboxes`, agents/outbox.py).

Rebalances: a key's live copy is dropped when its partition is no longer assigned to this worker, so a
partition that comes back (after another worker changed it) is decoded afresh from the recovered tables;
until it does, the key's leftover outbox is the new owner's to resolve, not this worker's.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import faust

from rote import metrics
from rote.agents.app import state_table
from rote.errors import StateError
from rote.state import (
    MAX_STATE_BYTES,
    StateMachine,
    StateReader,
    decode_json,
    encode_json,
    state_envelope,
    state_from_envelope,
)
from rote.streams.topics import CATALOGUE

S = TypeVar("S", bound=StateMachine)
Item = TypeVar("Item")
_SEP = b"\n"
#: how a checkpoint with an empty outbox ends (msgspec's compact JSON, keys in the order `checkpoint` writes
#: them): the recovery sweep decodes only checkpoints that end otherwise
_EMPTY_OUTBOX = b'"outbox":[]}}'
log = logging.getLogger("rote.agents.state")

CHECKPOINT_KIND = "checkpoint"
#: The most log records a stored checkpoint may say lie before it (this code writes none: `wal_from == seq`)
MAX_WAL_SPAN = 1 << 16
CHECKPOINT_VERSION = 1


@dataclass(slots=True)
class _Live(Generic[S]):
    """A key's decoded state and where its log stands. Never stored as is: see `_encode_checkpoint`."""

    state: S
    #: log sequence number of the next record; records `wal_from <= n < seq` are not yet checkpointed
    seq: int
    wal_from: int
    #: log records of one incarnation share an epoch, so a state restarted after a rejected checkpoint
    #: never picks up an older incarnation's records
    epoch: str
    #: units of work (actions, events) and log bytes since the last checkpoint
    units: int = 0
    wal_bytes: int = 0
    #: changed outside stream iteration (a timer): checkpoint with the key's next event
    dirty: bool = False
    #: source partition of the last event for this key (to forget the copy when the partition moves)
    partition: int | None = None
    #: a checkpoint of this key exists (its first event always writes one, so `stored_keys` lists it)
    stored: bool = False
    #: outputs made durable but maybe not yet published (agents/outbox.py); checkpointed with the state
    outbox: list[dict[str, Any]] = field(default_factory=list)


class DurableState(Generic[S, Item]):
    """A state machine per key, made durable through a checkpoint table and a write-ahead table.

    `decode(topic, bytes) -> item` turns a logged event back into what `apply(state, item)` takes (used when
    replaying the log); live events arrive already decoded. `checkpoint_every` units of work, or
    `checkpoint_bytes` of log since the last checkpoint, whichever comes first, make a checkpoint due.
    """

    def __init__(
        self,
        app: faust.App,
        name: str,
        *,
        partitions: int,
        state_class: type[S],
        factory: Callable[[str], S],
        decode: Callable[[str, bytes], Item],
        apply: Callable[[S, Item], Any],
        checkpoint_every: int = 50,
        checkpoint_bytes: int = 64 * 1024,
        source_topics: Iterable[str] = (),
        state_context: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.states = state_table(app, f"{name}-state", partitions=partitions)
        self.wal = state_table(app, f"{name}-wal", partitions=partitions)
        self.state_class = state_class
        self.factory = factory
        self.decode_fn = decode
        self.apply_fn = apply
        self.checkpoint_every = checkpoint_every
        self.checkpoint_bytes = checkpoint_bytes
        self.source_topics = frozenset(source_topics)
        #: configuration handed to `from_state` (the state machine's settings are code, not changelog data)
        self.state_context = state_context or {}
        self._live: dict[str, _Live[S]] = {}
        #: source partitions assigned to this worker at the last rebalance
        self._owned: set[int] = set()
        #: keys whose partition went to another worker, by partition: Faust's memory store keeps the
        #: records this worker wrote for them, but their outboxes are the new owner's to resolve
        self._moved: dict[str, int] = {}
        app.on_partitions_assigned.connect(cast(Any, self._on_assigned))

    # ---------------------------------------------------------------------------------- keys

    @staticmethod
    def wal_key(key: str, epoch: str, seq: int) -> bytes:
        return f"{key}\x00{epoch}\x00{seq:012d}".encode()

    def stored_keys(self) -> list[str]:
        """Keys whose checkpoint this worker holds (for read-only views), without those whose partition moved
        to another worker: Faust's memory store keeps what this worker wrote for them, and listing them
        would show one user on two workers, the old owner's copy going stale."""
        out = []
        for raw in list(self.states.keys()):
            try:
                out.append(bytes(raw).decode())
            except UnicodeDecodeError:
                continue
        return sorted((set(out) - self._moved.keys()) | set(self._live))

    # ---------------------------------------------------------------------------------- reading

    def peek(self, key: str) -> S | None:
        """The key's state for timers and views: its live copy, or one decoded from the tables and not kept.

        Not kept, because outside an event the tables may be mid-recovery (a timer or a view during a
        rebalance): a copy kept from them would be what the key's next event is applied to, and the
        records recovered after it would be lost from the state."""
        live = self._live.get(key)
        if live is not None:
            return live.state
        if self.states.get(key.encode()) is None:
            return None
        return self._load(key).state

    def live(self, key: str) -> _Live[S] | None:
        return self._live.get(key)

    def restore(self, key: str) -> S:
        return self._restore(key).state

    def _restore(self, key: str) -> _Live[S]:
        """The key's live state (decoded from the tables and kept, if it was not live yet)."""
        live = self._live.get(key)
        if live is None:
            live = self._live[key] = self._load(key)
        return live

    def _load(self, key: str) -> _Live[S]:
        """The key's state from the tables: its checkpoint decoded and the log records after it replayed."""
        live = self._decode_checkpoint(key)
        while (raw := self.wal.get(self.wal_key(key, live.epoch, live.seq))) is not None:
            topic, _, value = bytes(raw).partition(_SEP)
            try:
                self.apply_fn(live.state, self.decode_fn(topic.decode("utf-8", "replace"), value))
            except Exception as exc:
                # A log record that is not a valid event of this state's topics, or one that the state
                # cannot take (a forged changelog record: an IndexError escaped here and the key was never
                # restored, so every later event of the user failed): skipped, like an invalid event at
                # ingress, and counted.
                self._rejected("log", key, exc)
            live.seq += 1
            live.units += 1
            live.wal_bytes += len(raw)
        return live

    def _decode_checkpoint(self, key: str) -> _Live[S]:
        raw = self.states.get(key.encode())
        if raw is not None:
            try:
                return self._parse_checkpoint(bytes(raw))
            except (StateError, ValueError, TypeError, OverflowError, LookupError, MemoryError) as exc:
                # a forged checkpoint the codecs' checks let through must not stop the key (or the worker)
                self._rejected("checkpoint", key, exc)
        return _Live(state=self.factory(key), seq=0, wal_from=0, epoch=_new_epoch())

    def _checkpoint_data(self, raw: bytes) -> StateReader:
        """A stored checkpoint's `data`, after the size cap and the envelope's kind and version."""
        if len(raw) > MAX_STATE_BYTES:
            raise StateError(f"{self.name} checkpoint of {len(raw)} bytes is over the cap")
        env = StateReader(decode_json(raw), where=f"{self.name} checkpoint")
        if env.str("kind") != CHECKPOINT_KIND or env.int("v") != CHECKPOINT_VERSION:
            raise StateError(f"{self.name} checkpoint: unknown kind/version {env.data.get('kind')!r}")
        return env.obj("data")

    def _parse_checkpoint(self, raw: bytes) -> _Live[S]:
        data = self._checkpoint_data(raw)
        seq, wal_from, epoch = data.int("seq"), data.int("wal_from"), data.str("epoch")
        # A checkpoint is written with its log position (`wal_from == seq`); a forged 0..10**12 made the key's
        # next checkpoint pop 10**12 log keys one by one (an attacker's sweep): the span is bounded.
        if not 0 <= wal_from <= seq < 1 << 53 or seq - wal_from > MAX_WAL_SPAN or len(epoch) > 64:
            raise StateError(f"{self.name} checkpoint: bad log position {wal_from}..{seq}")
        state = state_from_envelope(self.state_class, data.dict("state"), **self.state_context)
        outbox = [read_pending(p) for p in data.objs("outbox")] if data.has("outbox") else []
        return _Live(state=state, seq=seq, wal_from=wal_from, epoch=epoch, stored=True, outbox=outbox)

    def _rejected(self, record: str, key: str, exc: Exception) -> None:
        metrics.STATE_RECORDS_REJECTED.labels(state=self.name, record=record).inc()
        log.warning("%s: %s record for key %r rejected, skipped: %s", self.name, record, key[:80], exc)

    # ---------------------------------------------------------------------------------- writing

    def apply(self, key: str, item: Item, *, partition: int | None = None) -> Any:
        """Apply one decoded event (or batch) to the key's live state (not yet durable); returns what
        `apply` did. The caller publishes what the event produced, waits for the broker to have it, then
        calls `record` (see the commit sequence in the module docstring).
        """
        live = self._restore(key)
        if partition is not None:
            live.partition = partition
        return self.apply_fn(live.state, item)

    def record(
        self,
        key: str,
        topic: str,
        value: bytes | Callable[[], bytes],
        *,
        units: int = 1,
        checkpoint: bool = False,
        size_hint: int | None = None,
    ) -> None:
        """Make the last applied event durable: log it, or checkpoint when due (or asked).

        A due checkpoint already holds the event, so the event is then not logged at all: with batches of
        actions (hundreds per message) most messages end in one checkpoint and no log record. `value` may be
        a function making the log record, called only when one is written (`size_hint` estimates its
        size meanwhile).
        """
        live = self._restore(key)
        if callable(value) and size_hint is None:
            value = value()
        size = size_hint if size_hint is not None else len(value) if isinstance(value, bytes) else 0
        entry = len(topic) + 1 + size
        due = (
            checkpoint
            or live.dirty
            or live.units + units >= self.checkpoint_every
            or live.wal_bytes + entry >= self.checkpoint_bytes
        )
        live.units += units
        if (due or not live.stored) and self.checkpoint(key, live):
            return
        data = value() if callable(value) else value
        self.wal[self.wal_key(key, live.epoch, live.seq)] = topic.encode() + _SEP + data
        live.seq += 1
        live.wal_bytes += len(topic) + 1 + len(data)

    def stage(self, key: str, pending: list[dict[str, Any]]) -> None:
        """Add outputs to the key's outbox (after any not yet published); the caller then checkpoints, and
        the outputs are published after the checkpoint is on the broker (agents/outbox.py)."""
        live = self._restore(key)
        live.outbox = [*live.outbox, *pending]

    def unstage(self, key: str, published: Iterable[dict[str, Any]] | None = None) -> None:
        """These outputs (all when None) were published: take them out of the outbox (made durable with the
        key's next checkpoint)."""
        live = self._live.get(key)
        if live is None or not live.outbox:
            return
        if published is None:
            live.outbox = []
        else:
            gone = {(p["topic"], p["key"], p["identity"]) for p in published}
            live.outbox = [p for p in live.outbox if (p["topic"], p["key"], p["identity"]) not in gone]
        live.dirty = True

    def partition_of(self, key: str) -> int | None:
        live = self._live.get(key)
        return None if live is None else live.partition

    def pending_outboxes(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """Keys with a non-empty outbox in the recovered checkpoints (a crash's leftovers, to resolve).

        Checkpoints are scanned as bytes; only those with entries in their outbox are decoded, and only the
        outbox of a key this worker has no live copy of: its state is restored at its next event, not here.
        (Restored here, at the end of a rebalance, a key replayed the write-ahead records its table held at
        that moment and kept that copy: on a restart the log records after the last checkpoint were then
        missing from the state, 29 actions of the bundled log lost, seen by the restart test.)"""
        out: list[tuple[str, list[dict[str, Any]]]] = []
        for raw_key, raw in list(self.states.items()):
            if raw is None or bytes(raw).endswith(_EMPTY_OUTBOX):
                continue
            try:
                key = bytes(raw_key).decode()
            except UnicodeDecodeError:
                continue
            if key in self._moved:
                continue  # its new owner resolves it (resolved here too, it could be published twice)
            live = self._live.get(key)
            if live is not None:
                pending = live.outbox
            else:
                try:
                    pending = self._checkpoint_outbox(bytes(raw))
                except StateError as exc:
                    self._rejected("checkpoint", key, exc)
                    continue
            if pending:
                out.append((key, list(pending)))
        return out

    def _checkpoint_outbox(self, raw: bytes) -> list[dict[str, Any]]:
        """The outbox of a stored checkpoint, checked like the rest of it, without decoding its state."""
        data = self._checkpoint_data(raw)
        return [read_pending(p) for p in data.objs("outbox")] if data.has("outbox") else []

    def outbox(self, key: str) -> list[dict[str, Any]]:
        """What a restored key may not have published before a crash (resolve before its next event)."""
        return list(self._restore(key).outbox)

    def delete(self, key: str) -> None:
        """Forget a key (inside stream iteration): tombstones for its checkpoint and log records."""
        live = self._restore(key)  # where its log stands, so no log record is left behind
        del self._live[key]
        self.states.pop(key.encode(), None)
        for seq in range(live.wal_from, live.seq):
            self.wal.pop(self.wal_key(key, live.epoch, seq), None)

    def mark_dirty(self, key: str) -> None:
        """The state changed outside stream iteration: checkpoint it with the key's next event."""
        live = self._live.get(key)
        if live is not None:
            live.dirty = True

    def checkpoint(self, key: str, live: _Live[S] | None = None) -> bool:
        """Write the key's state and drop the log records it covers (inside stream iteration only); False
        when the state is over the size cap and nothing was written (`record` then logs the event)."""
        live = live or self._restore(key)
        raw = encode_json(
            {
                "kind": CHECKPOINT_KIND,
                "v": CHECKPOINT_VERSION,
                "data": {
                    "seq": live.seq,
                    "wal_from": live.seq,
                    "epoch": live.epoch,
                    "state": state_envelope(live.state),
                    "outbox": live.outbox,
                },
            }
        )
        if len(raw) > MAX_STATE_BYTES:
            # Bounded states stay far below this; past it the broker would refuse the record and Faust's
            # producer would take the worker down. Keep the log (still durable) and say so loudly.
            self._rejected("checkpoint-too-large", key, StateError(f"{len(raw)} bytes"))
            return False
        self.states[key.encode()] = raw
        live.stored = True
        metrics.STATE_CHECKPOINT_BYTES.labels(state=self.name).observe(len(raw))
        for seq in range(live.wal_from, live.seq):
            self.wal.pop(self.wal_key(key, live.epoch, seq), None)
        live.wal_from = live.seq
        live.units = 0
        live.wal_bytes = 0
        live.dirty = False
        return True

    # ---------------------------------------------------------------------------------- rebalances

    async def _on_assigned(self, sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        """Forget live copies of keys whose source partition this worker no longer owns."""
        tps = assigned if assigned is not None else kwargs.get("assigned", set())
        owned = {tp.partition for tp in tps if not self.source_topics or tp.topic in self.source_topics}
        self._owned = owned
        for key in [k for k, v in self._live.items() if v.partition is None or v.partition not in owned]:
            live = self._live.pop(key)
            if live.partition is not None:
                self._moved[key] = live.partition
        for key in [k for k, p in self._moved.items() if p in owned]:
            del self._moved[
                key
            ]  # back here: its partition's tables are recovered, the new owner's writes too

    def ensure_held(self, key: str, live: _Live[S]) -> None:
        """After an await between `apply` and `record`: `live`, the copy the event was applied to, must still
        be the key's copy, or `StateError` (the agent's body then fails and the worker stops: agents/app.py).

        Faust waits for in-flight events before it revokes partitions (`stream_wait_empty`), and events are
        acknowledged only when their body finished (agents/common.py), so a rebalance should never drop a
        copy mid-event. If one ever did, neither way on is safe: recording into a copy restored from the
        tables would make the event's offset committable without it, and recording nothing would let the
        event be acknowledged unrecorded; and a partition that left and came back may hold another worker's
        newer state. Stopping leaves the event unacknowledged, so it is processed again after the restart.
        """
        if self._live.get(key) is not live:
            raise StateError(f"{self.name}: the live copy of {key[:80]!r} was replaced during an await")


def read_pending(r: StateReader) -> dict[str, Any]:
    """One outbox entry read back from a checkpoint, checked field by field."""
    partition, after = r.int("partition"), r.int("after")
    if partition < 0 or after < 0:
        raise StateError(f"{r.where}: negative partition or offset")
    topic = r.str("topic")
    spec = _OUTPUT_TOPICS.get(topic)
    # a forged entry for a topic that does not exist made the publisher retry it every second, ahead of
    # every real output (an attacker's sweep)
    if spec is None or partition >= spec.partitions:
        raise StateError(f"{r.where}: not a partition of a catalogue topic: {topic[:80]!r} [{partition}]")
    return {
        "topic": topic,
        "key": r.str("key"),
        "value": r.opt_str("value"),
        "identity": r.str("identity"),
        "partition": partition,
        "after": after,
    }


#: The topics an outbox may hold outputs for: the catalogue's (agents publish to nothing else)
_OUTPUT_TOPICS = {spec.name: spec for spec in CATALOGUE}

_epochs = itertools.count()


def _new_epoch() -> str:
    """Unique per key incarnation within this process, and across processes by start time and pid (no
    randomness needed: it only keeps one incarnation's log records apart from another's)."""
    return f"{_PROCESS_TAG}{next(_epochs):x}"


_PROCESS_TAG = f"{time.time_ns() // 1_000_000:x}.{os.getpid():x}."
