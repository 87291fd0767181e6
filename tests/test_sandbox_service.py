"""The sandbox runner service: real generated automations tested in the real jail, and the Kafka loop
against the embedded Tansu broker (signed results with request-derived ids, metrics, dead letters,
offsets, per-automation statistics). Two runners and a SIGKILLed one on Apache Kafka are in
tests/test_sandbox_kafka.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rote import metrics
from rote.errors import ConfigError, SandboxError, ValidationError
from rote.generator import codegen, exprs
from rote.sandbox_runner.jail import Jail, JobSpec, Limits, RunResult
from rote.sandbox_runner.service import AutomationTester, SandboxService, requests_of, result_id_for
from rote.sandbox_runner.stats import SandboxStats
from rote.security.verdicts import sign, verify, verify_result
from rote.streams import topics
from rote.streams.schemas import (
    MAX_TEST_CASES,
    Automation,
    ExpectedAction,
    RunMetric,
    Target,
    TestResult,
    decode,
    encode,
)
from rote.streams.schemas import TestCase as Case

KEY = b"test-result-key-" * 2

LIMITS = Limits(wall_seconds=10, cpu_seconds=5)
LANGUAGES = ("python", "bash", "applescript")
PY_PASSED = {"language": "python", "verdict": "passed", "stop_reason": "exited"}


def _step(i: int, op: str, target: dict[str, Any], value: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "i": i,
        "label": f"{op} {i}",
        "action_type": op,
        "app": "test",
        "op": op,
        "target": {k: exprs.const(v) for k, v in target.items()},
        "value": value,
        "guard": None,
        "binds": False,
    }


def make_automation(automation_id: str = "a-sbx", *, state: str = "generated") -> Automation:
    steps = [
        _step(0, "write_file", {"file": "out/hello.txt"}, exprs.const("hello")),
        _step(1, "write_file", {"file": "out/who.txt"}, exprs.param("who")),
    ]
    meta = codegen.RenderMeta(
        name="sbx",
        automation_id=automation_id,
        version=1,
        candidate_id="c",
        candidate_version=1,
        generator_version="test",
    )

    def case(case_id: str, who: str, expected_value: str) -> Case:
        return Case(
            case_id=case_id,
            inputs={"who": who},
            expected=[
                ExpectedAction(action_type="write_file", target=Target(file="out/hello.txt"), value="hello"),
                ExpectedAction(
                    action_type="write_file", target=Target(file="out/who.txt"), value=expected_value
                ),
            ],
        )

    # signed as rote's generator signs what it renders: the service tests nothing else
    automation = Automation(
        automation_id=automation_id,
        version=1,
        candidate_id="c",
        candidate_version=1,
        user_id="u",
        name="sbx",
        generator_version="test",
        template_version=codegen.template_version(),
        state=state,
        plan=steps,
        parameters=["who"],
        sources={lang: codegen.render(lang, steps, ["who"], meta) for lang in LANGUAGES},
        test_cases=[case("good", "Ada", "Ada"), case("bad", "Ada", "Grace")],
        created_at=datetime.now(UTC),
    )
    return sign(automation, KEY)


@pytest.fixture(scope="module")
def jail() -> Iterator[Jail]:
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        pytest.skip("the jail needs root and bubblewrap")
    with Jail(max_concurrency=2) as j:
        yield j


def test_tester_runs_every_case_and_language(jail: Jail) -> None:
    tester = AutomationTester(runner=jail, limits=LIMITS, concurrency=2, result_key=KEY)
    before = metrics.SANDBOX_RUNS.labels(**PY_PASSED)._value.get()
    outcomes = asyncio.run(tester.test(make_automation()))
    got = {(o.result.case_id, o.result.language): o.result for o in outcomes}
    assert set(got) == {(c, lang) for c in ("good", "bad") for lang in ("python", "bash", "applescript")}
    for lang in ("python", "bash"):
        good, bad = got[("good", lang)], got[("bad", lang)]
        assert good.verdict == "passed" and good.passed and good.stop_reason == "exited", good
        assert bad.verdict == "failed" and not bad.passed and bad.mismatches, bad
        assert good.wall_seconds > 0 and good.cpu_seconds > 0 and good.peak_memory_bytes > 0
    apple = got[("good", "applescript")]
    assert (apple.verdict, apple.stop_reason, apple.passed) == ("unsupported", "unsupported", False)
    assert "unsupported on this platform" in apple.detail
    metric = next(o.metric for o in outcomes if o.result.case_id == "good" and o.result.language == "python")
    assert metric is not None
    # a test that did not run is a result, never a run (it would read as a failed 0-second run)
    assert all((o.metric is None) == (o.result.verdict == "unsupported") for o in outcomes)
    assert metric.source == "sandbox" and metric.success and [s.step for s in metric.steps] == [0, 1]
    after = metrics.SANDBOX_RUNS.labels(**PY_PASSED)._value.get()
    assert after == before + 1
    snap = tester.stats.snapshot("a-sbx")
    assert snap["runs"] == 6 and snap["passed"] == 2 and snap["success_rate"] == pytest.approx(0.5)
    # Every result is signed by the runner, and its id is the request's.
    for (case_id, lang), res in got.items():
        assert verify_result(res, KEY) and res.result_id == result_id_for("a-sbx", 1, case_id, lang)
    assert metric.run_id == got[("good", "python")].result_id


def test_only_generated_automations_are_tested(jail: Jail) -> None:
    tester = AutomationTester(runner=jail, limits=LIMITS, concurrency=1, result_key=KEY)
    assert asyncio.run(tester.test(make_automation(state="verified"))) == []


def test_result_ids_come_from_the_request_alone() -> None:
    a = make_automation("a-ids")
    ids = [r.result_id for r in requests_of(a)]
    assert len(ids) == len(set(ids)) == 6
    assert ids == [r.result_id for r in requests_of(make_automation("a-ids"))]  # a retry: same ids
    assert result_id_for("a", 1, "c", "python") != result_id_for("a", 2, "c", "python")
    assert result_id_for("a:b", 1, "c", "python") != result_id_for("a", 1, "b:c", "python")
    assert len(result_id_for("x" * 256, 10**9, "y" * 256, "python")) <= 256


def test_untestable_automations_are_refused_with_the_reason() -> None:
    a = make_automation("a-bad")
    # no test cases: nothing to run; the registry rejects it ("no held-out instances to test against")
    assert requests_of(a.model_copy(update={"test_cases": []})) == []
    with pytest.raises(ValueError, match="no sources"):
        requests_of(a.model_copy(update={"sources": {}}))
    with pytest.raises(ValueError, match="appears twice"):
        requests_of(a.model_copy(update={"test_cases": [a.test_cases[0], a.test_cases[0]]}))
    # a forged automation with thousands of tiny cases held the jail for hours: refused on the topic by the
    # schema, and here too
    many = [a.test_cases[0].model_copy(update={"case_id": f"c{k}"}) for k in range(MAX_TEST_CASES + 1)]
    with pytest.raises(ValueError, match="over the 20 an automation may hold"):
        requests_of(a.model_copy(update={"test_cases": many}))
    forged = a.model_dump(mode="json") | {"test_cases": [c.model_dump(mode="json") for c in many]}
    with pytest.raises(ValidationError, match="test_cases"):
        decode(Automation, json.dumps(forged).encode())
    # its dead letter must fit under the broker's 1 MiB limit: a 925 kB one was refused, and the service
    # retried the record every 2 s for ever
    from rote.sandbox_runner.service import dead_letter

    huge = json.dumps(forged).encode() + b" " * 925_000
    letter = dead_letter(
        topic="automations",
        reason="test_cases",
        field=None,
        value=huge,
        key=b"k" * 50_000,
        partition=0,
        offset=1,
    )
    assert len(encode(letter)) < 1_000_000 and letter.payload_bytes == len(huge)


class _Broken:
    """A jail that fails the way a real one can (SandboxError) or the way a bug would (anything else)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def run(self, job: JobSpec) -> RunResult:
        raise self.exc


