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


class Checkpoint:
    """A user's discovery state as last written to the changelog, and where its write-ahead log starts.

    A user's state pickles to hundreds of kilobytes once routines are long, so writing it on every event
    would make the changelog hundreds of megabytes for a few thousand events. Instead each event is
    appended to a small write-ahead table (`discovery-wal`, one key per event) and the state is written
    every `checkpoint_every` events or when it emits candidates, after which the covered log entries are
    deleted. A restarted worker restores the checkpoint and replays the log entries after it.
    """

    def __init__(self, user_id: str) -> None:
        self.state = UserState(user_id)
        self.seq = 0  # events applied to `state`
        self.wal_from = 0  # first event not covered by the last written checkpoint
        self.flushed = False  # flushed by the idle timer since the last checkpoint


def wal_key(user_id: str, seq: int) -> str:
    return f"{user_id}\x00{seq:012d}"


def register(
    app: faust.App, topics: Topics, *, idle_flush_seconds: float = 300.0, checkpoint_every: int = 50
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    # Both tables are written only inside stream iteration, so their changelog partition is the user's
    # `user-actions` partition: co-partitioned, recovered together by whichever worker owns that user.
    states = state_table(app, "discovery-state", partitions=USER_ACTIONS.partitions)
    wal = state_table(app, "discovery-wal", partitions=USER_ACTIONS.partitions, value_serializer="raw")
    last_seen: dict[str, float] = {}
    recovered: set[str] = set()
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

    def restore(user_id: str) -> Checkpoint:
        """The user's checkpoint with the write-ahead log replayed (once per user per worker start).

        Candidates the replayed events produce were published before the restart, so they are not sent
        again: the discoverer's state after replay is what it was, and so are its candidate versions.
        """
        cp: Checkpoint | None = states.get(user_id)
        if cp is None:
            cp = states[user_id] = Checkpoint(user_id)
        if user_id not in recovered:
            recovered.add(user_id)
            while (raw := wal.get(wal_key(user_id, cp.seq))) is not None:
                discoverer.learn_one(cp.state, UserAction.model_validate_json(raw))
                discoverer.drain_retracted(cp.state)
                cp.seq += 1
        return cp

    def checkpoint(cp: Checkpoint) -> None:
        states[cp.state.user_id] = cp
        for seq in range(cp.wal_from, cp.seq):
            wal.pop(wal_key(cp.state.user_id, seq), None)
        cp.wal_from = cp.seq

    @app.agent(topics[USER_ACTIONS.name], name=AGENT)
    async def identify(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            action = await io.decode(UserAction, event, event.value, event.key)
            if action is None:
                continue
            try:
                with io.timed():
                    cp = restore(action.user_id)
                    emitted = discoverer.learn_one(cp.state, action)
                    wal[wal_key(action.user_id, cp.seq)] = event.value
                    cp.seq += 1
                    if emitted or cp.flushed or cp.seq - cp.wal_from >= checkpoint_every:
                        cp.flushed = False
                        checkpoint(cp)
                    last_seen[action.user_id] = time.monotonic()
            except Exception as exc:
                await io.failed(event, exc)
                continue
            await publish(emitted, cp.state)

    @app.timer(interval=min(5.0, idle_flush_seconds))
    async def flush_idle() -> None:
        # Outside stream iteration tables cannot be written (their partition is the current event's), so
        # the flush changes the in-memory state only; the user's next event checkpoints it.
        now = time.monotonic()
        for user_id, seen in list(last_seen.items()):
            if now - seen < idle_flush_seconds:
                continue
            del last_seen[user_id]
            cp = states.get(user_id)
            if cp is None:
                continue
            emitted = discoverer.flush(cp.state)
            cp.flushed = True  # checkpointed with the user's next event
            await publish(emitted, cp.state)

    return {"agent": identify, "states": states, "wal": wal}


def _export(known: dict[str, Candidate]) -> None:
    bands: dict[str, int] = {"0-25": 0, "25-50": 0, "50-75": 0, "75-100": 0}
    for cand in known.values():
        bands[metrics.score_band(cand.score)] += 1
    for band, count in bands.items():
        metrics.CANDIDATES.labels(score_band=band).set(count)
    metrics.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(3600.0 * sum(c.estimated_hours_saved_per_year for c in known.values()))
