"""The Faust application factory: one app configured from `Settings`, a topic object per catalogue entry.

Agents register themselves on the app returned here (`agents/__init__.py:build_app`). Everything travels as
raw bytes and is validated by `streams.schemas.decode` inside the agents, so that an event that fails
validation can be sent to `dead-letters` with its exact original bytes instead of crashing a Faust codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import faust

from rote.brokers import security
from rote.config import Settings
from rote.streams.topics import CATALOGUE, TopicSpec

log = logging.getLogger("rote.agents")

#: Largest message rote's producers send and its changelog topics accept (`max.message.bytes`). State
#: records are capped far below (`rote.state.MAX_STATE_BYTES`); this leaves room for batches of actions.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Topics:
    """Faust topic handles, one per catalogue entry, so agents never spell a topic name."""

    by_name: dict[str, faust.TopicT]

    def __getitem__(self, name: str) -> faust.TopicT:
        return self.by_name[name]


def faust_settings(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Faust configuration tuned for quick start on a single small broker as well as a cluster.

    The session timeout is the big one: Tansu answers a new group's first join only after half the session
    timeout (30 s with Faust's default), and a dead worker's partitions wait that long on any broker. 6 s is
    the smallest session Apache Kafka accepts by default. `stream_recovery_delay` is cut because Faust
    otherwise waits seconds before resuming streams after every rebalance.
    """
    return {
        "broker": f"kafka://{bootstrap}",
        "store": settings.store,
        "topic_replication_factor": settings.replication,
        "topic_partitions": 4,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": settings.web_port > 0,
        "web_port": settings.web_port or 6066,
        "web_bind": "127.0.0.1",
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_request_timeout": 15.0,
        "broker_rebalance_timeout": 10.0,
        "topic_disable_leader": True,
        "table_standby_replicas": 0,
        "datadir": str(settings.state_dir / "faust"),
        "stream_recovery_delay": 0.5,
        "broker_commit_interval": 1.0,
        "producer_linger_ms": 5,
        "producer_max_request_size": MAX_MESSAGE_BYTES,
        "table_cleanup_interval": 30.0,
        **security.current().faust_settings(),
    }


#: How long a fetch may wait for data before returning empty (Faust hard-codes 1.5 s). Kafka answers a fetch
#: as soon as data arrives, but the embedded broker holds it open for the whole wait, which put 1.5 s on
#: every candidate's latency there; 100 ms costs an idle worker ten empty fetches a second.
FETCH_MAX_WAIT_MS = 100


def _short_fetch_wait() -> None:
    """Make Faust's consumers use FETCH_MAX_WAIT_MS (once per process; Faust has no setting for it)."""
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_rote_fetch_wait", False):
        return
    create = thread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by aiokafka when the consumer starts
        return consumer

    thread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    thread._rote_fetch_wait = True  # type: ignore[attr-defined]


class SettledEvent(faust.Event):
    """An event that only `settled_events` (agents/common.py) can acknowledge, once its agent's body ended.

    Why: Faust's pure-Python stream iterator (used where its compiled one is missing, or with NO_CYTHON)
    acknowledges, without yielding it, every event its stream skips: one fetched in an earlier consumer
    generation, or taken while flow control is suspended (a shutdown or rebalance has begun). Its offset
    is then committable although no agent processed it. Refused here, the event stays unacknowledged and
    is delivered again after the rebalance or restart. (The compiled iterator acknowledges skipped events
    not at all, and acknowledges processed ones without calling this method: `settled_events` uses a
    noack stream, so every acknowledgement of the worker's events passes here.)
    """

    settled: bool = False

    def ack(self) -> bool:
        if not self.settled:
            return False
        return bool(super().ack())


class RoteApp(faust.App):
    """Faust's app, with one change: an exception that escaped an agent's body stops the worker.

    Invalid events never get that far (each agent dead-letters them inside its body); what does is a failure
    around them, such as a broker call timing out. Faust's default only commits and lets the supervisor
    restart the agent, which then goes on with the next events. But the event the body failed on was never
    acknowledged (agents/common.py: `settled_events`), so nothing after it on its partition could be
    committed again and the lag would grow until the next restart. Stopping commits what was finished; the
    restarted worker (compose's `restart: unless-stopped`, Kubernetes) processes the event again. Quix
    Streams stops on an unhandled processing error by default for the same reason.
    """

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        await super()._on_agent_error(agent, exc)
        log.error(
            "agent %s failed (%s: %s): stopping the worker; the event is processed again after the restart",
            getattr(agent, "name", agent),
            type(exc).__name__,
            exc,
        )
        await self.crash(exc)


