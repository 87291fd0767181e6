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
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from rote.agents.app import Topics

log = logging.getLogger("rote.agents.outbox")

#: one pending output: what the checkpoint keeps (JSON data only)
Pending = dict[str, Any]


class Outbox:
    """Publication with a crash check, for one app (one scan consumer, created on first need)."""

    def __init__(self, app: faust.App, topics: Topics, bootstrap: str) -> None:
        self.app = app
        self.topics = topics
        self.bootstrap = bootstrap
        self._consumer: Any = None

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
        consumer = await self._scanner()
        pending: list[Pending] = []
        ends: dict[int, int] = {}
        for key, value, identity in outputs:
            partition = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
            if partition not in ends:
                tp = TopicPartition(topic, partition)
                ends[partition] = (await consumer.end_offsets([tp]))[tp]
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
        for p in pending:
            value = None if p["value"] is None else p["value"].encode("utf-8")
            fut = await self.topics[p["topic"]].send(
                key=p["key"].encode(), value=value, partition=p["partition"]
            )
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
