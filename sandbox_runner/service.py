"""The sandbox runner service: consume `automations`, test each generated one in the jail, publish results.

It is its own process (`rote sandbox serve`) or runs inside `rote run`; either way it is a plain Kafka
consumer group (aiokafka, no Faust), so more runners on more machines share the partitions.

Delivery, and why it is safe to kill a runner at any moment (issue 16):

- Every test request ends in one signed `TestResult` (and one `RunMetric`) whose id is derived from the
  request (`tester.result_id_for`), or, if the automation cannot be tested at all, in a dead letter with
  the reason. Nothing is swallowed.
- A record's offset is committed only after everything it produced has been acknowledged by the broker
  (acks=all), and only up to the first record of its partition that has not: a
  crash or a failed send re-tests, it never loses a test. Re-testing produces the same result ids, so
  consumers replace the earlier copy instead of counting it twice.
- A runner killed mid-test (SIGKILL) leaves its records uncommitted; once its session times out the
  group gives its partitions to the other runners, which test them again under the same ids.

Every Kafka client here is built from `kafka_options`, the one place that says how to reach the brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable
from typing import Any

from rote import metrics
from rote.deadletters import dead_letter as make_dead_letter
from rote.errors import ConfigError, SandboxError, ValidationError
from rote.sandbox_runner.jail import Jail, Limits
from rote.sandbox_runner.tester import (
    AutomationTester,
    BuildBundle,
    Outcome,
    Runner,
    TestRequest,
    Verify,
    requests_of,
    result_id_for,
)
from rote.security.verdicts import result_key_from_env, verify, why_not
from rote.streams import topics
from rote.streams.schemas import Automation, decode, encode

__all__ = [
    "AutomationTester",
    "Outcome",
    "SandboxService",
    "TestRequest",
    "dead_letter",
    "kafka_options",
    "requests_of",
    "result_id_for",
]

log = logging.getLogger(__name__)
AGENT = "sandbox-runner"
#: How long a failed batch waits before it is fetched and tried again (a broker that is down).
RETRY_SECONDS = 2.0


def kafka_options(bootstrap_servers: str) -> dict[str, Any]:
    """Connection settings shared by every Kafka client of the sandbox service (consumer and producer).

    One function so that this process's Kafka security (SASL/TLS, `rote.brokers.security`) applies to all.
    """
    from rote.brokers.security import aiokafka_kwargs

    return {"bootstrap_servers": bootstrap_servers, **aiokafka_kwargs()}


#: The runner's letter for a rejected record (`rote.deadletters`: redacted, capped under the broker's limit)
dead_letter = functools.partial(make_dead_letter, agent=AGENT)


class SandboxService:
    """The Kafka side: a consumer group on `automations` feeding an `AutomationTester`."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str = "rote-sandbox",
        concurrency: int = 2,
        limits: Limits | None = None,
        result_key: bytes | None = None,
        jail: Runner | None = None,
        build_bundle: BuildBundle | None = None,
        verify: Verify | None = None,
        unsupported_error: type[Exception] | None = None,
        max_batch: int = 16,
        session_timeout_ms: int = 10_000,
        runner_name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise SandboxError("concurrency must be at least 1")
        key = result_key if result_key is not None else result_key_from_env()
        if key is None:
            raise ConfigError(
                "no result key: set ROTE_RESULT_KEY or ROTE_RESULT_KEY_FILE (the key the registry verifies "
                "test results with; docs/sandbox.md)"
            )
        self.result_key = key
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
        self.session_timeout_ms = session_timeout_ms
        self.runner_name = runner_name
        self.tester: AutomationTester | None = None
        #: Automations whose results were all acknowledged, and events sent to dead-letters.
        self.processed = 0
        self.dead_letters = 0
        #: Records of the batch being tested (0 between batches): `rote run --once` is not done while a
        #: batch of tests runs, however quiet the topics are (a batch in Chromium can take longer than the
        #: run's quiet window, and its results are only published at its end).
        self.testing = 0

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
            result_key=self.result_key,
            build_bundle=self._build,
            verify=self._verify,
            unsupported_error=self._unsupported,
            runner_name=self.runner_name,
        )
        consumer = AIOKafkaConsumer(
            topics.AUTOMATIONS.name,
            **kafka_options(self.bootstrap_servers),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A batch of tests may take minutes; the group must not give its partitions away meanwhile.
            max_poll_interval_ms=30 * 60 * 1000,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 3),
        )
        # acks=all: a result counts as delivered only once every in-sync replica has it. No idempotent
        # producer (the embedded broker lacks InitProducerId): a resent copy carries the same result id.
        producer = AIOKafkaProducer(**kafka_options(self.bootstrap_servers), acks="all")
        await producer.start()
        try:
            await consumer.start()
            try:
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=self.max_batch)
                    if not any(batches.values()):
                        continue
                    if not await self._process(consumer, producer, batches):
                        await asyncio.sleep(RETRY_SECONDS)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
            if self._own_jail is not None:
                self._own_jail.close()
                self._own_jail = None
                self._jail = None

    async def _process(self, consumer: Any, producer: Any, batches: dict[Any, list[Any]]) -> bool:
        """Handle a fetched batch, commit what is done, rewind what is not. False if anything failed."""
        from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

        records = [(tp, r) for tp, recs in batches.items() for r in recs]
        self.testing = len(records)
        try:
            done = await asyncio.gather(
                *(self._handle(producer, r) for _, r in records), return_exceptions=True
            )
        finally:
            self.testing = 0
        commit: dict[Any, int] = {}
        rewind: dict[Any, int] = {}
        for (tp, record), outcome in zip(records, done, strict=True):
            if tp in rewind:
                continue
            if isinstance(outcome, BaseException):
                log.warning(
                    "automations %d@%d not done (%r); it will be tested again",
                    record.offset,
                    record.partition,
                    outcome,
                )
                rewind[tp] = record.offset
            else:
                commit[tp] = record.offset + 1
        if commit:
            try:
                await consumer.commit(commit)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved these partitions while the tests ran: their new owner tests the records
                # again under the same result ids, so the copies replace each other.
                log.warning("commit refused after a rebalance (%s); the new owner re-tests", exc)
            except KafkaError as exc:
                log.warning("commit failed (%s); the records will be tested again", exc)
                rewind.update({tp: off for tp, off in _first_offsets(records) if tp not in rewind})
        for tp, offset in rewind.items():
            with contextlib.suppress(IllegalStateError):  # no longer ours: its new owner starts there
                consumer.seek(tp, offset)
        return not rewind

    async def _handle(self, producer: Any, record: Any) -> None:
        """Everything one record owes, sent and acknowledged; raises if any send failed (not committed)."""
        topic = record.topic
        metrics.EVENTS_CONSUMED.labels(topic=topic, agent=AGENT).inc()
        value: bytes = record.value or b""
        try:
            automation = decode(Automation, value)
        except ValidationError as exc:
            await self._dead_letter(producer, record, exc.reason, exc.field, value)
            metrics.DEAD_LETTERS.labels(topic=topic, reason=metrics.dead_letter_reason(exc.reason)).inc()
            return
        if not verify(automation, self.result_key):
            # Only rote's generator holds the key: an automation it did not render (or one changed since)
            # is never run, so its test cases cannot make this service sign `passed` for a program of
            # someone else's making (rote.security.verdicts).
            await self._dead_letter(producer, record, why_not(automation), "signature", value)
            metrics.DEAD_LETTERS.labels(topic=topic, reason="signature").inc()
            return
        assert self.tester is not None
        try:
            outcomes = await self.tester.test(automation)
        except Exception as exc:  # the automation cannot be tested as asked: say why, do not go silent
            reason = f"cannot test automation {automation.automation_id} v{automation.version}: {exc}"
            await self._dead_letter(producer, record, reason, "test_cases", value)
            metrics.DEAD_LETTERS.labels(topic=topic, reason="other").inc()
            return
        key = automation.automation_id.encode()
        sends = []
        for o in outcomes:
            sends.append(await producer.send(topics.TEST_RESULTS.name, encode(o.result), key=key))
            if o.metric is not None:  # a test that ran (not a language that cannot run here)
                sends.append(await producer.send(topics.METRICS.name, encode(o.metric), key=key))
        await asyncio.gather(*sends)  # raises if the broker did not take one: the record is not committed
        for o in outcomes:
            metrics.EVENTS_PRODUCED.labels(topic=topics.TEST_RESULTS.name, agent=AGENT).inc()
            if o.metric is not None:
                metrics.EVENTS_PRODUCED.labels(topic=topics.METRICS.name, agent=AGENT).inc()
        if outcomes:
            self.processed += 1
        metrics.LAST_EVENT_TIMESTAMP.labels(agent=AGENT).set_to_current_time()

    async def _dead_letter(
        self, producer: Any, record: Any, reason: str, field: str | None, value: bytes
    ) -> None:
        dl = dead_letter(
            topic=record.topic,
            reason=reason,
            field=field,
            value=value,
            key=record.key,
            partition=record.partition,
            offset=record.offset,
        )
        await (await producer.send(topics.DEAD_LETTERS.name, encode(dl), key=record.topic.encode()))
        metrics.EVENTS_PRODUCED.labels(topic=topics.DEAD_LETTERS.name, agent=AGENT).inc()
        self.dead_letters += 1

    def stats(self) -> list[dict[str, Any]]:
        return self.tester.stats.snapshot_all() if self.tester else []


def _first_offsets(records: Iterable[tuple[Any, Any]]) -> list[tuple[Any, int]]:
    first: dict[Any, int] = {}
    for tp, record in records:
        first.setdefault(tp, record.offset)
    return list(first.items())
