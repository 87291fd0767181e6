"""Asking for a run: parameters from the command line, a request on `run-requests`, waiting for its answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from rote.errors import ConfigError
from rote.runner.kafka import client_kwargs
from rote.streams.schemas import RunMetric, RunRequest, decode, encode
from rote.streams.topics import METRICS, RUN_REQUESTS


def parse_params(items: Iterable[str]) -> dict[str, str]:
    """`name=value` items (the value may hold '='); a bad item is a one-line error."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not name.strip().isidentifier():
            raise ConfigError(f"--param needs NAME=VALUE with NAME an identifier, got {item!r}")
        params[name.strip()] = value
    return params


def new_request(
    automation_id: str, params: dict[str, str], *, by: str, allow_degraded: bool = False
) -> RunRequest:
    return RunRequest(
        run_id=f"run-{uuid.uuid4().hex}",
        automation_id=automation_id,
        params=params,
        requested_by=by,
        requested_at=datetime.now(UTC),
        allow_degraded=allow_degraded,
    )


async def request_and_wait(bootstrap: str, request: RunRequest, *, wait_seconds: float) -> RunMetric | None:
    """Publish the request and wait for the executor's metrics event for it (None on time-out)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(**client_kwargs(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(METRICS.name, p) for p in range(METRICS.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:  # pin the positions before sending, so the answer cannot be missed
            await consumer.position(tp)
        producer = AIOKafkaProducer(**client_kwargs(bootstrap), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                RUN_REQUESTS.name, encode(request), key=request.automation_id.encode()
            )
        finally:
            await producer.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for msg in msgs:
                    try:
                        m = decode(RunMetric, msg.value or b"")
                    except Exception:
                        continue
                    if m.run_id == request.run_id:
                        return m
        return None
    finally:
        await consumer.stop()
