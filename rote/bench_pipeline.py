"""Pipeline throughput: what Kafka + Faust cost per event, next to what routine discovery costs.

One run, one broker (the embedded Tansu), one topic pre-filled with N real user-action events (the bundled
StudentRecord log, repeated with one user per copy so keys spread over the partitions). The backlog is then
read side by side by:

- (a) a raw aiokafka consumer, one event at a time (`async for`, the way an agent sees events) and in
  batches (`getmany`), from the first event delivered to the last;
- (b) a trivial Faust agent (it only counts), in a `faust.Worker` on the app `rote run` builds, each repeat
  in a fresh process with a fresh consumer group. Faust's start (group join, assignment, recovery) is
  reported apart from the throughput, which runs from the first event the agent sees to the last;
- (c) the in-process work the task identifier does per event: `decode(UserAction, bytes)` and
  `RoutineDiscoverer.learn_one` on the same payloads.

Medians over repeats; ratios say how much of the pipeline's per-event cost is the framework. The Faust
side runs in a child process because a `faust.Worker` owns (and closes) its event loop and signal handlers:
one per process is what Faust supports, and a fresh process also gives every repeat the same cold start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rote.errors import RoteError
from rote.streams.schemas import UserAction, decode, encode
from rote.streams.topics import USER_ACTIONS, Cleanup, TopicSpec

#: Seconds a Faust repeat may take before it is reported as failed (start ~4 s, 20k events ~1.5 s).
FAUST_TIMEOUT_SECONDS = 180.0


class BenchmarkError(RoteError):
    """A benchmark leg did not complete (events missing, child process failed)."""


def bench_events(n: int) -> list[tuple[bytes, bytes]]:
    """N (key, value) payloads: the bundled real log repeated, each copy re-keyed as its own user."""
    from rote.importers import bundled_log, load_actions

    path, fmt = bundled_log()
    base = load_actions(path, fmt=fmt)
    if not base:
        raise BenchmarkError(f"no events in the bundled log {path}")
    out: list[tuple[bytes, bytes]] = []
    copy = 0
    while len(out) < n:
        user = f"bench-u{copy}"
        for a in base[: n - len(out)]:
            ev = a.model_copy(update={"event_id": f"{user}-{a.event_id}", "user_id": user})
            out.append((user.encode(), encode(ev)))
        copy += 1
    return out


def _topic_spec() -> TopicSpec:
    """A fresh topic shaped like `user-actions`, so a reused broker's traffic cannot leak in."""
    return TopicSpec(
        name=f"bench-user-actions-{uuid.uuid4().hex[:8]}",
        schema=USER_ACTIONS.schema,
        key=USER_ACTIONS.key,
        partitions=USER_ACTIONS.partitions,
        retention_ms=None,
        cleanup=Cleanup.DELETE,
        description="rote bench: user-action backlog",
    )


