"""The outbox publisher (agents/outbox.py) without a broker: order, batching, retries, crash leftovers and
rebalances. The crash behaviour end to end (SIGKILLed workers on Apache Kafka) is tests/test_chaos.py."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

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


def test_a_crash_leftover_goes_out_before_what_the_next_event_made() -> None:
    """After a restart the key's next event can be handled before the publisher's first round: its leftover
    v3 (resolve) and the new withdrawal are in one batch. The withdrawal must land last on the compacted
    topic, or the withdrawn candidate comes back as v3 (review finding: plain outputs went first)."""
    outbox, state = FakeOutbox(), FakeState()
    state.stage("u1", [pending("c1", 3)])
    withdrawn = {**pending("c1", 0), "value": None, "identity": "withdrawn"}

    async def body(pub: Publisher) -> None:
        pub.submit("u1", [pending("c1", 3)], resolve=True)
        state.stage("u1", [withdrawn])
        pub.submit("u1", [withdrawn])

    run(_with_publisher(outbox, state, body))
    assert [p["identity"] for p in outbox.topic] == ["v3", "withdrawn"]


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


def _durable_on_partition_3() -> Any:
    """A DurableState's rebalance side, with key "u" live on partition 3 and its checkpoint holding an
    unpublished output (the tables are plain dicts of bytes here, as Faust's memory store holds them)."""
    from rote.agents.durable import DurableState, _Live
    from rote.state import encode_json

    ds: Any = DurableState.__new__(DurableState)
    ds.name, ds._live, ds._owned, ds._moved = "discovery", {}, {3}, {}
    ds.source_topics = frozenset({"user-actions"})
    out = pending("u", 4, partition=0)
    ds._live["u"] = _Live(state=object(), seq=5, wal_from=0, epoch="e", partition=3, outbox=[out])
    checkpoint = {"seq": 5, "wal_from": 5, "epoch": "e", "state": {}, "outbox": [out]}
    ds.states = {b"u": encode_json({"kind": "checkpoint", "v": 1, "data": checkpoint})}
    return ds


def _assign(ds: Any, *partitions: int) -> None:
    from collections import namedtuple

    tp = namedtuple("tp", "topic partition")
    asyncio.run(ds._on_assigned(None, assigned={tp("user-actions", p) for p in partitions}))


def test_a_copy_replaced_during_an_await_stops_the_body() -> None:
    """A task identifier awaits the broker (end offsets for the outbox) between applying a batch and recording
    it. Faust waits for in-flight events before revoking, so the copy should never be replaced meanwhile; if
    it were, recording into a copy restored from the tables would lose the batch, and recording nothing would
    let it be acknowledged unrecorded. So the body fails (the worker stops, the event comes again), also when
    the partition came back: its tables may hold another worker's newer state."""
    from rote.errors import StateError

    ds = _durable_on_partition_3()
    live = ds._live["u"]
    ds.ensure_held("u", live)  # nothing happened
    _assign(ds, 1)  # partition 3 went away: the copy is dropped
    assert "u" not in ds._live
    with pytest.raises(StateError, match="replaced during an await"):
        ds.ensure_held("u", live)
    _assign(ds, 1, 3)  # ... and came back: still not the copy the event was applied to
    with pytest.raises(StateError):
        ds.ensure_held("u", live)


def test_the_sweep_leaves_outboxes_of_partitions_that_moved_away_to_their_new_owner() -> None:
    """Faust's memory store keeps what this worker wrote for a partition it lost; resolved here as well as by
    the new owner, an output could go out twice, or an old version after the new owner's newer one."""
    ds = _durable_on_partition_3()
    assert [k for k, _ in ds.pending_outboxes()] == ["u"]  # live here: its own outbox
    _assign(ds, 1)
    assert ds.pending_outboxes() == []  # moved away: the new owner's
    _assign(ds, 1, 3)  # back: recovered from the changelog, its leftovers are this worker's again
    assert [(k, [p["identity"] for p in v]) for k, v in ds.pending_outboxes()] == [("u", ["v4"])]


def test_keys_of_partitions_that_moved_away_are_not_listed_as_held_here() -> None:
    """The views (`/users/`, what operators and the crash tests count against) list a key on the worker
    that owns its partition only; the old owner's store still holds what it wrote for it."""
    ds = _durable_on_partition_3()
    assert ds.stored_keys() == ["u"]
    _assign(ds, 1)
    assert b"u" in ds.states and ds.stored_keys() == []
    _assign(ds, 1, 3)
    assert ds.stored_keys() == ["u"]


def test_an_event_whose_checkpoint_is_over_the_cap_is_logged_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint over the size cap is not written (the broker would refuse it); the event it was to cover
    must then go to the write-ahead log, or it and every later event of the key were in no table."""
    from dataclasses import dataclass, field

    from rote.agents import durable
    from rote.agents.durable import DurableState

    @dataclass
    class Notes:
        STATE_KIND = "test-notes"
        STATE_VERSION = 1
        items: list[str] = field(default_factory=list)

        def to_state(self) -> dict[str, Any]:
            return {"items": self.items}

        @classmethod
        def from_state(cls, data: dict[str, Any]) -> Notes:
            return cls(list(data["items"]))

    ds: Any = DurableState.__new__(DurableState)
    ds.name, ds._live, ds._owned, ds._moved = "notes", {}, set(), {}
    ds.states, ds.wal, ds.state_class, ds.state_context = {}, {}, Notes, {}
    ds.factory = lambda key: Notes()
    ds.apply_fn = lambda state, item: state.items.append(item)
    ds.decode_fn = lambda topic, value: value.decode()
    ds.checkpoint_every, ds.checkpoint_bytes = 2, 1 << 20
    for i in range(3):
        ds.apply("k", f"note-{i}")
        ds.record("k", "notes", f"note-{i}".encode())
    assert len(ds.states) == 1 and len(ds.wal) == 0  # the second note made a checkpoint due, the third too
    monkeypatch.setattr(durable, "MAX_STATE_BYTES", 10)  # from here on every checkpoint is too large
    for i in range(3, 6):
        ds.apply("k", f"note-{i}")
        ds.record("k", "notes", f"note-{i}".encode())
    assert len(ds.wal) == 3  # logged, not lost
    monkeypatch.setattr(durable, "MAX_STATE_BYTES", 1 << 20)
    ds._live.clear()  # a restart: checkpoint + log replay
    assert ds.restore("k").items == [f"note-{i}" for i in range(6)]


class _Counter:
    """A minimal durable state: the numbers applied to it."""

    STATE_KIND: ClassVar[str] = "test-counter"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, seen: list[int] | None = None) -> None:
        self.seen = seen or []

    def to_state(self) -> dict[str, Any]:
        return {"seen": self.seen}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> _Counter:
        return cls(list(data["seen"]))


def _counter_tables() -> Any:
    """A DurableState of `_Counter`s whose tables are plain dicts (as Faust's memory store holds them)."""
    from rote.agents.durable import DurableState

    ds: Any = DurableState.__new__(DurableState)
    ds.name, ds._live, ds._owned, ds._moved = "counter", {}, {0}, {}
    ds.source_topics = frozenset({"user-actions"})
    ds.state_class, ds.state_context = _Counter, {}
    ds.factory = lambda key: _Counter()
    ds.decode_fn = lambda topic, value: int(value)
    ds.apply_fn = lambda state, item: state.seen.append(item)
    ds.checkpoint_every, ds.checkpoint_bytes = 100, 1 << 20
    ds.states, ds.wal = {}, {}
    return ds


def test_a_view_during_recovery_does_not_become_the_copy_events_are_applied_to() -> None:
    """A timer or a view reads a key while its partition's tables are still being recovered (during a
    rebalance). Kept as the live copy, that partial state was what the key's next event was applied to, and
    the records recovered after it were lost; so what `peek` decodes is not kept."""
    ds = _counter_tables()
    for n in (1, 2, 3):
        ds.apply("u", n, partition=0)
        ds.record("u", "user-actions", str(n).encode())
    tables = (dict(ds.states), dict(ds.wal))
    ds._live.clear()  # a rebalance: decoded afresh from the tables at the next event
    ds.states, ds.wal = {}, {}  # ... which recovery is filling in meanwhile
    ds.states.update(tables[0])
    assert ds.peek("u").seen == [1]  # a view now: only the checkpoint has been recovered so far
    assert "u" not in ds._live
    ds.wal.update(tables[1])  # recovery completes
    ds.apply("u", 4, partition=0)
    assert ds.live("u").state.seen == [1, 2, 3, 4]
    assert ds.peek("u").seen == [1, 2, 3, 4]  # the live copy, once there is one


def test_forged_checkpoints_and_log_records_never_stop_a_key() -> None:
    """An attacker's sweep of the state changelogs: a checkpoint saying 10**12 log records lie before it
    made the key's next checkpoint pop them one by one; an outbox entry for a topic that does not exist was
    retried every second ahead of every real output; a log record the state could not take (an IndexError)
    escaped the replay, so the key was never restored and every later event of the user failed. Each is
    now rejected and counted, and the key goes on."""
    from rote import metrics
    from rote.state import encode_json, state_envelope

    def rejected(record: str) -> float:
        return metrics.STATE_RECORDS_REJECTED.labels(state="counter", record=record)._value.get()

    ds = _counter_tables()
    env = state_envelope(_Counter([7]))
    before = rejected("checkpoint")
    for data in (
        {"seq": 10**12, "wal_from": 0, "epoch": "e", "state": env, "outbox": []},
        {
            "seq": 3,
            "wal_from": 3,
            "epoch": "e",
            "state": env,
            "outbox": [{**pending("u", 1), "topic": "nope"}],
        },
        {"seq": 3, "wal_from": 3, "epoch": "e", "state": env, "outbox": [pending("u", 1, partition=99)]},
    ):
        ds._live.clear()
        ds.states = {b"u": encode_json({"kind": "checkpoint", "v": 1, "data": data})}
        assert ds.restore("u").seen == []  # started afresh, not stuck
    assert rejected("checkpoint") == before + 3
    ds._live.clear()
    ds.states = {
        b"u": encode_json(
            {
                "kind": "checkpoint",
                "v": 1,
                "data": {"seq": 3, "wal_from": 3, "epoch": "e", "state": env, "outbox": [pending("u", 1)]},
            }
        )
    }
    assert ds.restore("u").seen == [7]  # a real outbox entry still reads

    def picky(state: _Counter, item: int) -> None:
        if item < 0:
            raise IndexError("a record this state cannot take")
        state.seen.append(item)

    ds.apply_fn = picky
    ds._live.clear()
    ds.wal = {ds.wal_key("u", "e", 3): b"user-actions\n-1", ds.wal_key("u", "e", 4): b"user-actions\n5"}
    logs = rejected("log")
    assert ds.restore("u").seen == [7, 5] and rejected("log") == logs + 1