@pytest.mark.parametrize(
    "exc", [SandboxError("no free sandbox uid"), RuntimeError("a bug in the runner")], ids=["setup", "bug"]
)
def test_every_failure_is_a_signed_error_result_for_its_request(exc: Exception) -> None:
    tester = AutomationTester(runner=_Broken(exc), limits=LIMITS, concurrency=1, result_key=KEY)
    outcomes = asyncio.run(tester.test(make_automation("a-err")))
    runnable = [o.result for o in outcomes if o.result.language != "applescript"]
    assert len(runnable) == 4
    for res in runnable:
        assert (res.verdict, res.stop_reason, res.passed) == ("error", "setup", False), res
        assert str(exc) in res.detail and verify_result(res, KEY)
        assert res.result_id == result_id_for("a-err", 1, res.case_id or "", res.language)


def test_a_verifier_or_builder_bug_still_ends_in_a_result(jail: Jail) -> None:
    def bad_verify(*_a: Any, **_k: Any) -> Any:
        raise KeyError("steps")

    def bad_build(*_a: Any, **_k: Any) -> Any:
        raise TypeError("bundle")

    for kwargs in ({"verify": bad_verify}, {"build_bundle": bad_build}):
        tester = AutomationTester(runner=jail, limits=LIMITS, concurrency=2, result_key=KEY, **kwargs)
        outcomes = asyncio.run(tester.test(make_automation("a-bug")))
        assert len(outcomes) == 6
        errors = [o.result for o in outcomes if o.result.language != "applescript"]
        assert all(r.verdict == "error" and r.stop_reason == "setup" for r in errors), errors


