"""Exactly one copy of each output across crashes: a transactional outbox with a check of the topic's tail.

An agent that publishes an output and then makes its state durable publishes it again after a crash in
between (the event is redelivered and emits the same version); one that does it the other way round loses
the output when it crashes in between. Both happened (issue 16: a SIGKILLed worker published a candidate
version twice). So an output goes through three steps:

1. `prepare`: the output's partition is fixed (the key's murmur2 hash, as Kafka's producers choose it) and
   that partition's end offset is read: every copy of this output would be at or after it.
2. The agent puts the prepared outputs in its durable state (the "outbox", part of the checkpoint) and
   waits until the checkpoint is on the broker (`flush`), then `publish`es them and empties the outbox.
3. After a crash, a state restored with a non-empty outbox is `resolve`d before it takes another event:
   each output is looked for in its partition from the offset read in step 1 to the end; the ones not
   there are published, the others were published already.

A crash before step 2's flush redelivers the event to a state without it (nothing was published); one
after it finds the outbox and publishes what is missing, once. Outputs are matched by key and by an
identity the agent gives (candidate id and version, automation id and version).

The task identifier sits on the worker's hot path, so it does not wait for steps 2 and 3 itself: a
`Publisher` task takes the prepared outputs after the agent has checkpointed them, waits for the broker to
have the checkpoints, publishes a whole batch of outputs at once (in submission order, so a candidate's
versions stay in order) and empties the outboxes. The source offset may then be committed before the output
is published (Faust flushes the producer before it commits, so the checkpoint holding the outbox is on the
broker by then); after a crash, outboxes are found again by a sweep of the recovered checkpoints when the
rebalance completes (and by the agent when the key's next event comes first), and resolved as in step 3.
The end offsets of step 1 come from a cache refreshed every `end_offset_ttl` seconds: any end offset read
earlier is still a lower bound of where a copy could land (offsets only grow), so the cache costs only a
longer scan after a crash, never a wrong verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import faust
from aiokafka.partitioner import murmur2

from rote.agents.app import Topics

log = logging.getLogger("rote.agents.outbox")

#: one pending output: what the checkpoint keeps (JSON data only)
Pending = dict[str, Any]


class Outbox:
    """Publication with a crash check, for one app (one scan consumer, created on first need)."""

    def __init__(
        self, app: faust.App, topics: Topics, bootstrap: str, *, end_offset_ttl: float = 10.0
    ) -> None:
        self.app = app
        self.topics = topics
        self.bootstrap = bootstrap
        self.end_offset_ttl = end_offset_ttl
        self._consumer: Any = None
        #: (topic, partition) -> (end offset, monotonic time read)
        self._ends: dict[tuple[str, int], tuple[int, float]] = {}

    async def _scanner(self) -> Any:
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            from rote.brokers.security import aiokafka_kwargs

            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, **aiokafka_kwargs()
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def prepare(self, topic: str, outputs: list[tuple[str, bytes | None, str]]) -> list[Pending]:
        """(key, value or None for a tombstone, identity) -> pending outputs, each with its partition and
        the offset every copy of it would be at or after."""
        from aiokafka import TopicPartition

        partitions = self.topics[topic].partitions or 1
        pending: list[Pending] = []
        ends: dict[int, int] = {}
        now = time.monotonic()
        for key, value, identity in outputs:
            partition = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
            if partition not in ends:
                cached = self._ends.get((topic, partition))
                if cached is not None and now - cached[1] < self.end_offset_ttl:
                    ends[partition] = cached[0]
                else:
                    tp = TopicPartition(topic, partition)
                    consumer = await self._scanner()
                    ends[partition] = (await consumer.end_offsets([tp]))[tp]
                    self._ends[(topic, partition)] = (ends[partition], now)
            pending.append(
                {
                    "topic": topic,
                    "key": key,
                    "value": None if value is None else value.decode("utf-8"),
                    "identity": identity,
                    "partition": partition,
                    "after": ends[partition],
                }
            )
        return pending

    async def flush(self) -> None:
        """Wait until everything the app has sent (the checkpoint holding the outbox) is on the broker."""
        await self.app.producer.flush()

    async def publish(self, pending: list[Pending]) -> None:
        """Send all, in order, then wait for every acknowledgement (one round trip for the lot)."""
        futures = []
        for p in pending:
            value = None if p["value"] is None else p["value"].encode("utf-8")
            futures.append(
                await self.topics[p["topic"]].send(
                    key=p["key"].encode(), value=value, partition=p["partition"]
                )
            )
        for fut in futures:
            await fut

    async def resolve(self, pending: list[Pending], identity_of: Callable[[bytes | None], str]) -> int:
        """Publish what of `pending` is not in its partition since its start offset; returns how many."""
        from aiokafka import TopicPartition

        consumer = await self._scanner()
        missing = []
        for p in pending:
            tp = TopicPartition(p["topic"], p["partition"])
            end = (await consumer.end_offsets([tp]))[tp]
            found = False
            if end > p["after"]:
                consumer.assign([tp])
                consumer.seek(tp, p["after"])
                while not found and await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                    for msg in batch.get(tp, []):
                        if msg.offset >= end:
                            break
                        key = msg.key.decode("utf-8", "replace") if msg.key else ""
                        if key == p["key"] and identity_of(msg.value) == p["identity"]:
                            found = True
                            break
                    if not batch:
                        break
            if not found:
                missing.append(p)
        if missing:
            log.info("publishing %d output(s) a crash left in the outbox", len(missing))
            await self.publish(missing)
        return len(missing)

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None


class OutboxState(Protocol):
    """What the publisher needs of a durable state (agents/durable.py's DurableState)."""

    def unstage(self, key: str, published: Iterable[Pending] | None = None) -> None: ...

    def partition_of(self, key: str) -> int | None: ...

    def pending_outboxes(self) -> list[tuple[str, list[Pending]]]: ...


class Publisher:
    """Steps 2 and 3 of the outbox off the agent's path: one task publishing staged outputs in batches.

    `submit` is called by the agent right after it checkpointed the outputs in the key's outbox; it never
    waits. The task flushes the producer (the checkpoints reach the broker), publishes everything submitted
    so far in order, and unstages what went out. Outboxes restored from a crash (`submit(resolve=True)`, or
    found by the sweep after a rebalance) are checked against the topic first (`Outbox.resolve`). One task
    does all of it, so an output is never published by two paths at once.
    """

    def __init__(
        self,
        outbox: Outbox,
        state: OutboxState,
        identity_of: Callable[[bytes | None], str],
        *,
        on_published: Callable[[list[Pending]], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.state = state
        self.identity_of = identity_of
        self.on_published = on_published
        self._queue: list[tuple[str, list[Pending], bool]] = []
        self._queued: set[tuple[str, str, str]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sweep = False
        self.published = 0
        self.resolved = 0

    @staticmethod
    def _ident(key: str, p: Pending) -> tuple[str, str, str]:
        return (key, p["key"], p["identity"])

    def submit(self, key: str, pending: list[Pending], *, resolve: bool = False) -> None:
        """Queue a key's checkpointed outputs (`resolve`: restored after a crash, check the topic first)."""
        fresh = [p for p in pending if self._ident(key, p) not in self._queued]
        if not fresh:
            return
        self._queued.update(self._ident(key, p) for p in fresh)
        self._queue.append((key, fresh, resolve))
        self._idle.clear()
        self._wake.set()

    def is_queued(self, key: str, pending: list[Pending]) -> bool:
        return all(self._ident(key, p) in self._queued for p in pending)

    def request_sweep(self) -> None:
        """Look for outboxes left by a crash in the recovered state (after a rebalance completes)."""
        self._sweep = True
        self._idle.clear()
        self._wake.set()

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget queued outputs of keys whose partition moved away: their new owner resolves them from the
        checkpoint (publishing here too could double them)."""
        keep = []
        for key, pending, resolve in self._queue:
            if self.state.partition_of(key) in partitions:
                self._queued.difference_update(self._ident(key, p) for p in pending)
            else:
                keep.append((key, pending, resolve))
        self._queue = keep

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until everything submitted is published (tests, revocation, one-shot runs)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        """The publishing loop (an app task); an error is logged and the batch retried."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("publishing outputs failed; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            if not self._queue and not self._sweep:
                self._idle.set()

    async def _round(self) -> None:
        if self._sweep:
            self._sweep = False
            for key, pending in self.state.pending_outboxes():
                self.submit(key, pending, resolve=True)
        if not self._queue:
            return
        batch = self._queue
        self._queue = []
        try:
            await self.outbox.flush()  # the checkpoints holding these outboxes are on the broker
            # A crash's leftovers first: they were staged before anything submitted since, and a newer
            # version (or a withdrawal) must land after an older one on the compacted topic.
            for _key, pending, resolve in batch:
                if resolve:
                    self.resolved += await self.outbox.resolve(pending, self.identity_of)
            plain = [p for key, pending, resolve in batch if not resolve for p in pending]
            if plain:
                await self.outbox.publish(plain)
        except BaseException:
            self._queue = batch + self._queue  # retried in order
            raise
        for key, pending, _resolve in batch:
            self.state.unstage(key, pending)
            self._queued.difference_update(self._ident(key, p) for p in pending)
            self.published += len(pending)
            if self.on_published is not None:
                self.on_published(pending)


def automation_identity(value: bytes | None) -> str:
    """A generated automation's identity: `v<version>:generated` (the registry's lifecycle echoes of the
    same version carry other states and are not it)."""
    if not value:
        return "withdrawn"
    import json

    try:
        data = json.loads(value)
        return f"v{int(data['version'])}:{data['state']}"
    except (ValueError, KeyError, TypeError):
        return "?"


def candidate_identity(value: bytes | None) -> str:
    """A candidate record's identity: `version` (tombstones: `withdrawn`); the key is the candidate id."""
    if not value:
        return "withdrawn"
    import json

    try:
        return f"v{int(json.loads(value)['version'])}"
    except (ValueError, KeyError, TypeError):
        return "?"
