"""Task identifier: user actions in, routine candidates out.

The mining itself is `rote.discovery.RoutineDiscoverer`; this agent keeps each user's state durable
(`agents/durable.py`), publishes what the discoverer emits, and is the worker's hot path: every action of
every person passes here. So a `user-actions` message (one action, or a batch of one user's actions:
`streams/fast.py`) is decoded once with msgspec, each action is checked on its own (an invalid one is
dead-lettered alone, with its own bytes and reason), personal data is redacted again at ingress (a producer
that skipped it is still covered: `rote.privacy`), and the user's valid actions go to `learn_many` in one
call. The message's redacted form is what the write-ahead log keeps, so a changelog never holds what a
person typed into a password field.

`user-actions` is keyed by user, so a user's events arrive in order on one partition and the table is
co-partitioned with it.

A user who goes quiet has an open segment that would never be closed by more events, so a timer flushes
users idle for longer than `idle_flush_seconds` (wall clock since their last event arrived); a one-shot
run (`rote run --once`) flushes every user as soon as its replay has been consumed (`flush_all`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import faust
from rote.agents.app import Topics
from rote.agents.common import AgentIO
from rote.agents.durable import DurableState
from rote.streams.fast import FastAction, decode_message, encode_batch
from rote.streams.schemas import Candidate
from rote.streams.topics import CANDIDATES, USER_ACTIONS

from rote import metrics
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.errors import ValidationError
from rote.privacy import default_redactor

AGENT = "task-identifier"


def register(
    app: faust.App,
    topics: Topics,
    *,
    idle_flush_seconds: float = 300.0,
    checkpoint_every: int = 2000,
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    redactor = default_redactor()

    def parse(topic: str, value: bytes) -> list[FastAction]:
        """A logged batch back into actions (log replay); the log holds only valid, redacted actions."""
        decoded = decode_message(value)
        if decoded.rejected:
            raise ValidationError(f"log record holds invalid actions: {decoded.rejected[0].reason}")
        return decoded.actions

    users: DurableState[UserState, Sequence[FastAction]] = DurableState(
        app,
        "discovery",
        partitions=USER_ACTIONS.partitions,
        state_class=UserState,
        factory=discoverer.new_state,
        decode=parse,
        apply=lambda state, actions: discoverer.learn_many(state, list(actions)),
        checkpoint_every=checkpoint_every,
        source_topics=(USER_ACTIONS.name,),
    )
    last_seen: dict[str, float] = {}
    #: score and yearly savings of each known candidate (for the metrics), not the candidates themselves
    known: dict[str, tuple[float, float]] = {}
    accepted = metrics.USER_ACTIONS_TOTAL.labels(outcome="accepted")
    rejected = metrics.USER_ACTIONS_TOTAL.labels(outcome="dead_lettered")

    async def publish(candidates: list[Candidate], state: UserState) -> None:
        # A routine the discoverer dissolved (its start was learnt later) is deleted from the compacted
        # topic with a tombstone, so no consumer keeps acting on it.
        for candidate_id in discoverer.drain_retracted(state):
            known.pop(candidate_id, None)
            pending = await topics[CANDIDATES.name].send(key=candidate_id.encode(), value=None)
            await pending
        for cand in candidates:
            known[cand.candidate_id] = (cand.score, cand.estimated_hours_saved_per_year)
            await io.send(CANDIDATES.name, cand.candidate_id.encode(), cand, delivered=True)
        if candidates:
            _export(known)

    async def take(event: faust.EventT, actions: list[FastAction]) -> None:
        """One user's valid actions of one message: learn, publish, make durable (in that order)."""
        user_id = actions[0].user_id
        actions = [redactor.redact_action(a) for a in actions]
        try:
            with io.timed():
                emitted = users.apply(user_id, actions, partition=event.message.partition)
                last_seen[user_id] = time.monotonic()
        except Exception as exc:
            rejected.inc(len(actions))  # dead-lettered whole, with the traceback logged
            await io.failed(event, exc)
            return
        accepted.inc(len(actions))
        # Published (and acknowledged) before the event is logged: a crash in between re-delivers the
        # event and re-publishes the same version; it never loses one. After publishing, a checkpoint,
        # so a restart does not publish these versions again.
        await publish(emitted, users.restore(user_id))
        users.record(
            user_id,
            USER_ACTIONS.name,
            encode_batch(user_id, actions),
            units=len(actions),
            checkpoint=bool(emitted),
        )

    @app.agent(topics[USER_ACTIONS.name], name=AGENT)
    async def identify(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            io.consumed(event)
            if not event.value:
                continue
            decoded = decode_message(bytes(event.value))
            for bad in decoded.rejected:
                rejected.inc()
                await io.dead_letter(
                    USER_ACTIONS.name, bad.raw, event.key, ValidationError(bad.reason, field=bad.field), event
                )
            if not decoded.actions:
                continue
            # A batch is one user's; single actions are one each. Mixed users (a producer keying by
            # something else) are split so each user's state sees only its own actions, in order.
            by_user: dict[str, list[FastAction]] = {}
            for action in decoded.actions:
                by_user.setdefault(action.user_id, []).append(action)
            for actions in by_user.values():
                await take(event, actions)

    async def forget_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Users whose partitions moved to another worker must not be flushed from this one's stale copy;
        # users that stay here are flushed after their next event instead.
        last_seen.clear()

    app.on_partitions_revoked.connect(cast(Any, forget_revoked))

    async def flush(user_ids: list[str]) -> int:
        """Close the open segments of these users (outside stream iteration: made durable with the user's
        next event, when the dirty state is checkpointed)."""
        flushed = 0
        for user_id in user_ids:
            last_seen.pop(user_id, None)
            state = users.peek(user_id)
            if state is None:
                continue
            emitted = discoverer.flush(state)
            users.mark_dirty(user_id)
            await publish(emitted, state)
            flushed += 1
        return flushed

    @app.timer(interval=min(5.0, idle_flush_seconds))
    async def flush_idle() -> None:
        now = time.monotonic()
        await flush([u for u, seen in list(last_seen.items()) if now - seen >= idle_flush_seconds])

    async def flush_all() -> int:
        """Flush every user this worker holds now (the end of a one-shot replay)."""
        return await flush(list(last_seen))

    @app.page("/users/")
    async def users_view(web: Any, request: Any) -> Any:
        """Per user this worker holds: actions learnt, held for lateness, and refused as duplicates or late.

        What operators (and the crash tests) check "every valid action counted exactly once" against.
        """
        rows = {}
        for user_id in users.stored_keys():
            state = users.peek(user_id)
            if state is not None:
                rows[user_id] = {
                    "events": state.events,
                    "held": len(state.heap),
                    "duplicates": state.duplicates,
                    "late": state.late,
                }
        return web.json({"users": rows})

    return {"agent": identify, "state": users, "flush_all": flush_all}


def _export(known: dict[str, tuple[float, float]]) -> None:
    bands: dict[str, int] = {"0-25": 0, "25-50": 0, "50-75": 0, "75-100": 0}
    for score, _ in known.values():
        bands[metrics.score_band(score)] += 1
    for band, count in bands.items():
        metrics.CANDIDATES.labels(score_band=band).set(count)
    metrics.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(3600.0 * sum(hours for _, hours in known.values()))
