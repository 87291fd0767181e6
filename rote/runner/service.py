"""The executor's Kafka side (`rote runner`): run requests in, one `metrics` event per run out.

Plain aiokafka (no Faust), like the sandbox runner, so it is its own process or a task inside `rote run`.

- A **registry feed** reads `automations`, `test-results` and `metrics` from the beginning (no consumer
  group: every executor sees everything) into the same pure `Registry` the registry agent keeps, so the
  executor decides on exactly the lifecycle everyone else sees (verified, active, degraded) and knows
  every run id already reported on `metrics`. Like the registry agent it applies only test results
  signed with the sandbox runners' result key (`rote.security.verdicts`): it refuses to start without it.
- A **request consumer** in group `<app>-runner` reads `run-requests`. For each request: invalid ->
  `dead-letters` with the reason; already run (its run id is on `metrics`, or in this executor's done
  log) -> skipped, nothing published; not runnable -> refused (logged and counted, nothing published:
  nothing ran); otherwise it runs (in a worker thread) and its `RunMetric` is published, acknowledged,
  applied to the local registry and appended to the done log, and only then is the request's offset
  committed. A crash in between re-delivers the request, which is then found on `metrics` or in the
  done log: a redelivered request neither runs nor publishes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram

from rote import metrics
from rote.deadletters import dead_letter as make_dead_letter
from rote.errors import ValidationError
from rote.generator.registry import Registry
from rote.runner.executor import Execution, Executor, RunnerConfig
from rote.runner.kafka import client_kwargs
from rote.security.verdicts import sign, verify
from rote.streams.schemas import Automation, RunMetric, RunRequest, TestResult, decode, encode
from rote.streams.topics import AUTOMATIONS, DEAD_LETTERS, METRICS, RUN_REQUESTS, TEST_RESULTS

log = logging.getLogger(__name__)
AGENT = "runner"

RUNNER_REQUESTS = Counter(
    "rote_runner_requests_total",
    "Run requests the executor handled, by what became of them (ran, duplicate, refused, invalid).",
    ["result"],
    registry=metrics.REGISTRY,
)
RUNNER_STEP_SECONDS = Histogram(
    "rote_runner_step_seconds",
    "Duration of one action of a production run (all automations).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=metrics.REGISTRY,
)
REQUEST_RESULTS = ("ran", "duplicate", "refused", "invalid")


def _line(run_id: str) -> str:
    """A run id as one line of the done log: a JSON string (ASCII, every control character and line
    separator escaped), so any id a requester chose reads back as exactly that id."""
    return json.dumps(run_id)


def _unline(line: str) -> str:
    if line.startswith('"'):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, str):
                return value
    return line  # written before ids were JSON-quoted


class DoneLog:
    """Run ids this executor published, one JSON string per line, kept across restarts (the last `keep`)."""

    def __init__(self, path: Path, keep: int = 100_000) -> None:
        self.path = path
        self.keep = keep
        self.ids: dict[str, None] = {}
        if path.is_file():
            # split on "\n" only, from the bytes: splitlines() and text mode also break lines at \r, \x1c,
            # U+2028 and others, which old, unquoted ids may hold
            for line in path.read_bytes().decode("utf-8", "replace").split("\n")[-keep - 1 :]:
                if line:
                    self.ids[_unline(line)] = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.ids

    def add(self, run_id: str) -> None:
        self.ids[run_id] = None
        self._fh.write(_line(run_id) + "\n")
        self._fh.flush()
        if len(self.ids) > 2 * self.keep:  # compact: rewrite the newest `keep`
            newest = list(self.ids)[-self.keep :]
            self.ids = dict.fromkeys(newest)
            self._fh.close()
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(_line(i) + "\n" for i in newest), encoding="utf-8")
            tmp.replace(self.path)
            self._fh = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._fh.close()


class RunnerService:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        config: RunnerConfig,
        group_id: str = "rote-runner",
        executor: Executor | None = None,
        on_metric: Callable[[RunMetric], None] | None = None,
        result_key: bytes | None = None,
        on_refused: Callable[[RunRequest, str], None] | None = None,
    ) -> None:
        from rote.errors import ConfigError
        from rote.security.verdicts import result_key_from_env

        key = result_key if result_key is not None else result_key_from_env()
        if key is None:  # fail closed: without it a forged test result could make anything "verified"
            raise ConfigError(
                "no result key: set ROTE_RESULT_KEY or ROTE_RESULT_KEY_FILE to the key the sandbox runners "
                "sign test results with; the executor trusts only signed verdicts"
            )
        self.result_key = key
        self.unsigned_results = 0
        #: automations on the feed without the generator's valid signature (ignored, never run)
        self.unsigned_automations = 0
        #: run metrics on the feed without a valid signature (ignored: they neither move a lifecycle nor
        #: mark a run id as done)
        self.unsigned_metrics = 0
        self.bootstrap_servers = bootstrap_servers
        self.config = config
        self.group_id = group_id
        self.executor = executor or Executor(config)
        self.registry = Registry()
        self.done = DoneLog(config.state_dir / "done.log")
        self.on_metric = on_metric
        #: told of each refused request (nothing is published for it: a caller waiting for an answer to
        #: every request it made would otherwise wait for one that never comes)
        self.on_refused = on_refused
        self.counts: dict[str, int] = dict.fromkeys(REQUEST_RESULTS, 0)
        self.ready = asyncio.Event()
        self._flight: set[str] = set()  # run ids being run right now
        self.last_refusal: str | None = None
        for r in REQUEST_RESULTS:
            RUNNER_REQUESTS.labels(result=r)

    # ----------------------------------------------------------------------------------------------

    def _absorb(self, topic: str, value: bytes) -> None:
        try:
            if topic == AUTOMATIONS.name:
                a = decode(Automation, value)
                if not verify(a, self.result_key):
                    self.unsigned_automations += 1  # not rendered by rote's generator: never run
                    return
                # echoes too: on the compacted topic the registry's echo replaces the generated record, and
                # the registry recomputes the lifecycle from signed verdicts (an echo of a known version is a
                # no-op: `Registry.apply_automation`)
                self.registry.apply_automation(a)
                if a.state not in ("generated", "testing"):
                    # ... while there are verdicts: `test-results` keeps them 30 days, `automations` is
                    # compacted and kept. An executor (re)started later finds the program and no verdict,
                    # and every run was refused; the registry's decision, signed with the key, stands in
                    # for them until a verdict of the feed's own says otherwise.
                    self.registry.adopt_state(a)
            elif topic == TEST_RESULTS.name:
                r = decode(TestResult, value)
                if not verify(r, self.result_key):
                    self.unsigned_results += 1  # not from a sandbox runner holding the key: ignored
                    return
                self.registry.apply_test_result(r)
            else:
                m = decode(RunMetric, value)
                if not verify(m, self.result_key):
                    self.unsigned_metrics += 1  # a run no executor or sandbox reported: moves nothing
                    return
                self.registry.apply_metric(m)
        except ValidationError:
            pass  # the agents dead-letter invalid events on these topics; the feed just skips them

    async def _feed(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            **client_kwargs(self.bootstrap_servers), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            topics = (AUTOMATIONS, TEST_RESULTS, METRICS)
            parts = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, msgs in batch.items():
                    for msg in msgs:
                        self._absorb(tp.topic, msg.value or b"")
                if not self.ready.is_set():
                    positions = {tp: await consumer.position(tp) for tp in parts}
                    if all(positions[tp] >= ends[tp] for tp in parts):
                        self.ready.set()  # caught up with what existed at start
        finally:
            await consumer.stop()

    def state_wait(self, request: RunRequest) -> float:
        """Seconds to wait for the feed to learn the automation a request names.

        A request can overtake the verification it depends on, but only by so much: the wait is counted
        from when the request was made, not from when it is read. A backlog of old requests (a runner
        starting after an outage) naming automations that never became runnable is then refused at once,
        not at `await_state_seconds` each while the runnable requests behind them wait. A requester whose
        clock runs ahead gets the whole wait, never more.
        """
        limit = self.config.await_state_seconds
        age = (datetime.now(UTC) - request.requested_at).total_seconds()
        return min(limit, max(0.0, limit - age))

    async def _await_state(self, request: RunRequest) -> tuple[Automation | None, str | None]:
        """The automation and its state, waiting a while for the feed when it does not know it yet (a
        request can overtake the verification it depends on: `state_wait`)."""
        deadline = time.monotonic() + self.state_wait(request)
        while True:
            found = self.registry.state_of(request.automation_id)
            if found is not None and found[1] not in ("generated", "testing"):
                return found
            if found is None and self.ready.is_set():
                # the feed has caught up and has never seen it: an automation is published before it is
                # tested, so one unknown now will not be verified in the next seconds. Waiting here held
                # the whole batch (and every request behind it) for a forged request's automation id.
                return None, None
            if time.monotonic() >= deadline:
                return found if found is not None else (None, None)
            await asyncio.sleep(0.2)

    async def handle(self, request: RunRequest) -> Execution | None:
        """One decoded request; None when it was already run (nothing to publish)."""
        if (
            request.run_id in self.done
            or self.registry.has_run(request.run_id)
            or request.run_id in self._flight
        ):
            self._count("duplicate")
            return None
        self._flight.add(request.run_id)
        try:
            return await self._handle(request)
        finally:
            self._flight.discard(request.run_id)

    async def _handle(self, request: RunRequest) -> Execution | None:
        automation, state = await self._await_state(request)
        if request.run_id in self.done or self.registry.has_run(request.run_id):
            self._count("duplicate")  # the feed caught up with another executor's run meanwhile
            return None
        execution = await asyncio.to_thread(self.executor.execute, request, automation, state)
        if execution.refused is not None:
            self._count("refused")
            self.last_refusal = execution.refused
            log.warning("run %r of %r refused: %r", request.run_id, request.automation_id, execution.refused)
            if self.on_refused is not None:
                self.on_refused(request, execution.refused)
        return execution

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        RUNNER_REQUESTS.labels(result=result).inc()

    async def run(self, *, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        feed = asyncio.create_task(self._feed(stop))
        producer = AIOKafkaProducer(**client_kwargs(self.bootstrap_servers), acks="all")
        consumer = AIOKafkaConsumer(
            RUN_REQUESTS.name,
            **client_kwargs(self.bootstrap_servers),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=30 * 60 * 1000,
        )
        await producer.start()
        try:
            await consumer.start()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout=60)
                while not stop.is_set():
                    if feed.done():
                        feed.result()  # the feed died: surface why
                    # As many requests at once as there are run hosts; offsets are committed after the
                    # whole batch has been answered.
                    batches = await consumer.getmany(timeout_ms=500, max_records=self.config.max_hosts)
                    records = [r for recs in batches.values() for r in recs]
                    if not records:
                        continue
                    answers = await asyncio.gather(*(self._execute(producer, r) for r in records))
                    # published in the order the runs started: consumers of `metrics` (the performance
                    # monitor) read one automation's runs in time order
                    for m in sorted((m for m in answers if m is not None), key=lambda m: m.started_at):
                        await self._publish(producer, m)
                    await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs})
            finally:
                await consumer.stop()
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await producer.stop()
            await asyncio.to_thread(self.executor.close)
            self.done.close()

    async def _execute(self, producer: Any, record: Any) -> RunMetric | None:
        """Decode and run one request record; the metric to publish, if it ran."""
        metrics.EVENTS_CONSUMED.labels(topic=RUN_REQUESTS.name, agent=AGENT).inc()
        value: bytes = record.value or b""
        try:
            request = decode(RunRequest, value)
        except ValidationError as exc:
            self._count("invalid")
            dl = make_dead_letter(
                topic=RUN_REQUESTS.name,
                reason=exc.reason,
                field=exc.field,
                value=value,
                key=record.key,
                partition=record.partition,
                offset=record.offset,
                agent=AGENT,
            )
            await producer.send_and_wait(DEAD_LETTERS.name, encode(dl), key=RUN_REQUESTS.name.encode())
            metrics.DEAD_LETTERS.labels(
                topic=RUN_REQUESTS.name, reason=metrics.dead_letter_reason(exc.reason)
            ).inc()
            return None
        execution = await self.handle(request)
        return execution.metric if execution is not None else None

    async def _publish(self, producer: Any, m: RunMetric) -> None:
        m = sign(m, self.result_key)  # consumers count only runs a holder of the key reported
        await producer.send_and_wait(METRICS.name, encode(m), key=m.automation_id.encode())
        metrics.EVENTS_PRODUCED.labels(topic=METRICS.name, agent=AGENT).inc()
        self.registry.apply_metric(m)
        self.done.add(m.run_id)
        self._count("ran")
        for s in m.steps:
            RUNNER_STEP_SECONDS.observe(s.duration_seconds)
        metrics.LAST_EVENT_TIMESTAMP.labels(agent=AGENT).set_to_current_time()
        if self.on_metric is not None:
            self.on_metric(m)
