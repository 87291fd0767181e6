"""When an agent's event counts as done: only once the agent's body for it has finished.

On a real Faust stream (its compiled iterator, as the worker runs it), fed through a channel: the body is
cancelled while awaiting inside its second event, as a worker's shutdown cancels it between `apply` and
`record`. With `stream.events()` Faust acknowledged that event anyway (its offset then committed without
the event in any durable state: one action lost across a restart, seen once in CI); `settled_events`
leaves it unacknowledged, so it is delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
import pytest

from rote.agents.common import settled_events


def user_action_event(app: faust.App, offset: int) -> Any:
    """A `user-actions` event at `offset` of partition 0, in the app's current consumer generation."""
    message = faust.types.Message(
        topic="user-actions",
        partition=0,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=b"user-1",
        value=b"{}",
        checksum=None,
    )
    message.generation_id = app.consumer_generation_id
    return faust.Event(app, b"user-1", b"{}", {}, message)


def _cancelled_in_second_event(iterate: Callable[[Any], AsyncIterator[Any]]) -> tuple[list[int], list[bool]]:
    async def scenario() -> tuple[list[int], list[bool]]:
        app = faust.App("rote-test-acks", broker="kafka://127.0.0.1:1", store="memory://")
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        messages = []
        for offset in range(2):
            event = user_action_event(app, offset)
            event.message.incref()
            messages.append(event.message)
            await channel.put(event)
        seen: list[int] = []

        async def agent() -> None:
            async for event in iterate(stream):
                seen.append(event.message.offset)
                if event.message.offset == 1:
                    await asyncio.sleep(60)  # e.g. awaiting the outbox's end offsets

        task = asyncio.create_task(agent())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(seen) == 2:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()  # the iteration is torn down (Faust's `finally`) when its generator is finalised
        await asyncio.sleep(0.1)
        return seen, [m.acked for m in messages]

    return asyncio.run(scenario())


def test_an_event_whose_body_was_cancelled_is_not_acknowledged() -> None:
    seen, acked = _cancelled_in_second_event(settled_events)
    assert seen == [0, 1]
    assert acked == [True, False]


def test_faust_events_acknowledge_it_anyway() -> None:
    """What `settled_events` guards against, on this Faust version (if Faust changes, this says so)."""
    seen, acked = _cancelled_in_second_event(lambda stream: stream.events())
    assert seen == [0, 1]
    assert acked == [True, True]


def test_an_error_that_escapes_an_agent_stops_the_worker() -> None:
    """An event whose body failed stays unacknowledged, so carrying on would stall its partition's commits:
    the worker's app (every agent on it) crashes instead, the worker exits, and its restart processes the
    event again."""
    from rote.agents import AgentOptions, build_app
    from rote.config import Settings

    app, _ = build_app(
        Settings.from_env(broker="kafka://127.0.0.1:1"),
        bootstrap="127.0.0.1:1",
        options=AgentOptions(result_key=b"k" * 32),
    )
    agents = list(app.agents.values())
    assert len(agents) == 7

    async def fail() -> None:
        await app._on_agent_error(agents[0], TimeoutError("end offsets of candidates"))

    asyncio.run(fail())
    assert isinstance(app.crash_reason, TimeoutError)


SKIPPED = """
import asyncio, sys
import faust
from rote.agents.app import SettledEvent
from rote.agents.common import settled_events

async def scenario(event_class):
    app = faust.App("rote-test-skips", broker="kafka://127.0.0.1:1", store="memory://", Event=event_class)
    app.flow_control.resume()
    stream = app.stream(channel := app.channel())
    message = faust.types.Message(
        topic="user-actions", partition=0, offset=7, timestamp=0.0, timestamp_type=0, headers=[],
        key=b"user-1", value=b"{}", checksum=None,
    )
    message.generation_id = app.consumer_generation_id - 1  # fetched before the last rebalance
    message.incref()
    await channel.put(app.create_event(b"user-1", b"{}", {}, message))
    seen = []

    async def agent():
        async for event in settled_events(stream):
            seen.append(event)

    task = asyncio.create_task(agent())
    await asyncio.sleep(0.3)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert seen == []  # skipped: no agent saw it
    return message.acked

print(asyncio.run(scenario(SettledEvent)), asyncio.run(scenario(faust.Event)))
"""


def test_an_event_faust_skips_is_not_acknowledged() -> None:
    """Faust's pure-Python iterator (NO_CYTHON=1 selects it, as a missing compiled extension does) skips an
    event of an earlier consumer generation and acknowledges it: its offset committable, unprocessed. The
    worker's events (agents/app.py `SettledEvent`) refuse that acknowledgement; Faust's own take it."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", SKIPPED],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_CYTHON": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "True"], proc.stdout


@pytest.mark.parametrize("fixed", [True, False])
def test_a_producer_flush_waits_for_every_buffered_write(fixed: bool) -> None:
    """Faust flushes its producer buffer (the table writes) before committing offsets. Its own `flush`
    returned once a message took over 0.1 s to hand over, with writes still buffered: the commit ran ahead of
    the state. Measured on Faust's real buffer with slow hand-overs: fixed, nothing is left behind."""
    from types import SimpleNamespace

    from faust.transport.producer import ProducerBuffer

    from rote.agents.app import complete_flush

    async def feed(buffer: Any, channel: Any) -> None:
        for n in range(4, 1000):
            await asyncio.sleep(0.05)
            buffer.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))

    async def scenario() -> tuple[int, int]:
        published: list[int] = []

        async def publish_message(fut: Any, wait: bool = False) -> None:
            await asyncio.sleep(0.25)  # a loaded machine, a metadata fetch
            published.append(fut.n)

        channel = SimpleNamespace(publish_message=publish_message)
        buffer = ProducerBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        if fixed:
            complete_flush(buffer)
        await buffer.start()
        try:
            for n in range(4):
                buffer.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))  # type: ignore[arg-type]
            await asyncio.sleep(0)
            if fixed:  # writes queued during the flush are the next flush's: under steady load it still ends
                feeding = asyncio.create_task(feed(buffer, channel))
            await buffer.flush()
            done = len(published)
            if fixed:
                feeding.cancel()
                assert done < 8, "the flush waited for writes queued after it began"
            return done, 4
        finally:
            with contextlib.suppress(RuntimeError):  # Faust's own: "Cannot flush", the writes still buffered
                await buffer.stop()

    done, total = asyncio.run(scenario())
    assert (done == total) is fixed, (done, total)
