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

A user who goes quiet has an open segment that would never be closed by more events, so a timer asks for
users idle longer than `idle_flush_seconds` to be flushed, and a one-shot run (`rote run --once`) asks for
every user as soon as its replay has been consumed (`flush_all`). The request is a `user-flush` message in
the user's own partition: the flush then happens in order with the user's actions, and its candidates go
out through the same outbox (agents/outbox.py: neither lost nor doubled across a crash).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.agents.common import AgentIO, settled_events
from rote.agents.durable import DurableState
from rote.agents.outbox import Outbox, Pending, Publisher, candidate_identity
from rote.discovery import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.errors import ValidationError
from rote.privacy import default_redactor
from rote.security.verdicts import sign
from rote.streams.fast import FastAction, decode_message, encode_batch, encode_flush
from rote.streams.schemas import Candidate, encode
from rote.streams.topics import CANDIDATES, USER_ACTIONS

AGENT = "task-identifier"
#: what a `user-flush` message becomes for `learn` (close the user's open segments)
FLUSH = "flush"


def register(
    app: faust.App,
    topics: Topics,
    *,
    bootstrap: str,
    result_key: bytes,
    idle_flush_seconds: float = 300.0,
    checkpoint_every: int = 2000,
) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    redactor = default_redactor()
    outbox = Outbox(app, topics, bootstrap)

    def parse(topic: str, value: bytes) -> Sequence[FastAction] | str:
        """A logged batch (or flush) back into what `learn` takes (log replay); the log holds only valid,
        redacted actions."""
        decoded = decode_message(value)
        if decoded.flush is not None:
            return FLUSH
        if decoded.rejected:
            raise ValidationError(f"log record holds invalid actions: {decoded.rejected[0].reason}")
        return decoded.actions

    def learn(state: UserState, item: Sequence[FastAction] | str) -> list[Candidate]:
        return discoverer.flush(state) if item == FLUSH else discoverer.learn_many(state, list(item))

    users: DurableState[UserState, Sequence[FastAction] | str] = DurableState(
        app,
        "discovery",
        partitions=USER_ACTIONS.partitions,
        state_class=UserState,
        factory=discoverer.new_state,
        decode=parse,
        apply=learn,
        checkpoint_every=checkpoint_every,
        source_topics=(USER_ACTIONS.name,),
    )
    last_seen: dict[str, float] = {}
    #: score and yearly savings of each known candidate (for the metrics), not the candidates themselves
    known: dict[str, tuple[float, float]] = {}

    def published(pending: list[Pending]) -> None:
        metrics.EVENTS_PRODUCED.labels(topic=CANDIDATES.name, agent=AGENT).inc(len(pending))

    publisher = Publisher(outbox, users, candidate_identity, on_published=published)
    accepted = metrics.USER_ACTIONS_TOTAL.labels(outcome="accepted")
    rejected = metrics.USER_ACTIONS_TOTAL.labels(outcome="dead_lettered")

    async def take(
        event: faust.EventT,
        user_id: str,
        item: Sequence[FastAction] | str,
        log_value: bytes | Callable[[], bytes],
        size_hint: int | None = None,
    ) -> None:
        """One user's actions (or a flush) of one message: learn, make durable, publish (agents/outbox.py)."""
        n = 0 if item == FLUSH else len(item)
        try:
            leftover = users.outbox(user_id)
            if leftover and not publisher.is_queued(user_id, leftover):
                # restored from a crash with outputs that may not have gone out: checked, then finished
                publisher.submit(user_id, leftover, resolve=True)
            with io.timed():
                emitted = users.apply(user_id, item, partition=event.message.partition)
                last_seen[user_id] = time.monotonic()
                withdrawn = discoverer.drain_retracted(users.restore(user_id))
        except Exception as exc:
            rejected.inc(n)  # dead-lettered whole, with the traceback logged
            await io.failed(event, exc)
            return
        accepted.inc(n)
        if not emitted and not withdrawn:
            users.record(user_id, USER_ACTIONS.name, log_value, units=max(n, 1), size_hint=size_hint)
            return
        # Outputs go into the durable state first (checkpoint), reach the broker, then leave: a crash
        # anywhere in between neither loses nor doubles a candidate version (agents/outbox.py). The last two
        # steps are the publisher's, off this path.
        outputs = [(cid, None, "withdrawn") for cid in withdrawn]
        # signed: the generator renders only candidates this agent published (rote.security.verdicts)
        outputs += [(c.candidate_id, encode(sign(c, result_key)), f"v{c.version}") for c in emitted]
        live = users.live(user_id)
        pending = await outbox.prepare(CANDIDATES.name, outputs)
        if live is not None:
            users.ensure_held(user_id, live)
        users.stage(user_id, pending)
        users.record(user_id, USER_ACTIONS.name, log_value, units=max(n, 1), checkpoint=True)
        publisher.submit(user_id, pending)
        for cid in withdrawn:
            known.pop(cid, None)
        for cand in emitted:
            known[cand.candidate_id] = (cand.score, cand.estimated_hours_saved_per_year)
        _export(known)

    @app.agent(topics[USER_ACTIONS.name], name=AGENT)
    async def identify(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            io.consumed(event)
            if not event.value:
                rejected.inc()
                await io.dead_letter(
                    USER_ACTIONS.name, b"", event.key, ValidationError("empty message (no action)"), event
                )
                continue
            raw = bytes(event.value)
            decoded = decode_message(raw)
            if decoded.flush is not None:
                if users.peek(decoded.flush) is not None:
                    await take(event, decoded.flush, FLUSH, raw)
                continue
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
            for user_id, actions in by_user.items():
                clean = [redactor.redact_action(a) for a in actions]
                # The log keeps the redacted form (a changelog never holds what a person typed), encoded only
                # if a log record is written: a batch that makes a checkpoint due is not logged at all.
                hint = len(raw) * len(clean) // max(1, len(decoded.actions))
                await take(event, user_id, clean, partial(encode_batch, user_id, clean), hint)

    async def forget_revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        # Users whose partitions moved to another worker are flushed by the worker that owns them now, and
        # their unpublished outputs are resolved by it from the checkpoints (agents/outbox.py).
        last_seen.clear()
        tps = revoked if revoked is not None else kwargs.get("revoked", set())
        publisher.drop_partitions({tp.partition for tp in tps if tp.topic == USER_ACTIONS.name})

    async def sweep_outboxes(sender: Any, *args: Any, **kwargs: Any) -> None:
        publisher.request_sweep()  # the tables are recovered: outboxes a crash left behind go out now

    app.on_partitions_revoked.connect(cast(Any, forget_revoked))
    app.on_rebalance_complete.connect(cast(Any, sweep_outboxes))

    @app.task
    async def publish_candidates() -> None:
        await publisher.run()

    async def request_flush(user_ids: list[str]) -> int:
        """Ask for these users' open segments to be closed: a `user-flush` message in each user's own
        partition, so the flush happens in order with their actions and is made durable like them."""
        for user_id in user_ids:
            last_seen.pop(user_id, None)
            await topics[USER_ACTIONS.name].send(key=user_id.encode(), value=encode_flush(user_id))
        return len(user_ids)

    @app.timer(interval=min(5.0, idle_flush_seconds))
    async def flush_idle() -> None:
        now = time.monotonic()
        await request_flush([u for u, seen in list(last_seen.items()) if now - seen >= idle_flush_seconds])

    async def flush_all() -> int:
        """Flush every user this worker holds (the end of a one-shot replay)."""
        return await request_flush(users.stored_keys())

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

    return {
        "agent": identify,
        "state": users,
        "flush_all": flush_all,
        "outbox": outbox,
        "publisher": publisher,
    }


def _export(known: dict[str, tuple[float, float]]) -> None:
    bands: dict[str, int] = {"0-25": 0, "25-50": 0, "50-75": 0, "75-100": 0}
    for score, _ in known.values():
        bands[metrics.score_band(score)] += 1
    for band, count in bands.items():
        metrics.CANDIDATES.labels(score_band=band).set(count)
    metrics.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(3600.0 * sum(hours for _, hours in known.values()))
