"""No event is skipped at the end of a rebalance: the stream partitions are sought to their committed offsets
before fetching resumes, with flow control active (agents/resume.py); and a partition whose first event
after a rebalance comes after its committed offset stops the worker instead of being committed past
(agents/ordering.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from rote.agents.ordering import InOrder
from rote.agents.resume import _on_recovery_completed, _resume_streams
from rote.errors import StateError


class TP(NamedTuple):
    topic: str
    partition: int


class Message(NamedTuple):
    tp: TP
    offset: int
    generation_id: int


P7 = TP("user-actions", 7)


class Consumer:
    def __init__(self, committed: dict[TP, int | None]) -> None:
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None, committed)


def _admitted(order: InOrder, offsets: list[int], generation: int = 3, tp: TP = P7) -> list[int]:
    out = []
    for o in offsets:
        order.admit(Message(tp, o, generation))
        out.append(o)
    return out


def test_events_from_the_committed_offset_go_through() -> None:
    order = InOrder(Consumer({P7: 20}))
    assert _admitted(order, [20, 21, 22]) == [20, 21, 22]


def test_a_first_event_past_the_committed_offset_stops_the_worker() -> None:
    """CI's chaos test: offset 20 skipped as the rebalance ended, 21-23 processed, and Faust committed 24
    over the hole. Here 21, the first event of the generation, is refused: nothing of the partition is
    acknowledged past 20, and the restarted worker starts there."""
    order = InOrder(Consumer({P7: 20}))
    with pytest.raises(StateError, match=r"user-actions\[7\].*offset 21.*committed 20"):
        order.admit(Message(P7, 21, 3))
    with pytest.raises(StateError):  # still refused: nothing after the hole is admitted
        order.admit(Message(P7, 22, 3))


def test_redeliveries_and_later_events_of_a_checked_generation_pass() -> None:
    order = InOrder(Consumer({P7: 20}))
    assert _admitted(order, [18, 19, 20, 25]) == [18, 19, 20, 25]  # within a generation: not checked again


def test_each_generation_is_checked_against_its_own_committed_offset() -> None:
    consumer = Consumer({P7: 20})
    order = InOrder(consumer)
    _admitted(order, [20, 21], generation=3)
    consumer._committed_offset[P7] = 22
    assert _admitted(order, [22, 23], generation=4) == [22, 23]
    consumer._committed_offset[P7] = 30
    with pytest.raises(StateError):
        order.admit(Message(P7, 31, 5))


def test_partitions_are_checked_separately_and_an_unknown_start_is_not_checked() -> None:
    p3 = TP("user-actions", 3)
    order = InOrder(Consumer({P7: 20, p3: -1}))
    assert _admitted(order, [5], tp=p3) == [5]  # -1: nothing committed
    assert _admitted(order, [9], tp=TP("user-actions", 1)) == [9]  # no entry at all
    assert _admitted(order, [20], tp=P7) == [20]


# -- the end of a rebalance: seek, then flow control, then fetching (agents/resume.py) ----------------------


def _recovery(calls: list[str], *, generation: int = 4) -> Any:
    """Faust's Recovery and app as the reordered methods use them, recording the order of what they do."""

    class Log:
        def info(self, msg: str, *args: Any) -> None:
            return None

        def dev(self, msg: str, *args: Any) -> None:
            return None

        def warning(self, msg: str, *args: Any) -> None:
            calls.append("rebalancing again")

    class Signal:
        async def send(self) -> None:
            calls.append("rebalance complete")

    class FakeConsumer:
        def assignment(self) -> set[TP]:
            return {P7, TP("rote-discovery-wal-changelog", 7)}

        async def perform_seek(self) -> None:
            await asyncio.sleep(0.01)  # a round trip: other tasks (the fetcher) run meanwhile
            calls.append("seek")

        def resume_flow(self) -> None:
            calls.append("consumer flow")

        def resume_partitions(self, tps: set[TP]) -> None:
            calls.append(f"fetch {sorted(tp.topic for tp in tps)}")

    class Flow:
        def resume(self) -> None:
            calls.append("flow control")

    class Fetcher:
        async def maybe_start(self) -> None:
            calls.append("fetcher")

    class Assignor:
        def assigned_standbys(self) -> set[TP]:
            return set()

    class Conf:
        broker_request_timeout = 5.0

    class App:
        on_rebalance_complete = Signal()
        consumer = FakeConsumer()
        consumer_generation_id = generation
        flow_control = Flow()
        _fetcher = Fetcher()
        conf = Conf()
        assignor = Assignor()

        def on_rebalance_end(self) -> None:
            calls.append("end")

    class Table:
        async def on_recovery_completed(self, actives: Any, standbys: Any) -> None:
            calls.append("table recovered")

    class Tables:
        def values(self) -> list[Table]:
            return [Table()]

        def on_actives_ready(self) -> None:
            return None

        def on_standbys_ready(self) -> None:
            return None

    class Completed:
        def set(self) -> None:
            calls.append("completed")

    class Recovery:
        app = App()
        log = Log()
        tables = Tables()
        completed = Completed()

        def __init__(self) -> None:
            self.actives_for_table: dict[Any, set[TP]] = defaultdict(set)
            self.standbys_for_table: dict[Any, set[TP]] = defaultdict(set)

        def _set_recovery_ended(self) -> None:
            calls.append("recovery ended")

        def _is_changelog_tp(self, tp: TP) -> bool:
            return tp.topic.endswith("-changelog")

        async def _wait(self, coro: Any, timeout: float | None = None) -> Any:
            return await asyncio.wait_for(coro, timeout)

    return Recovery()


@pytest.mark.parametrize("method", [_on_recovery_completed, _resume_streams])
def test_streams_are_fetched_only_after_the_seek_with_flow_control_active(method: Any) -> None:
    """Faust resumed fetching first and reactivated flow control last: what the fetcher delivered in between
    could be skipped. Here nothing of a stream partition is fetched before both."""
    calls: list[str] = []
    asyncio.run(method(_recovery(calls), generation_id=4))
    assert calls.index("seek") < calls.index("flow control") < calls.index("fetch ['user-actions']")
    assert calls.index("rebalance complete") == 0 and calls[-1] == "end" and "fetcher" in calls


@pytest.mark.parametrize("method", [_on_recovery_completed, _resume_streams])
def test_a_newer_rebalance_leaves_the_streams_paused(method: Any) -> None:
    calls: list[str] = []
    asyncio.run(method(_recovery(calls, generation=5), generation_id=4))
    assert "rebalancing again" in calls
    assert not [c for c in calls if c.startswith("fetch") or c in ("seek", "flow control", "end")]


def test_the_worker_app_uses_them(tmp_path: Path) -> None:
    from rote.agents.app import create_app
    from rote.config import Settings

    app, _ = create_app(Settings(state_dir=tmp_path), bootstrap="127.0.0.1:9")
    recovery: Any = app.tables.recovery
    assert recovery.on_recovery_completed.__func__ is _on_recovery_completed
    assert recovery._resume_streams.__func__ is _resume_streams