async def _produce(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        t0 = time.perf_counter()
        for key, value in events:
            await producer.send(topic, value, key=key)
        await producer.flush()
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def _raw_consume(bootstrap: str, topic: str, partitions: int, n: int, *, batched: bool
                       ) -> dict[str, float]:
    """Read the backlog from the start with group-less assignment; times relative to `start()`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    t0 = time.perf_counter()
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count = 0
        first = half = last = 0.0
        async with asyncio.timeout(120):
            if batched:
                while count < n:
                    batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                    got = sum(len(msgs) for msgs in batch.values())
                    if got:
                        now = time.perf_counter()
                        first = first or now
                        if count < n // 2 <= count + got:
                            half = now
                        count += got
                        last = now
            else:
                async for _msg in consumer:
                    now = time.perf_counter()
                    first = first or now
                    count += 1
                    if count == n // 2:
                        half = now
                    if count >= n:
                        last = now
                        break
    finally:
        await consumer.stop()
    if count < n:
        raise BenchmarkError(f"raw consumer read {count} of {n} events")
    return {"start_to_first_s": first - t0, "first_to_last_s": last - first, "half_to_last_s": last - half,
            "start_to_last_s": last - t0}


def _faust_once(bootstrap: str, topic: str, n: int, workdir: Path) -> dict[str, float]:
    """One Faust repeat in a child process (see the module docstring for why)."""
    out = workdir / f"faust-{uuid.uuid4().hex[:8]}.json"
    cmd = [sys.executable, "-m", "rote.bench_pipeline", "faust-child", "--bootstrap", bootstrap,
           "--topic", topic, "--events", str(n), "--workdir", str(workdir), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FAUST_TIMEOUT_SECONDS + 60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchmarkError(f"faust child exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    if result.get("error"):
        raise BenchmarkError(f"faust child: {result['error']}")
    return {k: float(v) for k, v in result.items() if k != "error"}


def _faust_child(bootstrap: str, topic_name: str, n: int, workdir: Path, out: Path) -> None:
    """Run a `faust.Worker` with one counting agent until it has seen `n` events; write the timings."""
    import contextlib
    import logging

    import faust

    from rote.agents.app import create_app
    from rote.config import Settings

    settings = Settings(state_dir=workdir, metrics_port=0, web_port=0)
    app, _topics = create_app(settings, bootstrap=bootstrap, app_id=f"rote-bench-{uuid.uuid4().hex[:8]}")
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=USER_ACTIONS.partitions, allow_empty=True)
    seen = {"count": 0, "first": 0.0, "half": 0.0, "last": 0.0}
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
            if seen["count"] == n // 2:
                seen["half"] = now
            if seen["count"] >= n:
                seen["last"] = now
                done.set()

    @app.task
    async def _stop_when_done() -> None:
        try:
            await asyncio.wait_for(done.wait(), FAUST_TIMEOUT_SECONDS)
        except TimeoutError:
            error.append(f"saw {seen['count']} of {n} events in {FAUST_TIMEOUT_SECONDS:.0f} s")
        await box["worker"].stop()

    logging.basicConfig(level=logging.ERROR)
    worker = faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False, override_logging=False)
    box["worker"] = worker
    t0 = time.perf_counter()
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()
    result: dict[str, Any] = {"error": error[0] if error else None}
    if not error:
        result |= {
            "start_to_first_s": seen["first"] - t0,
            "first_to_last_s": seen["last"] - seen["first"],
            "half_to_last_s": seen["last"] - seen["half"],
            "start_to_last_s": seen["last"] - t0,
        }
    out.write_text(json.dumps(result))


def _discovery_costs(events: list[tuple[bytes, bytes]], repeats: int) -> dict[str, float]:
    """µs/event of decoding alone and of decode + `learn_one` (one state per user), medians."""
    from rote.discovery import DiscoveryConfig, RoutineDiscoverer

    decode_s: list[float] = []
    learn_s: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _key, value in events:
            decode(UserAction, value)
        decode_s.append(time.perf_counter() - t0)
        disc = RoutineDiscoverer(DiscoveryConfig())
        states: dict[str, Any] = {}
        t0 = time.perf_counter()
        for _key, value in events:
            action = decode(UserAction, value)
            state = states.get(action.user_id)
            if state is None:
                state = states[action.user_id] = disc.new_state(action.user_id)
            disc.learn_one(state, action)
        learn_s.append(time.perf_counter() - t0)
    n = len(events)
    return {
        "decode_us_per_event": statistics.median(decode_s) / n * 1e6,
        "decode_and_discovery_us_per_event": statistics.median(learn_s) / n * 1e6,
    }


def _rate(events: int, seconds: float) -> float | None:
    """events/s, or None when everything arrived in one batch and there is no span to divide by."""
    return round(events / seconds, 1) if seconds > 0 else None


def _leg(runs: list[dict[str, float]], n: int) -> dict[str, Any]:
    """Median timings of one consumer's repeats; rates over the n-1 gaps between first and last event."""
    span = statistics.median(r["first_to_last_s"] for r in runs)
    rate = _rate(n - 1, span)
    return {
        "repeats": len(runs),
        "events_per_second": rate,
        "us_per_event": round(span / (n - 1) * 1e6, 3),
        "events_per_second_slowest": _rate(n - 1, max(r["first_to_last_s"] for r in runs)),
        # The second half alone: the steady rate, once start-up work (commits, recovery) is behind.
        "second_half_events_per_second": _rate(
            n - n // 2, statistics.median(r["half_to_last_s"] for r in runs)),
        "start_to_first_event_s": round(statistics.median(r["start_to_first_s"] for r in runs), 3),
        "start_to_last_event_s": round(statistics.median(r["start_to_last_s"] for r in runs), 3),
    }


def measure(
    *,
    events: int,
    raw_repeats: int,
    faust_repeats: int,
    discovery_repeats: int,
    bootstrap: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The benchmark proper, on `bootstrap` or on an embedded Tansu started (and stopped) here."""
    from rote.brokers import create_topics, start_broker

    note = progress or (lambda _msg: None)
    payloads = bench_events(events)
    spec = _topic_spec()
    with start_broker(bootstrap) as broker, tempfile.TemporaryDirectory(prefix="rote-bench-") as tmp:
        note("producing")
        create_topics(broker.bootstrap, [spec])
        produce_s = asyncio.run(_produce(broker.bootstrap, spec.name, payloads))
        raw: list[dict[str, float]] = []
        batched: list[dict[str, float]] = []
        faust: list[dict[str, float]] = []
        # Interleaved, so load from other processes on the machine falls on every leg alike.
        for i in range(max(raw_repeats, faust_repeats)):
            if i < raw_repeats:
                note(f"raw aiokafka {i + 1}/{raw_repeats}")
                raw.append(asyncio.run(_raw_consume(broker.bootstrap, spec.name, spec.partitions, events,
                                                    batched=False)))
                batched.append(asyncio.run(_raw_consume(broker.bootstrap, spec.name, spec.partitions,
                                                        events, batched=True)))
            if i < faust_repeats:
                note(f"faust agent {i + 1}/{faust_repeats}")
                faust.append(_faust_once(broker.bootstrap, spec.name, events, Path(tmp)))
        broker_kind = broker.kind
    note("discovery in process")
    costs = _discovery_costs(payloads, discovery_repeats)
    raw_leg, batched_leg, faust_leg = _leg(raw, events), _leg(batched, events), _leg(faust, events)
    disc_us = costs["decode_and_discovery_us_per_event"]
    faust_us = faust_leg["us_per_event"]
    return {
        "broker": broker_kind,
        "events": events,
        "users": len({k for k, _ in payloads}),
        "mean_event_bytes": round(statistics.mean(len(v) for _, v in payloads), 1),
        "produce_events_per_second": round(events / produce_s, 1),
        "raw_aiokafka": raw_leg,
        "raw_aiokafka_getmany": batched_leg,
        "faust_agent": faust_leg,
        "discovery_in_process": {
            "repeats": discovery_repeats,
            "decode_us_per_event": round(costs["decode_us_per_event"], 3),
            "us_per_event": round(disc_us, 3),
            "events_per_second": round(1e6 / disc_us, 1),
        },
        "ratios": {
            "raw_vs_faust_throughput": round(faust_us / raw_leg["us_per_event"], 2),
            "faust_overhead_us_per_event": round(faust_us - raw_leg["us_per_event"], 3),
            "discovery_vs_faust_cost": round(disc_us / faust_us, 3),
            "faust_share_of_agent_cost": round(faust_us / (faust_us + disc_us), 3),
        },
    }


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    """Raw aiokafka vs a trivial Faust agent vs in-process discovery on one embedded broker, medians."""
    return {
        "name": "pipeline",
        "quick": quick,
        **measure(
            events=5_000 if quick else 20_000,
            raw_repeats=3 if quick else 5,
            faust_repeats=1 if quick else 3,
            discovery_repeats=3 if quick else 5,
        ),
    }


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rote.bench_pipeline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the benchmark and print its JSON")
    run.add_argument("--quick", action="store_true")
    child = sub.add_parser("faust-child", help="internal: one Faust repeat")
    child.add_argument("--bootstrap", required=True)
    child.add_argument("--topic", required=True)
    child.add_argument("--events", type=int, required=True)
    child.add_argument("--workdir", type=Path, required=True)
    child.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "faust-child":
        _faust_child(args.bootstrap, args.topic, args.events, args.workdir, args.out)
    else:
        print(json.dumps(run_benchmark(quick=args.quick), indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(_main())
