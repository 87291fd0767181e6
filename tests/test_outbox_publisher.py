"""The outbox publisher (agents/outbox.py) without a broker: order, batching, retries, crash leftovers and
rebalances. The crash behaviour end to end (SIGKILLed workers on Apache Kafka) is tests/test_chaos.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rote.agents.outbox import Pending, Publisher


def pending(key: str, version: int, partition: int = 0) -> Pending:
    return {
        "topic": "candidates",
        "key": key,
        "value": f'{{"version": {version}}}',
        "identity": f"v{version}",
        "partition": partition,
        "after": 0,
    }


class FakeOutbox:
    """Records what the publisher asks of the broker; `fail` makes the next publish raise once."""

    def __init__(self, on_topic: list[Pending] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.topic: list[Pending] = list(on_topic or [])
        self.fail = False

    async def flush(self) -> None:
        self.calls.append(("flush", None))

    async def publish(self, batch: list[Pending]) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("broker away")
        self.calls.append(("publish", [p["identity"] for p in batch]))
        self.topic.extend(batch)

    async def resolve(self, batch: list[Pending], identity_of: Any) -> int:
        there = {(p["key"], p["identity"]) for p in self.topic}
        missing = [p for p in batch if (p["key"], p["identity"]) not in there]
        self.calls.append(("resolve", [p["identity"] for p in batch]))
        self.topic.extend(missing)
        return len(missing)


class FakeState:
    """A durable state's outbox side: per key outbox, partition, and what the checkpoints hold."""

    def __init__(self) -> None:
        self.outboxes: dict[str, list[Pending]] = {}
        self.partitions: dict[str, int] = {}

    def stage(self, key: str, batch: list[Pending], partition: int = 0) -> None:
        self.outboxes.setdefault(key, []).extend(batch)
        self.partitions[key] = partition

    def unstage(self, key: str, published: Any = None) -> None:
        gone = {p["identity"] for p in published} if published is not None else None
        self.outboxes[key] = [
            p for p in self.outboxes.get(key, []) if gone is not None and p["identity"] not in gone
        ]

    def partition_of(self, key: str) -> int | None:
        return self.partitions.get(key)

    def pending_outboxes(self) -> list[tuple[str, list[Pending]]]:
        return [(k, list(v)) for k, v in self.outboxes.items() if v]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_publisher(outbox: FakeOutbox, state: FakeState, body: Any) -> Publisher:
    pub = Publisher(outbox, state, lambda v: "?")
    task = asyncio.create_task(pub.run())
    try:
        await body(pub)
        await pub.drain(timeout=5)
    finally:
        task.cancel()
    return pub


def test_flush_comes_before_publish_and_versions_keep_their_order() -> None:
    outbox, state = FakeOutbox(), FakeState()

    async def body(pub: Publisher) -> None:
        for v in (1, 2, 3):
            state.stage("u1", [pending("c1", v)])
            pub.submit("u1", [pending("c1", v)])

    pub = run(_with_publisher(outbox, state, body))
    assert outbox.calls[0] == ("flush", None)
    published = [i for kind, ids in outbox.calls if kind == "publish" for i in ids]
    assert published == ["v1", "v2", "v3"]
    assert state.outboxes["u1"] == []  # unstaged once out
    assert pub.published == 3


def test_submitting_the_same_output_twice_publishes_it_once() -> None:
    outbox, state = FakeOutbox(), FakeState()

    async def body(pub: Publisher) -> None:
        state.stage("u1", [pending("c1", 1)])
        pub.submit("u1", [pending("c1", 1)])
        pub.submit("u1", [pending("c1", 1)], resolve=True)  # the agent saw it in the outbox meanwhile

    run(_with_publisher(outbox, state, body))
    assert [p["identity"] for p in outbox.topic] == ["v1"]