def _seek_before_streaming() -> None:
    """Make Faust's consumers resume source partitions only once their committed offsets are sought.

    Why: at the end of a rebalance's recovery Faust resumes the source partitions, then asks the broker for
    their committed offsets and seeks there (`Recovery._resume_streams`), with flow control already active
    since the changelogs were read. Events fetched during that round trip reached the agents, and the seek
    then set Faust's read offsets back under them. The restart test lost one action of the bundled log that
    way in 4 of 9 runs on two loaded cores (1 of 19 with every offset traced; 2 of 4 with a second's delay
    put into the seek, 0 of 6 after this change):
    the action was queued for the agent, the `flow_control.resume()` that follows the seek emptied the
    queue (see `keep_queued_on_resume`), and the events fetched before the seek went on, so the action was
    never processed, never acknowledged, and the commit stopped below it until the next restart. Here a
    source partition that Faust resumes is kept paused until the next `perform_seek` has finished, so the
    first event an agent sees is the one at the committed offset (`agents/ordering.py` checks it).
    Changelog partitions (table recovery) resume at once, as before. A seek that fails leaves them paused;
    if no rebalance resumes them, the worker stops (`_stop_if_still_paused`). Needs `_fetch_only_active`:
    without it, records of the paused sources could be fetched and dropped during the seek.
    """
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_rote_seek_first", False):
        return
    resume, seek = Consumer.resume_partitions, Consumer.perform_seek

    def resume_partitions(self: Any, tps: Any) -> None:
        tps = set(tps)
        changelogs = self.app.tables.changelog_topics
        sources = {tp for tp in tps if tp.topic not in changelogs}
        if sources:
            self._rote_deferred = getattr(self, "_rote_deferred", set()) | sources
        resume(self, tps - sources)

    async def perform_seek(self: Any) -> None:
        generation = self.app.consumer_generation_id
        try:
            await seek(self)
        except BaseException:
            if getattr(self, "_rote_deferred", None):
                # kept on the consumer: a task nothing refers to may be collected before it runs
                self._rote_watch = asyncio.ensure_future(_stop_if_still_paused(self, generation))
            raise
        deferred: set[Any] = getattr(self, "_rote_deferred", set())
        self._rote_deferred = set()
        if deferred:
            resume(self, deferred & set(self.assignment()))  # not one revoked meanwhile

    Consumer.resume_partitions = resume_partitions  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._rote_seek_first = True  # type: ignore[attr-defined]


#: How long source partitions may stay paused after a seek that did not finish before the worker stops.
SEEK_GRACE_SECONDS = 60.0


async def _stop_if_still_paused(consumer: Any, generation: int) -> None:
    """Stop the worker if a failed seek left its source partitions paused and no rebalance came since.

    A seek cancelled by a new rebalance is followed by that rebalance's own recovery and seek, which resume
    them. One that timed out (Faust waits `broker_request_timeout`) ends Faust's recovery for good: the
    worker would then sit with paused partitions, processing nothing, and say nothing. Stopping lets the
    restart policy begin again (`RoteApp`).
    """
    await asyncio.sleep(SEEK_GRACE_SECONDS)
    app = consumer.app
    if app.consumer_generation_id != generation or not getattr(consumer, "_rote_deferred", None):
        return
    if app.should_stop:
        return
    from rote.errors import StateError

    exc = StateError(
        f"the committed offsets were not sought within {SEEK_GRACE_SECONDS:.0f} s of a failed seek and no "
        "rebalance followed: the source partitions stay paused; stopping so that the restart recovers"
    )
    log.error("%s", exc)
    await app.crash(exc)


