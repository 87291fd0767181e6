"""`rote run`: the whole pipeline in one process on one broker, fed by a replayed UI log.

One asyncio loop (owned by the Faust worker) runs the agents, the sandbox service, the replay, a recorder
that archives every topic for `rote report`/`rote automations`, and, with `--once`, a watcher that stops
everything when the replay has been fully processed and the pipeline has gone quiet.

Two demo inputs are injected unless `--no-inject` is given, both reported as such in the summary:
malformed events on `user-actions` (to show the dead-letter path on real broker traffic), and simulated
production runs of the first verified automation, built from its measured sandbox timings and ending in a
slowdown (to show run tracking, time saved and anomaly detection end to end). Nothing else is synthetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rote import metrics
from rote.archive import ArchiveWriter, read_events
from rote.config import Settings
from rote.streams.schemas import (
    Automation,
    Candidate,
    OptimizationReport,
    RunMetric,
    StepTiming,
    TestResult,
    encode,
)
from rote.streams.topics import (
    ANOMALIES,
    AUTOMATIONS,
    CANDIDATES,
    CATALOGUE,
    DEAD_LETTERS,
    METRICS,
    OPTIMIZATION_REPORTS,
    TEST_RESULTS,
    USER_ACTIONS,
)

log = logging.getLogger("rote.run")

#: Malformed payloads a real producer fleet sends sooner or later, one of each kind.
MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("truncated JSON", b'{"event_id": "bad-1", "user_id": "demo", "timest'),
    ("not UTF-8", b"\xff\xfe\x00garbage"),
    ("JSON array", b'[{"event_id": "bad-3"}]'),
    ("missing fields", b'{"event_id": "bad-4", "app": "Excel"}'),
    (
        "bad timestamp",
        b'{"event_id": "bad-5", "user_id": "demo", "timestamp": "yesterday", "app": "Excel",'
        b' "action_type": "copy"}',
    ),
)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    replay: Path | None = None
    fmt: str = "actionlogger"
    user_id: str = "user-1"
    #: Replay speed: 0 as fast as the broker takes it; 1.0 the log's own pace; 10 ten times faster.
    speed: float = 0.0
    once: bool = True
    inject: bool = True
    production_runs: int = 60
    slowdown_runs: int = 8
    slowdown_factor: float = 6.0
    #: With --once: seconds without new events (after the replay is consumed) that mean "done".
    quiet_seconds: float = 8.0
    timeout_seconds: float = 900.0
    linger_seconds: float = 0.0
    progress: bool = True
    seed: int = 7


@dataclass
class _Progress:
    produced: int = 0
    replay_total: int = 0
    replay_done: bool = False
    injected_bad: int = 0
    production_runs: int = 0
    production_done: bool = False
    last_event: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    sandbox_durations: dict[str, list[RunMetric]] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)
    timed_out: bool = False
    error: str | None = None


def run(
    settings: Settings, options: RunOptions, *, on_summary: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the pipeline; with `once`, return the summary when the replay has been processed.

    `on_summary` sees the summary before `linger_seconds` of further metrics serving, so a person (or a
    test) has the result while Prometheus can still scrape the final values.
    """
    from rote.agents import AgentOptions, build_app
    from rote.brokers import create_topics, start_broker
    from rote.importers import bundled_log

    replay, fmt = (options.replay, options.fmt) if options.replay else bundled_log()
    run_dir = settings.state_dir / "last-run"
    state = _Progress()
    started = time.monotonic()
    broker_url = None if settings.broker == "embedded" else settings.broker
    with start_broker(broker_url) as broker:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, CATALOGUE, replication=settings.replication)
        server = _serve_metrics(settings)
        app, _parts = build_app(
            settings,
            bootstrap=bootstrap,
            options=AgentOptions(
                idle_flush_seconds=3.0 if options.once else 300.0,
                report_interval_seconds=4.0 if options.once else settings.report_interval_seconds,
            ),
        )
        archive = ArchiveWriter(run_dir)
        stop = asyncio.Event()
        worker_box: dict[str, Any] = {}

        @app.task
        async def _sandbox() -> None:
            from rote.sandbox_runner.service import SandboxService

            try:
                service = SandboxService(
                    bootstrap_servers=bootstrap,
                    group_id=f"{settings.app_id}-sandbox",
                    concurrency=settings.sandbox_concurrency,
                )
                await service.run(stop=stop)
            except Exception as exc:  # the run must say why it cannot finish, not hang
                state.error = f"sandbox service failed: {exc!r}"
                log.exception("sandbox service failed")

        start_offsets = _end_offsets(bootstrap)

        @app.task
        async def _record() -> None:
            await _recorder(bootstrap, archive, state, stop, start_offsets)

        @app.task
        async def _replay() -> None:
            await _replay_log(bootstrap, replay, fmt, options, state)

        @app.task
        async def _simulate() -> None:
            if options.inject:
                await _production_runs(bootstrap, options, state, stop)
            state.production_done = True

        if options.once:
            report_status = _parts["efficiency_tracker"]["status"]

            @app.task
            async def _watch() -> None:
                await _watch_until_done(options, state, started, stop, report_status)
                await asyncio.sleep(0.5)
                await worker_box["worker"].stop()

        worker = _make_worker(app)
        worker_box["worker"] = worker
        with contextlib.suppress(SystemExit):
            worker.execute_from_commandline()
        archive.close()
    summary = summarize(
        run_dir, state, seconds=time.monotonic() - started, replay=replay, broker_kind=broker.kind
    )
    if on_summary is not None:
        on_summary(summary)
    if server is not None:
        if options.linger_seconds > 0:
            time.sleep(options.linger_seconds)
        server.close()
    return summary


