"""Simulated production runs (demo only)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from rote import metrics
from rote.pipeline.options import Progress, RunOptions
from rote.streams.schemas import RunMetric, StepTiming, encode
from rote.streams.topics import METRICS, USER_ACTIONS


async def production_runs(bootstrap: str, options: RunOptions, state: Progress, stop: asyncio.Event) -> None:
    """Simulated production runs of the first verified automation, ending in an injected slowdown.

    Durations and per-step timings are resampled from that automation's own sandbox runs (so the numbers
    are the automation's, not invented), with the last `slowdown_runs` runs `slowdown_factor` times slower.
    """
    from aiokafka import AIOKafkaProducer

    deadline = time.monotonic() + options.timeout_seconds
    consumed = metrics.EVENTS_CONSUMED.labels(topic=USER_ACTIONS.name, agent="task-identifier")
    while not state.verified:
        if stop.is_set() or time.monotonic() > deadline:
            return
        caught_up = state.replay_done and consumed._value.get() >= state.produced + state.injected_bad
        if caught_up and time.monotonic() - state.last_event > options.quiet_seconds:
            return  # everything was processed and nothing got verified: nothing to run in production
        await asyncio.sleep(0.5)
    aid = state.verified[0]
    samples = state.sandbox_durations.get(aid) or []
    if not samples:
        return
    rng = random.Random(options.seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = datetime.now(UTC) - timedelta(minutes=options.production_runs)
        version = samples[-1].version
        for i in range(options.production_runs):
            base = rng.choice(samples)
            slow = options.slowdown_factor if i >= options.production_runs - options.slowdown_runs else 1.0
            jitter = rng.uniform(0.9, 1.1)
            steps = [
                StepTiming(step=s.step, label=s.label, duration_seconds=s.duration_seconds * jitter * slow)
                for s in base.steps
            ]
            run_metric = RunMetric(
                run_id=f"prod-{uuid.uuid4().hex[:16]}",
                automation_id=aid,
                version=version,
                source="production",
                started_at=start + timedelta(minutes=i),
                duration_seconds=base.duration_seconds * jitter * slow,
                success=True,
                cpu_seconds=base.cpu_seconds,
                peak_memory_bytes=base.peak_memory_bytes,
                steps=steps,
            )
            await producer.send(METRICS.name, encode(run_metric), key=aid.encode())
            state.production_runs += 1
            await asyncio.sleep(0.02)
        await producer.flush()
    finally:
        await producer.stop()
