"""The sandbox runner service: consume `automations`, test each generated one in the jail, publish results.

It is its own process (`rote sandbox serve`) or runs inside `rote run`; either way it is a plain Kafka
consumer group (aiokafka, no Faust), so more runners on more machines share the partitions. Offsets are
committed only after a batch's results are produced: a crash re-tests, it never loses a test.

Per automation in state "generated": for each test case and each language it has a source for, build the
bundle, run it in the jail (AppleScript and other unrunnable sources are reported "unsupported" without
running), judge the recording outside the jail, and produce one `TestResult` to `test-results` and one
`RunMetric` (source "sandbox") to `metrics`. Events that fail validation go to `dead-letters`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rote.sandbox_runner.jail import Jail, JobSpec, Limits, RunResult
from rote.sandbox_runner.stats import SandboxStats
from rote.streams import topics
from rote.streams.schemas import (
    Automation,
    DeadLetter,
    RunMetric,
    StepTiming,
    TestCase,
    TestResult,
    decode,
    encode,
)

from rote import metrics
from rote.errors import RoteError, SandboxError, ValidationError

log = logging.getLogger(__name__)
AGENT = "sandbox-runner"


#: `rote.generator.bundle.build_test_bundle`'s shape: returns an object with files, argv and collect.
BuildBundle = Callable[[Automation, TestCase, str], Any]
#: `rote.generator.bundle.verify`'s shape: returns an object with passed, mismatches and steps.
Verify = Callable[..., Any]


class Runner(Protocol):
    def run(self, job: JobSpec) -> RunResult: ...


def _default_builder() -> tuple[BuildBundle, Verify, type[Exception]]:
    from rote.generator.bundle import UnsupportedLanguage, build_test_bundle, verify

    return build_test_bundle, verify, UnsupportedLanguage


@dataclass(frozen=True, kw_only=True)
class Outcome:
    result: TestResult
    metric: RunMetric


class AutomationTester:
    """Turns one Automation into TestResults and RunMetrics; no Kafka, so it is tested and reused directly."""

    def __init__(
        self,
        *,
        runner: Runner,
        limits: Limits,
        concurrency: int,
        build_bundle: BuildBundle | None = None,
        verify: Verify | None = None,
        unsupported_error: type[Exception] | None = None,
        runner_name: str | None = None,
    ) -> None:
        default_build, default_verify, default_unsupported = _default_builder()
        self.runner = runner
        self.limits = limits
        self.build_bundle = build_bundle or default_build
        self.verify = verify or default_verify
        self.unsupported_error = unsupported_error or default_unsupported
        self.runner_name = runner_name or socket.gethostname()
        self.stats = SandboxStats()
        self._sem = asyncio.Semaphore(concurrency)

    async def test(self, automation: Automation) -> list[Outcome]:
        if automation.state != "generated":
            return []
        jobs = [
            self._one(automation, case, language)
            for case in automation.test_cases
            for language in sorted(automation.sources)
        ]
        return list(await asyncio.gather(*jobs))

    async def _one(self, a: Automation, case: TestCase, language: str) -> Outcome:
        started = datetime.now(UTC)
        if language == "applescript":
            why = "AppleScript is unsupported on this platform"
            if shutil.which("osascript"):
                why = "AppleScript cannot be jailed by bubblewrap; not run"
            return self._finish(a, case, language, started, unsupported=why)
        try:
            bundle = self.build_bundle(a, case, language)
        except self.unsupported_error as exc:
            return self._finish(a, case, language, started, unsupported=str(exc))
        except RoteError as exc:
            return self._finish(a, case, language, started, error=f"cannot build the test bundle: {exc}")
        job = JobSpec(files=bundle.files, argv=bundle.argv, collect=bundle.collect, limits=self.limits)
        async with self._sem:
            try:
                run = await asyncio.to_thread(self.runner.run, job)
            except SandboxError as exc:
                return self._finish(a, case, language, started, error=str(exc))
        verdict = self.verify(a, case, run.collected, exit_code=run.exit_code)
        return self._finish(a, case, language, started, run=run, verdict=verdict)

    def _finish(
        self,
        a: Automation,
        case: TestCase,
        language: str,
        started: datetime,
        *,
        run: RunResult | None = None,
        verdict: Any = None,
        unsupported: str | None = None,
        error: str | None = None,
    ) -> Outcome:
        mismatches: list[str] = []
        steps: list[StepTiming] = []
        if run is not None and verdict is not None:
            passed = run.ok and verdict.passed
            verdict_name = "passed" if passed else "failed"
            stop_reason = run.stop_reason
            detail = run.detail
            mismatches = list(verdict.mismatches)[:50]
            steps = list(verdict.steps)
            if not passed and run.ok and mismatches:
                detail = f"{detail}; the recorded actions differ from the observed ones"
        elif unsupported is not None:
            passed, verdict_name, stop_reason, detail = False, "unsupported", "unsupported", unsupported
        else:
            passed, verdict_name, stop_reason, detail = False, "error", "setup", error or "unknown error"
        result = TestResult(
            result_id=uuid.uuid4().hex,
            automation_id=a.automation_id,
            version=a.version,
            case_id=case.case_id,
            language=language,
            verdict=verdict_name,
            passed=passed,
            exit_code=run.exit_code if run else None,
            signal=run.signal if run else None,
            stop_reason=stop_reason,
            detail=detail[:2000],
            wall_seconds=run.wall_seconds if run else 0.0,
            cpu_seconds=run.cpu_seconds if run else 0.0,
            peak_memory_bytes=run.peak_memory_bytes if run else 0,
            output_bytes=run.output_bytes if run else 0,
            mismatches=mismatches,
            started_at=started,
            runner=self.runner_name,
        )
        metric = RunMetric(
            run_id=result.result_id,
            automation_id=a.automation_id,
            version=a.version,
            source="sandbox",
            started_at=started,
            duration_seconds=result.wall_seconds,
            success=passed,
            cpu_seconds=result.cpu_seconds if run else None,
            peak_memory_bytes=result.peak_memory_bytes if run else None,
            steps=steps,
        )
        self.stats.learn_one(result)
        metrics.SANDBOX_RUNS.labels(language=language, verdict=verdict_name, stop_reason=stop_reason).inc()
        if run is not None:
            metrics.SANDBOX_RUN_SECONDS.labels(language=language).observe(run.wall_seconds)
        return Outcome(result=result, metric=metric)


def dead_letter(
    *,
    topic: str,
    reason: str,
    field: str | None,
    value: bytes,
    key: bytes | None,
    partition: int,
    offset: int,
) -> DeadLetter:
    return DeadLetter(
        source_topic=topic,
        reason=reason[:2000],
        field=field,
        payload_b64=base64.b64encode(value).decode(),
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        partition=partition,
        offset=offset,
        received_at=datetime.now(UTC),
        agent=AGENT,
    )


class SandboxService:
    """The Kafka side: a consumer group on `automations` feeding an `AutomationTester`."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str = "rote-sandbox",
        concurrency: int = 2,
        limits: Limits | None = None,
        jail: Runner | None = None,
        build_bundle: BuildBundle | None = None,
        verify: Verify | None = None,
        unsupported_error: type[Exception] | None = None,
        max_batch: int = 16,
    ) -> None:
        if concurrency < 1:
            raise SandboxError("concurrency must be at least 1")
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.concurrency = concurrency
        self.limits = limits or Limits()
        self._jail = jail
        self._own_jail: Jail | None = None
        self._build = build_bundle
        self._verify = verify
        self._unsupported = unsupported_error
        self.max_batch = max_batch
        self.tester: AutomationTester | None = None
        self.processed = 0
        self.dead_letters = 0

    def _runner(self) -> Runner:
        if self._jail is None:
            # Fail closed at start-up: no jail, no service.
            self._own_jail = Jail(max_concurrency=self.concurrency)
            self._jail = self._own_jail
        return self._jail

    async def run(self, *, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self.tester = AutomationTester(
            runner=self._runner(),
            limits=self.limits,
            concurrency=self.concurrency,
            build_bundle=self._build,
            verify=self._verify,
            unsupported_error=self._unsupported,
        )
        consumer = AIOKafkaConsumer(
            topics.AUTOMATIONS.name,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=30 * 60 * 1000,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await consumer.start()
            try:
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=self.max_batch)
                    records = [r for recs in batches.values() for r in recs]
                    if not records:
                        continue
                    await asyncio.gather(*(self._handle(producer, r) for r in records))
                    await producer.flush()
                    await consumer.commit()
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
            if self._own_jail is not None:
                self._own_jail.close()
                self._own_jail = None
                self._jail = None

    async def _handle(self, producer: Any, record: Any) -> None:
        topic = record.topic
        metrics.EVENTS_CONSUMED.labels(topic=topic, agent=AGENT).inc()
        value: bytes = record.value or b""
        try:
            automation = decode(Automation, value)
        except ValidationError as exc:
            dl = dead_letter(
                topic=topic,
                reason=exc.reason,
                field=exc.field,
                value=value,
                key=record.key,
                partition=record.partition,
                offset=record.offset,
            )
            await producer.send(topics.DEAD_LETTERS.name, encode(dl), key=topic.encode())
            metrics.DEAD_LETTERS.labels(topic=topic, reason=metrics.dead_letter_reason(exc.reason)).inc()
            metrics.EVENTS_PRODUCED.labels(topic=topics.DEAD_LETTERS.name, agent=AGENT).inc()
            self.dead_letters += 1
            return
        assert self.tester is not None
        try:
            outcomes = await self.tester.test(automation)
        except Exception:  # never let one automation stop the loop; the failure is in the log
            log.exception("testing automation %s failed", automation.automation_id)
            return
        key = automation.automation_id.encode()
        for o in outcomes:
            await producer.send(topics.TEST_RESULTS.name, encode(o.result), key=key)
            await producer.send(topics.METRICS.name, encode(o.metric), key=key)
            metrics.EVENTS_PRODUCED.labels(topic=topics.TEST_RESULTS.name, agent=AGENT).inc()
            metrics.EVENTS_PRODUCED.labels(topic=topics.METRICS.name, agent=AGENT).inc()
        self.processed += 1
        metrics.LAST_EVENT_TIMESTAMP.labels(agent=AGENT).set_to_current_time()

    def stats(self) -> list[dict[str, Any]]:
        return self.tester.stats.snapshot_all() if self.tester else []