def _make_worker(app: Any) -> Any:
    import faust

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Faust's start/stop spinner and banner go to stderr: stdout is kept for the summary (`--json`).
    return faust.Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        stdout=sys.stderr,
    )


def _serve_metrics(settings: Settings) -> Any:
    metrics.init_known_series()
    if settings.metrics_port <= 0:
        return None
    return metrics.serve(settings.metrics_port, settings.metrics_addr)


async def _replay_log(bootstrap: str, path: Path, fmt: str, options: RunOptions, state: _Progress) -> None:
    from aiokafka import AIOKafkaProducer

    from rote.importers import iter_records

    records = list(iter_records(path, fmt=fmt, user_id=options.user_id))  # type: ignore[arg-type]
    state.replay_total = len(records) + (len(MALFORMED) if options.inject else 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        bar = _bar(options, "replay", state.replay_total)
        prev: datetime | None = None
        bad = list(MALFORMED) if options.inject else []
        stride = max(1, len(records) // (len(bad) + 1))
        for i, rec in enumerate(records):
            ts = _timestamp(rec.payload)
            if options.speed > 0 and prev is not None and ts is not None:
                await asyncio.sleep(max(0.0, (ts - prev).total_seconds() / options.speed))
            prev = ts or prev
            key = str(rec.payload.get("user_id") or options.user_id).encode()
            await producer.send(USER_ACTIONS.name, json.dumps(rec.payload).encode(), key=key)
            state.produced += 1
            if bad and i % stride == stride - 1:
                _label, payload = bad.pop(0)
                await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
                state.injected_bad += 1
            bar(1 + (1 if state.injected_bad and i % stride == stride - 1 else 0))
        for _label, payload in bad:
            await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
            state.injected_bad += 1
            bar(1)
        await producer.flush()
    finally:
        await producer.stop()
    state.replay_done = True


def _timestamp(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("timestamp")
    if not isinstance(raw, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return None


def _end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    """Where every catalogue partition ends before this run: the run records and counts only what follows.

    On a cluster that already holds earlier runs' events (the agents' groups resume from their committed
    offsets), counting from the beginning would mix runs and wait for events nobody will process again.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(spec.name, p) for spec in CATALOGUE for p in range(spec.partitions)]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


async def _recorder(
    bootstrap: str,
    archive: ArchiveWriter,
    state: _Progress,
    stop: asyncio.Event,
    start_offsets: dict[tuple[str, int], int],
) -> None:
    """Read every catalogue topic from where it ended before the run; archive it for the watcher."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
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
                    _observe(tp.topic, msg.value or b"", archive, state)
    finally:
        await consumer.stop()


def _observe(topic: str, value: bytes, archive: ArchiveWriter, state: _Progress) -> None:
    state.counts[topic] = state.counts.get(topic, 0) + 1
    if topic not in (USER_ACTIONS.name, OPTIMIZATION_REPORTS.name):
        state.last_event = time.monotonic()
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        return  # invalid input (kept whole in dead-letters) or a tombstone: nothing to archive
    archive.write(topic, value)
    if topic == METRICS.name and data.get("source") == "sandbox":
        with contextlib.suppress(Exception):
            m = RunMetric.model_validate(data)
            if m.success and m.steps:  # a real run (not a language that cannot run here): a timing sample
                state.sandbox_durations.setdefault(m.automation_id, []).append(m)
    elif topic == AUTOMATIONS.name and data.get("state") == "verified":
        aid = str(data.get("automation_id"))
        if aid not in state.verified:
            state.verified.append(aid)


async def _production_runs(
    bootstrap: str, options: RunOptions, state: _Progress, stop: asyncio.Event
) -> None:
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


def _count(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())


def _feed_caught_up(state: _Progress) -> bool:
    """The optimizer feed forwarded everything its sources received, and the tracker read all of it."""
    from rote.agents.optimizer_feed import AGENT as FEED_AGENT
    from rote.agents.optimizer_feed import FEED_TOPIC, SOURCES

    forwarded = sum(_count(metrics.EVENTS_CONSUMED, topic=t, agent=FEED_AGENT) for t in SOURCES)
    produced = _count(metrics.EVENTS_PRODUCED, topic=FEED_TOPIC, agent=FEED_AGENT)
    tracked = _count(metrics.EVENTS_CONSUMED, topic=FEED_TOPIC, agent="efficiency-tracker")
    return forwarded >= sum(state.counts.get(t, 0) for t in SOURCES) and tracked >= produced


async def _watch_until_done(
    options: RunOptions, state: _Progress, started: float, stop: asyncio.Event, report_status: dict[str, Any]
) -> None:
    """Done = replay consumed, pipeline quiet, the tracker caught up, and a report covers all of it."""
    consumed = metrics.EVENTS_CONSUMED.labels(topic=USER_ACTIONS.name, agent="task-identifier")
    bar = _bar(options, "pipeline", None)
    while True:
        await asyncio.sleep(0.5)
        bar(0)
        now = time.monotonic()
        if state.error:
            break
        if now - started > options.timeout_seconds:
            state.timed_out = True
            break
        caught_up = state.replay_done and consumed._value.get() >= state.produced + state.injected_bad
        quiet = now - state.last_event > options.quiet_seconds
        reported = report_status["reported_seen"] == report_status["seen"]
        if caught_up and state.production_done and quiet and _feed_caught_up(state) and reported:
            log.info("done: counts %s, report status %s", state.counts, report_status)
            break
    stop.set()


def _bar(options: RunOptions, label: str, total: int | None) -> Callable[[int], None]:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not options.progress or not sys.stderr.isatty():
        return lambda n: None
    from rich.progress import Progress

    progress = Progress(transient=True)
    progress.start()
    task = progress.add_task(label, total=total)

    def advance(n: int) -> None:
        progress.advance(task, n)
        if total is not None and progress.tasks[0].completed >= total:
            progress.stop()

    return advance


def summarize(
    run_dir: Path, state: _Progress, *, seconds: float, replay: Path, broker_kind: str
) -> dict[str, Any]:
    """The run's outcome, from the archive: what every topic received and what came of it."""
    from rote.generator.registry import Registry

    candidates: dict[str, Any] = {}
    for c in read_events(run_dir, CANDIDATES.name, Candidate):
        if c.candidate_id not in candidates or c.version >= candidates[c.candidate_id].version:
            candidates[c.candidate_id] = c
    registry = Registry()
    for a in read_events(run_dir, AUTOMATIONS.name, Automation):
        if a.state == "generated":
            registry.apply_automation(a)
    results = list(read_events(run_dir, TEST_RESULTS.name, TestResult))
    for r in results:
        registry.apply_test_result(r)
    for m in read_events(run_dir, METRICS.name, RunMetric):
        registry.apply_metric(m)
    reports = list(read_events(run_dir, OPTIMIZATION_REPORTS.name, OptimizationReport))
    efficiency = reports[-1].efficiency if reports else {}
    return {
        "replay": str(replay),
        "broker": broker_kind,
        "seconds": round(seconds, 1),
        "timed_out": state.timed_out,
        "error": state.error,
        "events_in": state.produced,
        "injected_invalid_events": state.injected_bad,
        "dead_letters": state.counts.get(DEAD_LETTERS.name, 0),
        "candidates": len(candidates),
        "top_candidates": [
            {
                "candidate_id": c.candidate_id,
                "score": c.score,
                "occurrences": c.occurrences,
                "steps": len(c.steps),
                "estimated_hours_saved_per_year": c.estimated_hours_saved_per_year,
            }
            for c in sorted(candidates.values(), key=lambda c: -c.score)[:5]
        ],
        "automations": registry.counts_by_state(),
        "test_results": len(results),
        "tests_passed": sum(1 for r in results if r.passed),
        "simulated_production_runs": state.production_runs,
        "anomalies": state.counts.get(ANOMALIES.name, 0),
        "reports": len(reports),
        "estimated_hours_saved_per_year": round(
            sum(c.estimated_hours_saved_per_year for c in candidates.values()), 2
        ),
        "time_saved_seconds": efficiency.get("time_saved_seconds"),
        "roi": efficiency.get("roi"),
        "topics": {spec.name: state.counts.get(spec.name, 0) for spec in CATALOGUE},
        "archive": str(run_dir),
    }
