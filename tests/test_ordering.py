"""A partition whose first event after a rebalance comes after its committed offset stops the worker instead
of being committed past (agents/ordering.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import pytest

from rote.agents.ordering import InOrder
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