def _fetch_only_active() -> None:
    """Make Faust's consumer thread fetch only the partitions active when the fetch was asked for.

    Why: Faust hands its live set of active partitions to the consumer thread, which reads it later. A
    pause in between (the end of a changelog recovery pauses the changelogs) can leave the set empty, and
    aiokafka reads an empty set as "every partition": it returned the source partitions' records too, and
    Faust dropped them, as not active, after aiokafka had counted them consumed. Those events were never
    processed nor fetched again; with `_seek_before_streaming` keeping the sources paused through the seek,
    a restarted worker stopped at its committed offset for good (the restart test, 4 of 7 runs on loaded
    cores). A copy taken when the fetch is asked for, and no fetch at all for an empty one, leave records of
    partitions that were not active in aiokafka's buffer, fetched once they are.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_rote_fetch_active", False):
        return
    getmany = thread.getmany

    async def getmany_active(self: Any, active_partitions: Any, timeout: float) -> Any:
        if active_partitions is None:
            return await getmany(self, None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await getmany(self, snapshot, timeout)

    thread.getmany = getmany_active  # type: ignore[method-assign]
    thread._rote_fetch_active = True  # type: ignore[attr-defined]


def keep_queued_on_resume(flow_control: Any) -> None:
    """Make `flow_control.resume()` a no-op while flow is already active, instead of emptying the agents'
    queues.

    Faust's `FlowControlEvent.resume` empties every queue it manages, the agents' event queues among them:
    meant for the step from suspended to active (what is queued then was fetched before a rebalance and is
    fetched again from the committed offset). But recovery resumes flow to read the changelogs and Faust
    resumes it again after seeking the source partitions; events queued in between belong to the current
    assignment, are fetched once, and emptied they are lost (`_seek_before_streaming`, the other half).
    """
    resume = flow_control.resume

    def resume_if_suspended() -> None:
        if not flow_control.is_active():
            resume()

    flow_control.resume = resume_if_suspended


def create_app(settings: Settings, *, bootstrap: str, app_id: str | None = None) -> tuple[faust.App, Topics]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust creates its datadir but not the parents
    _short_fetch_wait()
    _fetch_only_active()
    _seek_before_streaming()
    app = RoteApp(app_id or settings.app_id, Event=SettledEvent, **faust_settings(settings, bootstrap))
    keep_queued_on_resume(app.flow_control)
    # Table writes (checkpoints, log records, their tombstones) queue in Faust's producer buffer, which
    # pauses the stream and logs "producer buffer full" past 100 messages: a checkpoint that ends a long
    # write-ahead log deletes more records than that at once. A larger buffer keeps the pause for real
    # back-pressure only.
    app.producer.buffer.max_messages = 2000
    complete_flush(app.producer.buffer)
    topics = Topics(by_name={spec.name: _topic(app, spec) for spec in CATALOGUE})
    return app, topics


def complete_flush(buffer: Any) -> None:
    """Make Faust's producer buffer `flush` wait for every message buffered before it was called.

    Table writes (checkpoints, log records) wait in this buffer until its background task hands them to the
    Kafka client, and Faust flushes the producer before committing offsets so that the state an offset
    covers is on the broker first. But the buffer's `flush` returned as soon as one message took over 0.1 s
    to hand over (a loaded machine, a metadata fetch), and did not count the message the task was handing
    over at that moment: the commit then ran ahead of the state, and a worker stopping right after lost what
    was still buffered (one action short across a restart, seen under load). Here `flush` waits until the
    background task (one at a time, in order) has handed over every message queued before the call; the
    ones queued meanwhile are the next flush's, or a flush under steady load would never end.
    """
    count = {"queued": 0, "sent": 0}
    put_one, send_one = buffer.put, buffer._send_pending

    def put(fut: Any) -> None:
        count["queued"] += 1
        put_one(fut)

    async def send_pending(fut: Any) -> None:
        try:
            await send_one(fut)
        finally:
            count["sent"] += 1
            buffer.message_sent.set()

    async def flush() -> None:
        target = count["queued"]
        while count["sent"] < target:
            if buffer.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            buffer.message_sent.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)

    buffer.put = put
    buffer._send_pending = send_pending
    buffer.flush = flush


def _topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        retention=(spec.retention_ms / 1000.0) if spec.retention_ms else None,
        compacting=spec.cleanup.value == "compact",
        deleting=spec.cleanup.value == "delete",
        allow_empty=True,
    )


def internal_topics(app: faust.App) -> list[TopicSpec]:
    """The topics Faust would create for this app at start-up: every table's changelog and the optimizer feed.

    `rote run` and `rote worker` create them (with the catalogue) before the worker starts. Left to Faust
    they appear while the worker starts, and two races followed on Apache Kafka: a group whose first
    rebalance ran before the feed existed gave its partition to no one (Faust's assignor: "Ignoring missing
    topic"; nothing rebalanced later, so no report was ever made), and a table written before its
    changelog reached the client's metadata failed every write (`PartitionsMismatch`: "the changelog topic
    has 0 partitions"): the app's first run on a cluster where its feed already held events.
    """
    from rote.agents.optimizer_feed import feed_spec
    from rote.streams.topics import Cleanup

    out = [feed_spec(app.conf.id)]
    for table in app.tables.values():
        topic = table.changelog_topic
        out.append(
            TopicSpec(
                name=topic.get_topic_name(),
                schema="state",
                key="state key",
                partitions=int(topic.partitions or app.conf.topic_partitions),
                retention_ms=None,
                cleanup=Cleanup.COMPACT if topic.compacting else Cleanup.DELETE,
                description=f"Changelog of the {table.name} table.",
                extra_config=tuple(sorted((str(k), str(v)) for k, v in (topic.config or {}).items())),
            )
        )
    return out


def state_table(app: faust.App, name: str, *, partitions: int, use_partitioner: bool = False) -> Any:
    """A changelogged table of bytes keyed by bytes: Faust stores and recovers them without decoding.

    Values are encoded by `rote.state` (data-only JSON) before they reach the table, so nothing read back from
    a changelog during recovery can construct an object: with the raw codec and `bytes` types, Faust's
    serializer registry neither unpickles nor rebuilds its own models (as it does for `value_type=None`).
    """
    table: Any = app.Table(
        name,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=use_partitioner,
        # A bounded state's checkpoint is tens of kB; the topic limit only has to exceed rote's own cap.
        extra_topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
    )
    # Faust derives a table's changelog codecs from key_type/value_type only (a `schema=` is ignored) and
    # builds the changelog topic while registering the table, with JSON codecs: writes would then use the
    # serializers below but recovery would decode with JSON. So the codecs are set and the topic rebuilt.
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    table.changelog_topic = table._new_changelog_topic()
    return table
