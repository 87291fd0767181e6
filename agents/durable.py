"""Durable agent state: periodic checkpoints plus a write-ahead table, instead of a full write per event.

The pure-logic state objects (a user's discovery state, an automation's registry record, the optimizer's
whole-picture builder) pickle to hundreds of kilobytes or more. Writing one to a Faust table on every
event would push that much to the changelog per event (hundreds of megabytes for a few thousand events,
and past Kafka's message size limit). So each event's bytes go to a small write-ahead table (one key per
event), and the state itself is written every `checkpoint_every` events (or when the agent asks), after
which the covered log entries are deleted. A restarted worker restores the checkpoint and replays the log
entries after it through the same `apply` function, so it resumes exactly where the state was.

Both tables are written only inside stream iteration, so their changelog partition is the current event's
partition: co-partitioned with the source, recovered by whichever worker owns that key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import faust
from rote.agents.app import state_table

S = TypeVar("S")
_SEP = b"\n"


class Checkpoint(Generic[S]):
    """A key's state, how many events it has absorbed, and where its write-ahead log starts.

    `replayed` is not persisted: a copy that comes back from the changelog (at start, and after every
    rebalance, when Faust re-reads changelogs into the memory store) must replay the log entries written
    after it, whether or not this worker has seen the key before.
    """

    def __init__(self, state: S) -> None:
        self.state = state
        self.seq = 0
        self.wal_from = 0
        self.dirty = False  # changed outside stream iteration (a timer): checkpoint with the next event
        self.replayed = True

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "replayed"}

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
        self.replayed = False


class DurableState(Generic[S]):
    def __init__(
        self,
        app: faust.App,
        name: str,
        *,
        partitions: int,
        factory: Callable[[str], S],
        apply: Callable[[S, str, bytes], Any],
        checkpoint_every: int = 50,
    ) -> None:
        self.states = state_table(app, f"{name}-state", partitions=partitions)
        self.wal = state_table(app, f"{name}-wal", partitions=partitions, value_serializer="raw")
        self.factory = factory
        self.apply_fn = apply
        self.checkpoint_every = checkpoint_every

    @staticmethod
    def wal_key(key: str, seq: int) -> str:
        return f"{key}\x00{seq:012d}"

    def peek(self, key: str) -> Checkpoint[S] | None:
        """The live checkpoint if this worker has one (for timers and read-only views)."""
        cp: Checkpoint[S] | None = self.states.get(key)
        return cp

    def restore(self, key: str) -> Checkpoint[S]:
        """The key's live state, with the write-ahead log replayed once per key per worker start.

        What replaying produces (candidates, echoes) was published before the restart and is not sent
        again: the state after replay is what it was, so later outputs continue from the same versions.
        """
        cp: Checkpoint[S] | None = self.states.get(key)
        if cp is None:
            cp = self.states[key] = Checkpoint(self.factory(key))
        if not cp.replayed:
            cp.replayed = True
            while (raw := self.wal.get(self.wal_key(key, cp.seq))) is not None:
                topic, _, value = bytes(raw).partition(_SEP)
                self.apply_fn(cp.state, topic.decode(), value)
                cp.seq += 1
        return cp

    def apply(self, key: str, topic: str, value: bytes) -> Any:
        """Apply one event to the key's live state (not yet durable); returns what `apply` returned.

        The caller publishes what the event produced, waits for the broker to have it, and then calls
        `record`: a crash before `record` leaves the event uncommitted, so it is delivered again and
        reproduces the same output (at least once), instead of a logged event whose output never left.
        """
        return self.apply_fn(self.restore(key).state, topic, value)

    def record(self, key: str, topic: str, value: bytes, *, checkpoint: bool = False) -> None:
        """Make the last applied event durable: log it, and checkpoint when due (or asked)."""
        cp = self.restore(key)
        self.wal[self.wal_key(key, cp.seq)] = topic.encode() + _SEP + value
        cp.seq += 1
        if checkpoint or cp.dirty or cp.seq - cp.wal_from >= self.checkpoint_every:
            self.checkpoint(key, cp)

    def checkpoint(self, key: str, cp: Checkpoint[S]) -> None:
        cp.dirty = False
        self.states[key] = cp
        for seq in range(cp.wal_from, cp.seq):
            self.wal.pop(self.wal_key(key, seq), None)
        cp.wal_from = cp.seq