def test_the_service_refuses_to_start_without_a_result_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTE_RESULT_KEY", raising=False)
    monkeypatch.delenv("ROTE_RESULT_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="ROTE_RESULT_KEY"):
        SandboxService(bootstrap_servers="localhost:9", jail=_Broken(RuntimeError()))
    monkeypatch.setenv("ROTE_RESULT_KEY", "k" * 32)
    assert (
        SandboxService(bootstrap_servers="localhost:9", jail=_Broken(RuntimeError())).result_key == b"k" * 32
    )


def _result(aid: str, verdict: str, secs: float) -> TestResult:
    return TestResult(
        result_id=f"{aid}-{verdict}-{secs}",
        automation_id=aid,
        version=1,
        language="python",
        verdict=verdict,
        passed=verdict == "passed",
        stop_reason="exited" if verdict != "unsupported" else "unsupported",
        wall_seconds=secs,
        cpu_seconds=0,
        peak_memory_bytes=0,
        output_bytes=0,
        started_at=datetime.now(UTC),
    )


def test_stats_success_rate_and_durations() -> None:
    import pickle

    st = SandboxStats(window=3)
    for verdict, secs in [
        ("passed", 1.0),
        ("failed", 3.0),
        ("passed", 2.0),
        ("unsupported", 0.0),
        ("passed", 4.0),
    ]:
        st.learn_one(_result("a", verdict, secs))
    snap = st.snapshot("a")
    assert snap["runs"] == 5 and snap["passed"] == 3
    assert snap["success_rate"] == pytest.approx(3 / 4)  # unsupported is no evidence
    assert snap["median_seconds"] == 3.0  # window of the 3 latest judged runs: 3, 2, 4
    assert snap["mean_seconds"] == pytest.approx(10 / 4)
    assert pickle.loads(pickle.dumps(st)).snapshot("a") == snap
    assert st.snapshot("nope") == {"automation_id": "nope", "runs": 0}


@pytest.mark.tansu
@pytest.mark.integration
def test_service_consumes_and_produces(jail: Jail, tansu_broker: Any) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from rote.brokers.admin import create_topics

    bootstrap = tansu_broker.bootstrap
    create_topics(bootstrap, [topics.AUTOMATIONS, topics.TEST_RESULTS, topics.METRICS, topics.DEAD_LETTERS])
    run = uuid.uuid4().hex[:8]  # the session's broker is shared: only this test's events are counted
    aid, junk_key, empty_id = f"a-kafka-{run}", f"junk-{run}".encode(), f"a-empty-{run}"
    group = f"sbx-test-{run}"

    async def scenario() -> tuple[list[TestResult], list[dict[str, Any]], list[dict[str, Any]], Any, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        auto = make_automation(aid)
        await producer.send_and_wait(topics.AUTOMATIONS.name, encode(auto), key=aid.encode())
        await producer.send_and_wait(topics.AUTOMATIONS.name, b'{"automation_id": 5}', key=junk_key)
        empty = sign(make_automation(empty_id).model_copy(update={"test_cases": []}), KEY)
        await producer.send_and_wait(topics.AUTOMATIONS.name, encode(empty), key=empty_id.encode())
        await producer.stop()
        service = SandboxService(
            bootstrap_servers=bootstrap,
            group_id=group,
            concurrency=2,
            limits=LIMITS,
            jail=jail,
            result_key=KEY,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop=stop))
        consumer = AIOKafkaConsumer(
            topics.TEST_RESULTS.name,
            topics.METRICS.name,
            topics.DEAD_LETTERS.name,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=f"{group}-reader",
        )
        await consumer.start()
        results: list[TestResult] = []
        metric_events: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 90
        try:
            while (len(results) < 6 or len(metric_events) < 4 or len(dead) < 2) and (
                asyncio.get_running_loop().time() < deadline
            ):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, recs in batch.items():
                    for r in recs:
                        doc = json.loads(r.value)
                        if tp.topic == topics.TEST_RESULTS.name and doc["automation_id"] == aid:
                            results.append(decode(TestResult, r.value))
                        elif tp.topic == topics.METRICS.name and doc["automation_id"] == aid:
                            metric_events.append(doc)
                        elif tp.topic == topics.DEAD_LETTERS.name and doc["key_b64"] in (
                            base64.b64encode(junk_key).decode(),
                            base64.b64encode(empty_id.encode()).decode(),
                        ):
                            dead.append(doc)
        finally:
            await consumer.stop()
            stop.set()
            await asyncio.wait_for(task, 30)
        # Everything it produced was acknowledged before its offsets were committed: the group's committed
        # offsets are the topic's end, so a restarted runner tests nothing twice.
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await probe.start()
        try:
            parts = [TopicPartition(topics.AUTOMATIONS.name, p) for p in range(topics.AUTOMATIONS.partitions)]
            ends = await probe.end_offsets(parts)
            lag = 0
            for tp in parts:
                lag += ends[tp] - ((await probe.committed(tp)) or 0)
        finally:
            await probe.stop()
        return results, metric_events, dead, service, lag

    results, metric_events, dead, service, lag = asyncio.run(scenario())
    # four tests ran (Python and Bash, both cases); AppleScript's two are results without a run
    assert len(results) == 6 and len(metric_events) == 4, (results, metric_events)
    unsupported = {r.result_id for r in results if r.verdict == "unsupported"}
    assert len(unsupported) == 2 and not unsupported & {m["run_id"] for m in metric_events}
    verdicts = sorted((r.case_id, r.language, r.verdict) for r in results)
    assert verdicts == [
        ("bad", "applescript", "unsupported"),
        ("bad", "bash", "failed"),
        ("bad", "python", "failed"),
        ("good", "applescript", "unsupported"),
        ("good", "bash", "passed"),
        ("good", "python", "passed"),
    ]
    assert all(verify_result(r, KEY) for r in results)
    assert {r.result_id for r in results} == {q.result_id for q in requests_of(make_automation(aid))}
    assert all(m["source"] == "sandbox" for m in metric_events)
    # every run it reports is signed: the registry counts no run a holder of the key did not report
    assert all(verify(RunMetric.model_validate(m), KEY) for m in metric_events)
    reasons = sorted(d["reason"] for d in dead)
    # the junk record is dead-lettered; the automation without test cases is not tested and not an error
    # (the registry rejects it with the reason)
    assert len(dead) == 1 and all(d["source_topic"] == "automations" for d in dead), dead
    assert "automation_id" in reasons[0], reasons
    assert service.dead_letters == 1 and service.processed == 1
    assert service.stats()[0]["automation_id"] == aid
    assert lag == 0


class _Record:
    def __init__(self, tp: Any, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = tp.topic, tp.partition, offset
        self.value, self.key = value, None


class _Consumer:
    """Records what the service commits and where it rewinds (the broker side is tested on Tansu above)."""

    def __init__(self) -> None:
        self.committed: dict[Any, int] = {}
        self.seeks: dict[Any, int] = {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.committed.update(offsets)

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset


class _Producer:
    """Acknowledges every send except those for automations in `refuse`, as a broker that fails would."""

    def __init__(self, refuse: set[bytes]) -> None:
        self.refuse = refuse
        self.acked: list[tuple[str, bytes | None]] = []
        self.result_ids: list[str] = []  # of every result sent, acknowledged or not

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[None]:
        from aiokafka.errors import KafkaTimeoutError

        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic == topics.TEST_RESULTS.name:
            self.result_ids.append(decode(TestResult, value).result_id)
        if key in self.refuse:
            fut.set_exception(KafkaTimeoutError())
        else:
            self.acked.append((topic, key))
            fut.set_result(None)
        return fut


def test_offsets_are_committed_only_up_to_the_first_unacknowledged_record() -> None:
    from aiokafka import TopicPartition

    service = SandboxService(bootstrap_servers="unused:9", jail=_Broken(SandboxError("x")), result_key=KEY)
    service.tester = AutomationTester(runner=service._runner(), limits=LIMITS, concurrency=1, result_key=KEY)
    p0, p1 = TopicPartition("automations", 0), TopicPartition("automations", 1)
    batch = {
        p0: [_Record(p0, 10 + i, encode(make_automation(f"a-{i}"))) for i in range(3)],
        p1: [_Record(p1, 5, encode(make_automation("a-other")))],
    }
    consumer, producer = _Consumer(), _Producer(refuse={b"a-1"})
    ok = asyncio.run(service._process(consumer, producer, batch))
    assert not ok
    # a-0 is done; a-1's results were not acknowledged, so neither it nor a-2 behind it is committed, and
    # the partition is rewound to a-1; the other partition is unaffected.
    assert consumer.committed == {p0: 11, p1: 6}
    assert consumer.seeks == {p0: 11}
    assert {k for _, k in producer.acked} == {b"a-0", b"a-2", b"a-other"}
    # The redo (the rewound records again) produces the same result ids: copies replace, never add.
    first = list(producer.result_ids)
    producer.refuse.clear()
    producer.result_ids.clear()
    assert asyncio.run(service._process(consumer, producer, {p0: batch[p0][1:]}))
    assert consumer.committed[p0] == 13
    redo = producer.result_ids
    assert len(redo) == 12 and set(redo) <= set(first)
    assert set(redo) == {r.result_id for i in (1, 2) for r in requests_of(make_automation(f"a-{i}"))}


class _Tester:
    """Counts what it is asked to test (nothing may reach it unsigned)."""

    def __init__(self) -> None:
        self.tested: list[str] = []

    async def test(self, automation: Automation) -> list[Any]:
        self.tested.append(automation.automation_id)
        return []


def test_an_automation_rote_did_not_sign_is_dead_lettered_and_never_tested() -> None:
    """A topic writer's own program with test cases it passes would otherwise come back signed `passed`
    (attack sweep of 2026-12-02): only automations carrying the generator's signature are tested."""
    from aiokafka import TopicPartition

    service = SandboxService(bootstrap_servers="unused:9", jail=_Broken(SandboxError("x")), result_key=KEY)
    tester = _Tester()
    service.tester = tester
    tp = TopicPartition("automations", 0)
    legit = make_automation("a-legit")
    unsigned = legit.model_copy(update={"automation_id": "a-unsigned", "signature": None})
    other_key = sign(legit.model_copy(update={"automation_id": "a-other-key"}), b"another-key-entirely-" * 2)
    swapped = legit.model_copy(update={"plan": legit.plan[:1]})  # signed, then its program changed
    relabelled = legit.model_copy(update={"state": "verified", "state_reason": "echo"})  # lifecycle only
    echo = sign(relabelled, KEY)  # the registry's own echo, signed anew
    records = [unsigned, other_key, swapped, legit, relabelled, echo]
    batch = {tp: [_Record(tp, i, encode(a)) for i, a in enumerate(records)]}
    consumer, producer = _Consumer(), _Producer(refuse=set())
    assert asyncio.run(service._process(consumer, producer, batch))
    # tested: the signed one and the registry's signed echo (the tester skips states other than
    # "generated" itself), never the four forgeries
    assert tester.tested == ["a-legit", "a-legit"]
    letters = [t for t, _ in producer.acked if t == topics.DEAD_LETTERS.name]
    assert len(letters) == 4 and service.dead_letters == 4
    assert consumer.committed == {tp: 6}  # refused records are done with, not retried
