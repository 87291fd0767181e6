"""The transport and framework legs the real worker is compared with, on the same broker and records.

- raw aiokafka `getmany`: what reading the records costs at all (one action per record, as the issue's
  baseline: this is `raw_getmany_per_s`);
- a trivial Faust agent (counts records): what faust-streaming's per-record machinery costs;
- a Quix Streams app doing JSON decode + a per-key state update (a peer framework doing comparable
  stateful work; optional: `pip install 'rote[bench-peers]'`).

The framework legs run in child processes: a `faust.Worker` owns its event loop and signal handlers (one
per process), and a fresh process gives every repeat the same cold start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from rote.errors import RoteError

#: Seconds a child leg may take before it is reported as failed.
CHILD_TIMEOUT_SECONDS = 300.0


class BenchmarkError(RoteError):
    """A benchmark leg did not complete (records missing, child process failed)."""


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """Send records in order; returns (partition, offset) of each (the worker leg maps offsets to actions)."""
    from aiokafka import AIOKafkaProducer

    from rote.brokers.security import aiokafka_kwargs

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 << 20, **aiokafka_kwargs()
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await producer.flush()
        metas = [await f for f in futures]
        return [(m.partition, m.offset) for m in metas]
    finally:
        await producer.stop()


async def raw_getmany(bootstrap: str, topic: str, partitions: int, n: int) -> dict[str, float]:
    """Read n records from the start with group-less assignment; first-to-last timing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from rote.brokers.security import aiokafka_kwargs

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count, last = 0, 0.0
        # From the first fetch on (the records are there already): a backlog small enough for one fetch
        # still has a duration.
        first = time.perf_counter()
        async with asyncio.timeout(CHILD_TIMEOUT_SECONDS):
            while count < n:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                got = sum(len(msgs) for msgs in batch.values())
                if got:
                    count += got
                    last = time.perf_counter()
    finally:
        await consumer.stop()
    if count < n:
        raise BenchmarkError(f"raw consumer read {count} of {n} records")
    return {"records": count, "first_to_last_s": last - first}


def child(leg: str, bootstrap: str, topic: str, n: int, workdir: Path) -> dict[str, float]:
    """Run one framework leg (`faust` or `quix`) in a child process; its timings."""
    out = workdir / f"{leg}-{uuid.uuid4().hex[:8]}.json"
    cmd = [
        sys.executable,
        "-m",
        "rote.pipeline_bench",
        f"{leg}-child",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--events",
        str(n),
        "--workdir",
        str(workdir),
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS + 60, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchmarkError(f"{leg} child exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    if result.get("error"):
        raise BenchmarkError(f"{leg} child: {result['error']}")
    return {k: float(v) for k, v in result.items() if k != "error"}


def faust_child(bootstrap: str, topic_name: str, n: int, workdir: Path, out: Path) -> None:
    """A `faust.Worker` with one counting agent, until it has seen n records; writes the timings."""
    import contextlib
    import logging

    import faust

    from rote.agents.app import create_app
    from rote.config import Settings

    settings = Settings(state_dir=workdir, metrics_port=0, web_port=0)
    app, _topics = create_app(settings, bootstrap=bootstrap, app_id=f"rote-bench-{uuid.uuid4().hex[:8]}")
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )
    seen = {"count": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()
    error: list[str] = []
    box: dict[str, Any] = {}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for _value in stream:
            now = time.perf_counter()
            if not seen["count"]:
                seen["first"] = now
            seen["count"] += 1
            if seen["count"] >= n:
                seen["last"] = now
                done.set()

    @app.task
    async def _stop_when_done() -> None:
        try:
            await asyncio.wait_for(done.wait(), CHILD_TIMEOUT_SECONDS)
        except TimeoutError:
            error.append(f"saw {seen['count']} of {n} records in {CHILD_TIMEOUT_SECONDS:.0f} s")
        await box["worker"].stop()

    logging.basicConfig(level=logging.ERROR)
    worker = faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False, override_logging=False)
    worker.spinner = None
    box["worker"] = worker
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()
    result: dict[str, Any] = {"error": error[0] if error else None}
    if not error:
        result |= {"records": seen["count"], "first_to_last_s": seen["last"] - seen["first"]}
    out.write_text(json.dumps(result))


def quix_child(bootstrap: str, topic_name: str, n: int, workdir: Path, out: Path) -> None:
    """A Quix Streams app: JSON-decode each record and update a per-key counter in its state store."""
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"rote-bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=str(workdir / "quix-state"),
        loglevel="ERROR",
    )
    topic = app.topic(topic_name, value_deserializer="json", key_deserializer="str")
    seen = {"count": 0, "first": 0.0, "last": 0.0}

    def update(value: dict[str, Any], state: Any) -> None:
        state.set("actions", int(state.get("actions", 0)) + 1)
        state.set("last_app", value.get("app"))
        now = time.perf_counter()
        if not seen["count"]:
            seen["first"] = now
        seen["count"] += 1
        if seen["count"] >= n:
            seen["last"] = now
            app.stop()

    sdf = app.dataframe(topic)
    sdf = sdf.update(update, stateful=True)
    started = time.perf_counter()
    app.run()
    error = None if seen["count"] >= n else f"saw {seen['count']} of {n} records"
    out.write_text(
        json.dumps(
            {
                "error": error,
                "records": seen["count"],
                "first_to_last_s": seen["last"] - seen["first"],
                "start_to_last_s": seen["last"] - started,
            }
        )
    )


def quix_available() -> bool:
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        return False
    return True
