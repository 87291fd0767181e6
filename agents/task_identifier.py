"""Task identifier: user actions in, routine candidates out.

The mining itself is `rote.discovery.RoutineDiscoverer`; this agent only keeps each user's state in a Faust
table (changelogged, so a restarted worker resumes where it was) and publishes what the discoverer emits.
`user-actions` is keyed by user, so a user's events arrive in order on one partition and the table is
co-partitioned with it.

A user who goes quiet has an open segment that would never be closed by more events, so a timer flushes
users idle for longer than `idle_flush_seconds` (wall clock since their last event arrived).
"""

from __future__ import annotations

import time
from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics, state_table
from rote.agents.common import AgentIO
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.streams.schemas import Candidate, UserAction
from rote.streams.topics import CANDIDATES, USER_ACTIONS

AGENT = "task-identifier"


def register(app: faust.App, topics: Topics, *, idle_flush_seconds: float = 300.0) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    # The idle-flush timer writes outside stream iteration, so the table picks partitions with the default
    # partitioner: the same murmur2 hash of the same user-id bytes that placed the user's actions.
    states = state_table(app, "discovery-state", partitions=USER_ACTIONS.partitions, use_partitioner=True)
    last_seen: dict[str, float] = {}
    known: dict[str, Candidate] = {}

    async def publish(candidates: list[Candidate], state: UserState) -> None:
        # A routine the discoverer dissolved (its start was learnt later) is deleted from the compacted
        # topic with a tombstone, so no consumer keeps acting on it.
        for candidate_id in discoverer.drain_retracted(state):
            known.pop(candidate_id, None)
            await topics[CANDIDATES.name].send(key=candidate_id.encode(), value=None)
        for cand in candidates:
            known[cand.candidate_id] = cand
            await io.send(CANDIDATES.name, cand.candidate_id.encode(), cand)
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
                    state = states.get(action.user_id) or UserState(action.user_id)
                    emitted = discoverer.learn_one(state, action)
                    states[action.user_id] = state
                    last_seen[action.user_id] = time.monotonic()
            except Exception as exc:
                await io.failed(event, exc)
                continue
            await publish(emitted, state)

    @app.timer(interval=min(5.0, idle_flush_seconds))
    async def flush_idle() -> None:
        now = time.monotonic()
        for user_id, seen in list(last_seen.items()):
            if now - seen < idle_flush_seconds:
                continue
            del last_seen[user_id]
            state = states.get(user_id)
            if state is None:
                continue
            emitted = discoverer.flush(state)
            states[user_id] = state
            await publish(emitted, state)

    return {"agent": identify, "table": states}


def _export(known: dict[str, Candidate]) -> None:
    bands: dict[str, int] = {"0-25": 0, "25-50": 0, "50-75": 0, "75-100": 0}
    for cand in known.values():
        bands[metrics.score_band(cand.score)] += 1
    for band, count in bands.items():
        metrics.CANDIDATES.labels(score_band=band).set(count)
    metrics.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(3600.0 * sum(c.estimated_hours_saved_per_year for c in known.values()))
