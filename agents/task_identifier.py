"""Task identifier: user actions in, routine candidates out.

The mining itself is `rote.discovery.RoutineDiscoverer`; this agent only keeps each user's state durable
(`agents/durable.py`: checkpoint + write-ahead table, so a restarted worker resumes where it was) and
publishes what the discoverer emits.
`user-actions` is keyed by user, so a user's events arrive in order on one partition and the table is
co-partitioned with it.

A user who goes quiet has an open segment that would never be closed by more events, so a timer flushes
users idle for longer than `idle_flush_seconds` (wall clock since their last event arrived).
"""

from __future__ import annotations

import time
from typing import Any, cast

import faust
from rote.agents.app import Topics
from rote.agents.common import AgentIO
from rote.agents.durable import DurableState
from rote.streams.schemas import Candidate, UserAction
from rote.streams.topics import CANDIDATES, USER_ACTIONS

from rote import metrics
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState

AGENT = "task-identifier"


def register(
    app: faust.App, topics: Topics, *, idle_flush_seconds: float = 300.0, checkpoint_every: int = 50
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    discoverer = RoutineDiscoverer(DiscoveryConfig())

    def learn(state: UserState, topic: str, value: bytes) -> list[Candidate]:
        return discoverer.learn_one(state, UserAction.model_validate_json(value))

    users: DurableState[UserState] = DurableState(
        app,
        "discovery",
        partitions=USER_ACTIONS.partitions,
        state_class=UserState,
        factory=discoverer.new_state,
        apply=learn,
        checkpoint_every=checkpoint_every,
        source_topics=(USER_ACTIONS.name,),
    )
    last_seen: dict[str, float] = {}
    known: dict[str, Candidate] = {}

    async def publish(candidates: list[Candidate], state: UserState) -> None:
        # A routine the discoverer dissolved (its start was learnt later) is deleted from the compacted
        # topic with a tombstone, so no consumer keeps acting on it.
        for candidate_id in discoverer.drain_retracted(state):
            known.pop(candidate_id, None)
            pending = await topics[CANDIDATES.name].send(key=candidate_id.encode(), value=None)
            await pending
        for cand in candidates:
            known[cand.candidate_id] = cand
            await io.send(CANDIDATES.name, cand.candidate_id.encode(), cand, delivered=True)
        if candidates:
            _export(known)

    @app.agent(topics[USER_ACTIONS.name], name=AGENT)
    async def identify(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            action = await io.decode(UserAction, event, event.value, event.key)
            if action is None:
                continue
            try:
                with io.timed():
                    emitted = users.apply(
                        action.user_id, USER_ACTIONS.name, event.value, partition=event.message.partition
                    )
                    last_seen[action.user_id] = time.monotonic()
            except Exception as exc:
                await io.failed(event, exc)
                continue
            # Published (and acknowledged) before the event is logged: a crash in between re-delivers the
            # event and re-publishes the same version; it never loses one. After publishing, a checkpoint,
            # so a restart does not publish these versions again.
            await publish(emitted, users.restore(action.user_id))
            users.record(action.user_id, USER_ACTIONS.name, event.value, checkpoint=bool(emitted))

    async def forget_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Users whose partitions moved to another worker must not be flushed from this one's stale copy;
        # users that stay here are flushed after their next event instead.
        last_seen.clear()

    app.on_partitions_revoked.connect(cast(Any, forget_revoked))

    @app.timer(interval=min(5.0, idle_flush_seconds))
    async def flush_idle() -> None:
        # Outside stream iteration tables cannot be written (their partition is the current event's), so
        # the flush changes the in-memory state and the user's next event checkpoints it.
        now = time.monotonic()
        for user_id, seen in list(last_seen.items()):
            if now - seen < idle_flush_seconds:
                continue
            del last_seen[user_id]
            state = users.peek(user_id)
            if state is None:
                continue
            emitted = discoverer.flush(state)
            users.mark_dirty(user_id)
            await publish(emitted, state)

    return {"agent": identify, "state": users}


def _export(known: dict[str, Candidate]) -> None:
    bands: dict[str, int] = {"0-25": 0, "25-50": 0, "50-75": 0, "75-100": 0}
    for cand in known.values():
        bands[metrics.score_band(cand.score)] += 1
    for band, count in bands.items():
        metrics.CANDIDATES.labels(score_band=band).set(count)
    metrics.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(
        3600.0 * sum(c.estimated_hours_saved_per_year for c in known.values())
    )