def test_a_failed_publish_is_retried_in_order_and_nothing_is_unstaged_before() -> None:
    outbox, state = FakeOutbox(), FakeState()
    outbox.fail = True

    async def body(pub: Publisher) -> None:
        state.stage("u1", [pending("c1", 1)])
        pub.submit("u1", [pending("c1", 1)])
        await asyncio.sleep(0.05)
        assert state.outboxes["u1"]  # not yet out: still staged
        state.stage("u1", [pending("c1", 2)])
        pub.submit("u1", [pending("c1", 2)])

    run(_with_publisher(outbox, state, body))
    assert [p["identity"] for p in outbox.topic] == ["v1", "v2"]
    assert state.outboxes["u1"] == []


def test_the_sweep_resolves_crash_leftovers_without_doubling() -> None:
    # a crash after v1 went out but before the outbox was emptied, and before v2 went out
    outbox, state = FakeOutbox(on_topic=[pending("c1", 1)]), FakeState()
    state.stage("u1", [pending("c1", 1), pending("c1", 2)])

    async def body(pub: Publisher) -> None:
        pub.request_sweep()

    pub = run(_with_publisher(outbox, state, body))
    assert [p["identity"] for p in outbox.topic] == ["v1", "v2"]
    assert pub.resolved == 1
    assert state.outboxes["u1"] == []


def test_outputs_of_a_revoked_partition_are_left_to_its_new_owner() -> None:
    outbox, state = FakeOutbox(), FakeState()

    async def body(pub: Publisher) -> None:
        state.stage("u1", [pending("c1", 1)], partition=0)
        state.stage("u2", [pending("c2", 1)], partition=1)
        pub.submit("u1", [pending("c1", 1)])
        pub.submit("u2", [pending("c2", 1)])
        pub.drop_partitions({1})

    run(_with_publisher(outbox, state, body))
    assert [p["key"] for p in outbox.topic] == ["c1"]
    assert state.outboxes["u2"]  # still in the checkpoint, for the partition's new owner to resolve


@pytest.mark.parametrize("batch", [1, 50])
def test_many_submissions_are_published_in_few_rounds(batch: int) -> None:
    outbox, state = FakeOutbox(), FakeState()

    async def body(pub: Publisher) -> None:
        for i in range(batch):
            state.stage(f"u{i}", [pending(f"c{i}", 1)])
            pub.submit(f"u{i}", [pending(f"c{i}", 1)])

    run(_with_publisher(outbox, state, body))
    rounds = [c for c in outbox.calls if c[0] == "publish"]
    assert sum(len(ids) for _k, ids in rounds) == batch
    assert len(rounds) == 1  # submitted between two rounds: one flush, one publish


# -- a rebalance inside an await between apply and record ---------------------------------------------------


def test_a_copy_dropped_by_a_rebalance_mid_event_is_held_only_while_its_partition_stays() -> None:
    """A task identifier awaits the broker (end offsets for the outbox) between applying a batch and recording
    it; a rebalance in that await drops the live copies. Restored from the tables, the copy would lack the
    batch and `record` would make its offset committable without it (an action lost): the copy the event was
    applied to is put back while its partition stays assigned here, and given up when the partition left."""
    from collections import namedtuple

    from rote.agents.durable import DurableState, _Live

    ds: Any = DurableState.__new__(DurableState)
    ds._live, ds._owned, ds.source_topics = {}, {3}, frozenset({"user-actions"})
    live = _Live(state=object(), seq=5, wal_from=0, epoch="e", partition=3)
    ds._live["u"] = live

    def assign(*partitions: int) -> None:
        tp = namedtuple("tp", "topic partition")
        tps = {tp("user-actions", p) for p in partitions}
        asyncio.run(ds._on_assigned(None, assigned=tps))

    assert ds.hold("u", live) and ds._live["u"] is live  # nothing happened
    assign(1)  # partition 3 went away: the copy is dropped ...
    assert "u" not in ds._live
    assign(1, 3)  # ... and came back before the event was recorded: the applied copy is the key's again
    assert ds.hold("u", live) and ds._live["u"] is live
    assign(1)
    assert not ds.hold("u", live) and "u" not in ds._live  # gone for good: the new owner has the event
