"""The run's recorder: every catalogue topic archived from where it ended before the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from rote.archive import ArchiveWriter
from rote.brokers.security import aiokafka_kwargs, kafka_python_kwargs
from rote.pipeline.options import Progress
from rote.streams.schemas import RunMetric
from rote.streams.topics import (
    AUTOMATIONS,
    CANDIDATES,
    CATALOGUE,
    METRICS,
    OPTIMIZATION_REPORTS,
    TEST_RESULTS,
    USER_ACTIONS,
)


def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    """Where every catalogue partition ends before this run: the run records and counts only what follows.

    On a cluster that already holds earlier runs' events (the agents' groups resume from their committed
    offsets), counting from the beginning would mix runs and wait for events nobody will process again.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_python_kwargs())
    try:
        parts = [TopicPartition(spec.name, p) for spec in CATALOGUE for p in range(spec.partitions)]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


async def recorder(
    bootstrap: str,
    archive: ArchiveWriter,
    state: Progress,
    stop: asyncio.Event,
    start_offsets: dict[tuple[str, int], int],
    result_key: bytes | None = None,
) -> None:
    """Read every catalogue topic from where it ended before the run; archive it for the watcher."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p) for spec in CATALOGUE for p in range(spec.partitions)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start_offsets.get((tp.topic, tp.partition), 0))
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, msgs in batch.items():
                for msg in msgs:
                    _observe(tp.topic, msg.value or b"", archive, state, result_key)
    finally:
        await consumer.stop()


def _signed(topic: str, value: bytes, key: bytes | None) -> bool:
    """True for an event of a kind that is not signed, or one that verifies under the run's key.

    The archive is read later without the run's key (`rote automations run` without a broker, `rote
    report`, `registry.from_archive`), so a test result, automation, candidate or run metric that does not
    verify now must not reach it: it would count as a verdict, a program rote rendered, a routine rote found
    or a run. Such records are dead-lettered with the reason by the agents that read them."""
    from rote.security.verdicts import verify
    from rote.streams.schemas import Automation, Candidate, TestResult

    model: type[TestResult | Automation | Candidate | RunMetric] | None = {
        TEST_RESULTS.name: TestResult,
        AUTOMATIONS.name: Automation,
        CANDIDATES.name: Candidate,
        METRICS.name: RunMetric,
    }.get(topic)
    if model is None:
        return True
    try:
        return key is not None and verify(model.model_validate_json(value), key)
    except Exception:
        return False


def _observe(
    topic: str, value: bytes, archive: ArchiveWriter, state: Progress, result_key: bytes | None = None
) -> None:
    state.counts[topic] = state.counts.get(topic, 0) + 1
    if topic not in (USER_ACTIONS.name, OPTIMIZATION_REPORTS.name):
        state.last_event = time.monotonic()
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        return  # invalid input (kept whole in dead-letters) or a tombstone: nothing to archive
    if not _signed(topic, value, result_key):
        return  # unsigned or forged: dead-lettered by the agents; the archive must not keep it (`_signed`)
    archive.write(topic, value)
    if topic == METRICS.name and data.get("source") == "production":
        state.production_recorded.add(str(data.get("run_id")))
    elif topic == METRICS.name and data.get("source") == "sandbox":
        with contextlib.suppress(Exception):
            m = RunMetric.model_validate(data)
            if m.success and m.steps:  # a real run (not a language that cannot run here): a timing sample
                state.sandbox_durations.setdefault(m.automation_id, []).append(m)
    elif topic == AUTOMATIONS.name and data.get("state") == "verified":
        aid = str(data.get("automation_id"))
        if aid not in state.verified:
            state.verified.append(aid)
