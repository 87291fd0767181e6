"""`rote runner`'s service on Apache Kafka: a verified automation driven by run requests publishes one
metrics event per run with real timings; a redelivered request runs once; with the form down or a field
renamed, runs fail with the step and the reason, and the automation becomes degraded."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from test_generator_leno import SLICE, leno_candidate

from rote.brokers import create_topics
from rote.demo.form import FormServer
from rote.demo.students import WORKBOOK_NAME, students_from_log, write_workbook
from rote.drivers.browser import CHROMIUM
from rote.generator import GeneratorConfig, generate, replay
from rote.generator.plan import PlanConfig
from rote.generator.registry import Registry
from rote.runner.executor import RunnerConfig
from rote.runner.service import RunnerService
from rote.security.verdicts import ephemeral_result_key, sign, sign_result, verify_result
from rote.streams.schemas import Automation, RunMetric, RunRequest, TestResult, decode, encode
from rote.streams.topics import AUTOMATIONS, CATALOGUE, METRICS, RUN_REQUESTS, TEST_RESULTS

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rote-runner-kafka-"))
    d.chmod(0o755)
    write_workbook(students_from_log(), d / WORKBOOK_NAME).chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


KEY = ephemeral_result_key()


def _verified_on_the_topics(bootstrap: str) -> Automation:
    """Generate the form automation and test it for real (its held-out cases replayed against the
    simulator, the sandbox's contract, without the jail), publishing what the sandbox would."""
    # 8 of the slice's 10 instances to learn from: then the one user who did not click "Add another
    # response." makes that click an optional step, and both held-out cases are reproduced exactly
    config = GeneratorConfig(plan=PlanConfig(holdout_fraction=0.2))
    # a fresh candidate id per test run: its automation id is new on a broker that may hold earlier ones
    # (the id is in the generated source's header, so it cannot be changed after generating)
    c = leno_candidate(SLICE).model_copy(update={"candidate_id": f"form-{uuid.uuid4().hex[:8]}"})
    a = sign(generate(c, config=config), KEY)  # as the generator agent signs what it renders
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(AUTOMATIONS.name, encode(a), key=a.automation_id.encode())
    for case in a.test_cases:
        verdict = replay(a, case, "python")
        assert verdict.passed, verdict.mismatches
        result = TestResult(
            result_id=uuid.uuid4().hex,
            automation_id=a.automation_id,
            version=a.version,
            case_id=case.case_id,
            language="python",
            verdict="passed",
            passed=True,
            exit_code=0,
            stop_reason="exited",
            wall_seconds=0.1,
            cpu_seconds=0.05,
            peak_memory_bytes=0,
            output_bytes=0,
            started_at=datetime.now(UTC),
            runner="test (replay)",
        )
        producer.send(TEST_RESULTS.name, encode(sign_result(result, KEY)), key=a.automation_id.encode())
    producer.flush()
    producer.close()
    return a


def _request(a: Automation, row: int, run_id: str | None = None, **kw: Any) -> RunRequest:
    return RunRequest(
        run_id=run_id or f"run-{uuid.uuid4().hex}",
        automation_id=a.automation_id,
        params={
            "row": str(row),
            "do_clickcheckbox_decisionbox": "true",
            "do_clicklink_add_another_response": "true",
        },
        requested_at=datetime.now(UTC),
        **kw,
    )


def _send(bootstrap: str, requests: list[RunRequest]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for r in requests:
        producer.send(RUN_REQUESTS.name, encode(r), key=r.automation_id.encode())
    producer.flush()
    producer.close()


def _metrics(bootstrap: str, automation_id: str) -> list[RunMetric]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    parts = [TopicPartition(METRICS.name, p) for p in range(METRICS.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = [decode(RunMetric, m.value) for m in consumer if m.value]
    consumer.close()
    return [m for m in out if m.automation_id == automation_id]


def _foreign_results(bootstrap: str) -> int:
    """Test results on the topic that this test's key does not verify."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    parts = [TopicPartition(TEST_RESULTS.name, p) for p in range(TEST_RESULTS.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    values = [m.value for m in consumer if m.value]
    consumer.close()
    return sum(not verify_result(decode(TestResult, v), KEY) for v in values)


def _registry(bootstrap: str) -> Registry:
    """The registry as the registry agent computes it from the three topics."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    parts = [
        TopicPartition(t.name, p) for t in (AUTOMATIONS, TEST_RESULTS, METRICS) for p in range(t.partitions)
    ]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    events = list(consumer)
    consumer.close()
    reg = Registry()
    for topic in (AUTOMATIONS.name, TEST_RESULTS.name, METRICS.name):  # automations first, then results
        for m in events:
            if m.topic != topic or not m.value:
                continue
            if topic == AUTOMATIONS.name:
                reg.apply_automation(decode(Automation, m.value))
            elif topic == TEST_RESULTS.name:
                reg.apply_test_result(decode(TestResult, m.value))
            else:
                reg.apply_metric(decode(RunMetric, m.value))
    return reg


async def _wait_for(pred: Any, timeout: float, what: str, state: Any = lambda: "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {state()}")
        await asyncio.sleep(0.3)


def _start_group_at_the_end(bootstrap: str, group_id: str) -> None:
    """Commit the group's offsets at the end of `run-requests`: a session broker carries earlier tests' run
    requests (the hostile-records test's among them), which this test's runner would otherwise work
    through before its own, with their timeouts counted against this test's waits."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    parts = [TopicPartition(RUN_REQUESTS.name, p) for p in range(RUN_REQUESTS.partitions)]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in parts})
    consumer.close()


def test_runner_on_apache_kafka(kafka_broker: Any, root: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    create_topics(bootstrap, CATALOGUE)
    group_id = f"runner-{uuid.uuid4().hex[:6]}"
    _start_group_at_the_end(bootstrap, group_id)
    a = _verified_on_the_topics(bootstrap)
    students = students_from_log()
    form = FormServer(students).start()
    port = int(form.origin.rsplit(":", 1)[1])
    config = RunnerConfig(
        root=root, sites=form.site_mapping(), step_timeout=3, retries=0, state_dir=root / "runner-state"
    )
    seen: list[RunMetric] = []
    service = RunnerService(
        bootstrap_servers=bootstrap,
        config=config,
        group_id=group_id,
        on_metric=lambda m: seen.append(m) if m.automation_id == a.automation_id else None,
        result_key=KEY,
        # a session broker also carries earlier tests' run requests: only this automation's refusals count
        on_refused=lambda request, why: (
            refusals.append((request.run_id, why)) if request.automation_id == a.automation_id else None
        ),
    )
    refusals: list[tuple[str, str]] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop=stop))

        def state() -> str:
            runs = [(m.outcome, m.error) for m in seen]
            ex = service.executor
            return (
                f"counts {service.counts}, last refusal {service.last_refusal}, runs {runs}, in flight "
                f"{sorted(service._flight)}, hosts busy {ex._busy} idle {ex._idle_count()}, task {task}"
            )

        try:
            # 1. three rows, and the first request delivered twice: three runs, three metrics events
            good = [_request(a, row) for row in (2, 3, 4)]
            _send(bootstrap, [*good, good[0]])
            await _wait_for(
                lambda: len(seen) >= 3 and service.counts["duplicate"] >= 1, 240, "three good runs", state
            )
            # 2. the form is down: runs fail at the first web step; after three the automation is degraded
            form.stop()
            _send(bootstrap, [_request(a, row) for row in (5, 6, 7)])
            await _wait_for(lambda: len(seen) >= 6, 240, "three failed runs", state)
            await _wait_for(
                lambda: service.registry.state_of(a.automation_id)[1] == "degraded",  # type: ignore[index]
                30,
                "degraded",
                state,
            )
            # 3. degraded: a plain request is refused (nothing runs, nothing is published) ...
            plain = _request(a, 8)
            _send(bootstrap, [plain])
            await _wait_for(lambda: len(refusals) >= 1, 60, "a refusal", state)
            # ... and whoever waits for answers is told (no metrics event comes for a refused request)
            assert [run_id for run_id, _ in refusals] == [plain.run_id] and "degraded" in refusals[0][1]
            # ... and a person retrying after "fixing" it meets a redesigned page: the name field renamed
            renamed = FormServer(students, port=port, rename={"SingleLine": "FullName"}).start()
            try:
                _send(bootstrap, [_request(a, 9, allow_degraded=True)])
                await _wait_for(lambda: len(seen) >= 7, 120, "the run against the renamed field", state)
            finally:
                renamed.stop()
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=60)

    asyncio.run(scenario())

    published = _metrics(bootstrap, a.automation_id)
    assert len(published) == 7 and len({m.run_id for m in published}) == 7  # one per run, none twice
    ok, down, renamed_run = published[:3], published[3:6], published[6]
    assert all(m.source == "production" and m.success and m.outcome == "succeeded" for m in ok)
    assert all(len(m.steps) == len(a.plan) and all(s.duration_seconds > 0 for s in m.steps) for m in ok)
    assert all(
        abs(sum(s.duration_seconds for s in m.steps) - m.duration_seconds) < m.duration_seconds for m in ok
    )
    first_web = next(st["i"] for st in a.plan if "url" in st["target"])
    for m in down:
        assert m.outcome == "failed" and m.failed_step == first_web, m
        assert f"step {first_web} (" in (m.error or "") and "ERR_CONNECTION_REFUSED" in (m.error or ""), (
            m.error
        )
    assert renamed_run.outcome == "failed" and "field='SingleLine'" in (renamed_run.error or "")
    assert "no element on /universityofmelbourne/form/NewRecord" in (renamed_run.error or "")
    reg = _registry(bootstrap)  # what the registry agent sees from the topics
    rec = reg.get(a.automation_id)
    assert rec is not None and rec.state == "degraded", rec.state if rec else None
    assert rec.stats.production_runs == 7 and rec.stats.production_successes == 3
    assert [t.state for t in rec.history][-3:] == ["verified", "active", "degraded"]
    assert form.snapshot()["correct"] == 3
    # every result it ignored as unsigned is one not signed with this test's key (a session broker also
    # holds earlier tests' results, signed with their own keys): none of this automation's was ignored
    assert service.unsigned_results == _foreign_results(bootstrap)
