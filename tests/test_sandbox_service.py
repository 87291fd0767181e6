"""The sandbox runner service: real generated automations tested in the real jail, and the Kafka loop
against the embedded Tansu broker (results, metrics, dead letters, per-automation statistics)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rote.sandbox_runner.jail import Jail, Limits
from rote.sandbox_runner.service import AutomationTester, SandboxService
from rote.sandbox_runner.stats import SandboxStats
from rote.streams import topics
from rote.streams.schemas import Automation, ExpectedAction, Target, TestResult, encode
from rote.streams.schemas import TestCase as Case

from rote import metrics
from rote.generator import codegen, exprs

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

    return Automation(
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


@pytest.fixture(scope="module")
def jail() -> Iterator[Jail]:
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        pytest.skip("the jail needs root and bubblewrap")
    with Jail(max_concurrency=2) as j:
        yield j


def test_tester_runs_every_case_and_language(jail: Jail) -> None:
    tester = AutomationTester(runner=jail, limits=LIMITS, concurrency=2)
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
    assert metric.source == "sandbox" and metric.success and [s.step for s in metric.steps] == [0, 1]
    after = metrics.SANDBOX_RUNS.labels(**PY_PASSED)._value.get()
    assert after == before + 1
    snap = tester.stats.snapshot("a-sbx")
    assert snap["runs"] == 6 and snap["passed"] == 2 and snap["success_rate"] == pytest.approx(0.5)


def test_only_generated_automations_are_tested(jail: Jail) -> None:
    tester = AutomationTester(runner=jail, limits=LIMITS, concurrency=1)
    assert asyncio.run(tester.test(make_automation(state="verified"))) == []


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
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from rote.brokers.admin import create_topics

    bootstrap = tansu_broker.bootstrap
    create_topics(bootstrap, [topics.AUTOMATIONS, topics.TEST_RESULTS, topics.METRICS, topics.DEAD_LETTERS])

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], Any]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        auto = make_automation("a-kafka")
        await producer.send_and_wait(topics.AUTOMATIONS.name, encode(auto), key=b"a-kafka")
        await producer.send_and_wait(topics.AUTOMATIONS.name, b'{"automation_id": 5}', key=b"junk")
        await producer.stop()
        service = SandboxService(
            bootstrap_servers=bootstrap, group_id="sbx-test", concurrency=2, limits=LIMITS, jail=jail
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop=stop))
        consumer = AIOKafkaConsumer(
            topics.TEST_RESULTS.name,
            topics.METRICS.name,
            topics.DEAD_LETTERS.name,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id="sbx-test-reader",
        )
        await consumer.start()
        results: list[dict[str, Any]] = []
        metric_events: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 90
        try:
            while (len(results) < 6 or len(metric_events) < 6 or not dead) and (
                asyncio.get_running_loop().time() < deadline
            ):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, recs in batch.items():
                    sink = {topics.TEST_RESULTS.name: results, topics.METRICS.name: metric_events}.get(
                        tp.topic, dead
                    )
                    sink.extend(json.loads(r.value) for r in recs)
        finally:
            await consumer.stop()
            stop.set()
            await asyncio.wait_for(task, 30)
        return results, metric_events, dead, service

    results, metric_events, dead, service = asyncio.run(scenario())
    assert len(results) == 6 and len(metric_events) == 6, (results, metric_events)
    verdicts = sorted((r["case_id"], r["language"], r["verdict"]) for r in results)
    assert verdicts == [
        ("bad", "applescript", "unsupported"),
        ("bad", "bash", "failed"),
        ("bad", "python", "failed"),
        ("good", "applescript", "unsupported"),
        ("good", "bash", "passed"),
        ("good", "python", "passed"),
    ]
    assert all(m["source"] == "sandbox" for m in metric_events)
    assert len(dead) == 1 and dead[0]["source_topic"] == "automations"
    assert "automation_id" in dead[0]["reason"]
    assert service.dead_letters == 1 and service.processed == 1
    assert service.stats()[0]["automation_id"] == "a-kafka"
