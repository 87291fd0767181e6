"""Optimizer feed: funnels every event the analysis needs into one single-partition topic.

The workflow analyzer and the efficiency tracker look across all routines and automations at once, but
their inputs are keyed by candidate or automation over several partitions; a Faust table must be
co-partitioned with its source. Re-keying everything onto `rote-optimizer-feed` (one partition) gives one
owner for the whole-picture state, with changelogged tables like every other agent. Volumes are low
(candidates, automations, results, runs, anomalies: not user actions), so one partition is no bottleneck.
The source topic travels in a header; events are validated here, and candidates, automations and test
results must carry their maker's signature (rote.security.verdicts). Candidates and automations go on in their
compact form (`rote.workflow.analysis.compact_candidate`/`compact_automation`: what the analysis and the
report read, without each instance's targets and event ids or the generated code and test cases), which
both consumers would make at once anyway: a fresh candidate is tens of kB, and it is decoded twice after
this. Other events are forwarded untouched.
"""

from __future__ import annotations

from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.streams.topics import (
    ANOMALIES,
    AUTOMATIONS,
    BY_NAME,
    CANDIDATES,
    METRICS,
    TEST_RESULTS,
    Cleanup,
    TopicSpec,
)

AGENT = "optimizer-feed"
SOURCE_HEADER = "rote-source-topic"
#: The source event's key: tells whole-picture agents whose state a tombstone deletes.
KEY_HEADER = "rote-source-key"
FEED_KEY = b"all"
SOURCES = (CANDIDATES.name, AUTOMATIONS.name, TEST_RESULTS.name, METRICS.name, ANOMALIES.name)


def feed_topic_name(app_id: str) -> str:
    """`<app id>-optimizer-feed`: apps sharing a cluster never read each other's feed (a fixed name let a
    second app's tracker report the first one's automations); the workers' ACLs on `<app id>-` cover it."""
    return f"{app_id}-optimizer-feed"


def feed_spec(app_id: str) -> TopicSpec:
    """The feed's topic, created before a worker starts (`rote.agents.app.internal_topics`)."""
    return TopicSpec(
        name=feed_topic_name(app_id),
        schema="mixed",
        key="all",
        partitions=1,
        retention_ms=None,
        cleanup=Cleanup.DELETE,
        description="Internal: every event the workflow analyzer and the efficiency tracker read.",
    )


def feed_topic(app: faust.App) -> faust.TopicT:
    return app.topic(
        feed_topic_name(app.conf.id),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        internal=True,
    )


def register(app: faust.App, topics: Topics, *, result_key: bytes) -> dict[str, Any]:
    feed = feed_topic(app)
    feed_name = feed.get_topic_name()
    sources = app.topic(
        *SOURCES, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    from rote.agents.common import (  # common imports this module (source_of)
        AgentIO,
        settled_events,
    )
    from rote.security.verdicts import SIGNED
    from rote.streams.schemas import SCHEMAS

    io = AgentIO(agent=AGENT, topics=topics)

    @app.agent(sources, name=AGENT)
    async def forward(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            # Validated here, once, against the source topic's schema: an invalid event is dead-lettered
            # with its real topic and never reaches the analyzer or the tracker.
            topic = event.message.topic
            headers = {SOURCE_HEADER: topic.encode(), KEY_HEADER: bytes(event.key or b"")}
            if not event.value:
                # A tombstone on a compacted topic (a candidate the discoverer withdrew): passed on, so the
                # analyzer and the tracker drop that routine instead of reporting it for ever.
                io.consumed(event)
                if topic == CANDIDATES.name and event.key:
                    await feed.send(key=FEED_KEY, value=None, headers=headers)
                    metrics.EVENTS_PRODUCED.labels(topic=feed_name, agent=AGENT).inc()
                continue
            model = SCHEMAS[BY_NAME[topic].schema]
            decoded = await io.decode(model, event, event.value, event.key)
            if decoded is None:
                continue
            if type(decoded) in SIGNED and await io.refuse_unsigned(decoded, result_key, event, topic):
                # a candidate, automation, verdict or run no holder of the key made: the report must not
                # count it as a routine found, a program rote rendered, a test it passed or a run
                continue
            await feed.send(key=FEED_KEY, value=_compact(decoded) or event.value, headers=headers)
            metrics.EVENTS_PRODUCED.labels(topic=feed_name, agent=AGENT).inc()

    return {"agent": forward, "topic": feed}


def _compact(event: Any) -> bytes | None:
    """The compact encoding of a candidate or automation; None: forward the bytes as they came."""
    from rote.streams.schemas import Automation, Candidate, encode
    from rote.workflow.analysis import compact_automation, compact_candidate

    if isinstance(event, Candidate):
        slim: Any = compact_candidate(event)
    elif isinstance(event, Automation):
        slim = compact_automation(event)
    else:
        return None
    return None if slim is event else encode(slim)


def _header(event: faust.EventT, name: str) -> str:
    headers = event.headers or {}
    raw = headers.get(name) if isinstance(headers, dict) else dict(headers).get(name)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def source_of(event: faust.EventT) -> str:
    return _header(event, SOURCE_HEADER)


def source_key_of(event: faust.EventT) -> str:
    return _header(event, KEY_HEADER)


def entity_key(topic: str, event: Any) -> str:
    """The whole-picture agents' state key of a feed event: one per routine and one per automation, so no
    state record grows with how many there are (issue: one whole-picture record passed 32 MiB)."""
    if topic == CANDIDATES.name:
        return f"c:{event.candidate_id}"
    return f"a:{event.automation_id}"
