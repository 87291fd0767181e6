"""What every agent does around its logic: validate at ingress, dead-letter what fails, count, time.

An event that fails validation is never dropped and never crashes the agent: it is sent to `dead-letters`
with its original bytes and the reason, counted in `rote_dead_letters_total`, and the stream moves on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.agents.durable import DurableState
from rote.agents.optimizer_feed import entity_key, source_key_of, source_of
from rote.agents.ordering import InOrder
from rote.deadletters import dead_letter as make_dead_letter
from rote.errors import ValidationError
from rote.security.verdicts import verify, why_not
from rote.streams.schemas import (
    SCHEMAS,
    Automation,
    Candidate,
    Event,
    RunMetric,
    TestResult,
    decode,
    encode,
)
from rote.streams.topics import CANDIDATES, DEAD_LETTERS, TopicSpec

E = TypeVar("E", bound=Event)
S = TypeVar("S")
log = logging.getLogger("rote.agents")


def survives(task: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """A timer's body whose error is logged and counted (`rote_periodic_task_failures_total{task}`), not
    raised: Faust stops the whole worker when a timer raises, and a timer that reads state a hostile event
    shaped (a forged run metric's 1e200 s step) raised again in every worker that restored that state. The
    next tick tries again; the events keep flowing."""

    def wrap(body: Callable[[], Any]) -> Callable[[], Any]:
        failures = metrics.PERIODIC_TASK_FAILURES.labels(task=task)

        async def run() -> None:
            try:
                await body()
            except Exception:
                failures.inc()
                log.exception("periodic task %s failed; trying again at its next tick", task)

        return functools.wraps(body)(run)  # Faust names the timer after the body's module and qualname

    return wrap


async def settled_events(stream: faust.StreamT[Any]) -> AsyncIterator[faust.EventT]:
    """The stream's events, each acknowledged (its offset made committable) only when the agent's body for
    it has finished: every agent iterates this, never `stream.events()`.

    Why: Faust acknowledges the current event in a `finally` when its iteration is torn down, so an agent
    cancelled at shutdown inside an await between `apply` and `record` (agents/durable.py) had that event
    acknowledged, and its offset committed, without the event in any durable state: one action lost across
    a restart (the restart test, once in CI). Here the acknowledgement is the code after `yield`, which runs
    only when the body asks for the next event; an event whose body never finished stays unacknowledged, is
    not committed, and is delivered again (after a rebalance or a restart: an error that escapes a body
    stops the worker, agents/app.py `RoteApp`). Events Faust skips without yielding them (flow control
    suspended at a shutdown or rebalance, an earlier consumer generation) are never acknowledged either:
    agents/app.py `SettledEvent`.
    """
    manual = cast(Any, stream).noack()  # on Faust's streams, missing from its StreamT stub
    order = InOrder(stream.app.consumer)  # no event after one Faust skipped: agents/ordering.py
    async for event in manual.events():
        order.admit(event.message)
        yield event
        event.settled = True  # the worker's events refuse every other acknowledgement (agents/app.py)
        await manual.ack(event)


class AgentIO:
    """Decoding, dead-lettering and sending for one agent, bound to the app's topics."""

    def __init__(self, *, agent: str, topics: Topics) -> None:
        self.agent = agent
        self.topics = topics

    def consumed(self, event: faust.EventT | None) -> None:
        """Count one message read (however many actions it carries) and how old it was."""
        topic = event.message.topic if event is not None else "unknown"
        now = time.time()
        metrics.EVENTS_CONSUMED.labels(topic=topic, agent=self.agent).inc()
        metrics.LAST_EVENT_TIMESTAMP.labels(agent=self.agent).set(now)
        if event is not None and event.message.timestamp:
            metrics.EVENT_AGE_SECONDS.labels(agent=self.agent).observe(
                max(0.0, now - event.message.timestamp)
            )

    async def decode(
        self, model: type[E], event: faust.EventT | None, value: bytes, key: bytes | None
    ) -> E | None:
        topic = event.message.topic if event is not None else "unknown"
        self.consumed(event)
        if not value:
            return None  # a tombstone on a compacted topic: a deletion, not an invalid event
        try:
            return decode(model, value)
        except ValidationError as exc:
            await self.dead_letter(topic, value, key, exc, event)
            return None

    async def failed(self, event: faust.EventT, exc: Exception) -> None:
        """A valid event the agent's logic could not handle: kept whole in `dead-letters`, never lost.

        A bug triggered by one event must not crash the agent (Faust would restart it on the same event
        forever) nor silently drop the event; it is logged with its traceback and dead-lettered for replay.
        """
        log.exception(
            "%s failed on %s[%s]@%s",
            self.agent,
            event.message.topic,
            event.message.partition,
            event.message.offset,
        )
        err = ValidationError(f"processing failed in {self.agent}: {exc!r}"[:2000])
        await self.dead_letter(event.message.topic, event.value, event.key, err, event, kind="other")

    async def refuse_unsigned(
        self,
        item: TestResult | Automation | Candidate | RunMetric,
        key: bytes,
        event: faust.EventT,
        topic: str | None = None,
    ) -> bool:
        """True, with the event dead-lettered and the reason given, when `item` carries no valid signature
        of a holder of `key` (rote.security.verdicts): what every agent that acts on a candidate,
        automation, verdict or run does with one no rote component made."""
        if verify(item, key):
            return False
        err = ValidationError(why_not(item), field="signature")
        await self.dead_letter(topic or event.message.topic, event.value, event.key, err, event)
        return True

    async def dead_letter(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        exc: ValidationError,
        event: faust.EventT | None,
        *,
        kind: str | None = None,
    ) -> None:
        letter = make_dead_letter(
            topic=topic,
            reason=exc.reason,
            field=exc.field,
            value=value if isinstance(value, bytes) else bytes(value),
            key=key,
            partition=event.message.partition if event is not None else None,
            offset=event.message.offset if event is not None else None,
            agent=self.agent,
        )
        metrics.DEAD_LETTERS.labels(topic=topic, reason=kind or metrics.dead_letter_reason(exc.reason)).inc()
        await self.send(DEAD_LETTERS.name, topic.encode(), letter)

    async def send(self, topic: str, key: bytes, event: Event, *, delivered: bool = False) -> None:
        """Send one event; with `delivered`, return only once the broker has acknowledged it."""
        pending = await self.topics[topic].send(key=key, value=encode(event))
        if delivered:
            await pending
        metrics.EVENTS_PRODUCED.labels(topic=topic, agent=self.agent).inc()

    @contextmanager
    def timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            metrics.PROCESSING_SECONDS.labels(agent=self.agent).observe(time.perf_counter() - start)


class TopicRouter(Generic[S]):
    """Hands an event from one of several source topics to the state method that takes it.

    Agents fed by the optimizer feed see raw bytes with their source topic; the model to decode them with
    comes from the topic catalogue, so an agent cannot read a topic as another schema, and the topics it
    handles are exactly the ones it routes (`model` is None for the rest).
    """

    def __init__(self, routes: Mapping[TopicSpec, Callable[[S, Any], None]]) -> None:
        self._routes = {spec.name: (SCHEMAS[spec.schema], handle) for spec, handle in routes.items()}

    def model(self, topic: str) -> type[Event] | None:
        route = self._routes.get(topic)
        return route[0] if route is not None else None

    def decode(self, topic: str, value: bytes) -> tuple[str, Event]:
        """Validate `value` as `topic`'s schema (a `DurableState` decode function, for log replay)."""
        model = self.model(topic)
        if model is None:
            raise ValidationError(f"{topic!r} is not one of this state's topics")
        return topic, decode(model, value)

    def apply(self, state: S, item: tuple[str, Event]) -> None:
        """Hand a decoded event to the state method for its topic (a `DurableState` apply function)."""
        topic, event = item
        self._routes[topic][1](state, event)


async def apply_routed(
    io: AgentIO,
    routes: TopicRouter[S],
    state: DurableState[Any, tuple[str, Event]],
    event: faust.EventT,
) -> bool:
    """Validate one optimizer-feed event and apply it durably to its entity's state through `routes`.

    Each routine and each automation has its own state key (`entity_key`). A candidate's tombstone deletes
    that routine's state. False when the event is not for this agent, or was dead-lettered (invalid, or the
    state's method raised); the stream goes on either way.
    """
    topic = source_of(event)
    model = routes.model(topic)
    if model is None:
        return False
    if not event.value:
        io.consumed(event)
        candidate_id = source_key_of(event)
        if topic == CANDIDATES.name and candidate_id:
            state.delete(f"c:{candidate_id}")
            return True
        return False
    item = await io.decode(model, event, event.value, event.key)
    if item is None:
        return False
    key = entity_key(topic, item)
    try:
        with io.timed():
            state.apply(key, (topic, item), partition=event.message.partition)
            state.record(key, topic, event.value)
    except Exception as exc:
        await io.failed(event, exc)
        return False
    return True
