"""The executor service's registry feed trusts only signed verdicts, and refuses to start without the key
(no broker needed: the feed's decoding is called directly)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_registry import CFG, file_candidate

from rote.errors import ConfigError
from rote.generator import generate
from rote.runner.executor import Execution, RunnerConfig
from rote.runner.service import RunnerService
from rote.security.verdicts import ephemeral_result_key, sign, sign_result
from rote.streams.schemas import RunRequest, TestResult, encode
from rote.streams.topics import AUTOMATIONS, TEST_RESULTS


def _passed(a, case_id: str, lang: str) -> TestResult:
    return TestResult(
        result_id=uuid.uuid4().hex,
        automation_id=a.automation_id,
        version=a.version,
        case_id=case_id,
        language=lang,
        verdict="passed",
        passed=True,
        exit_code=0,
        stop_reason="exited",
        wall_seconds=0.1,
        cpu_seconds=0.1,
        peak_memory_bytes=0,
        output_bytes=0,
        started_at=datetime.now(UTC),
    )


def test_only_signed_results_verify(tmp_path: Path) -> None:
    key = ephemeral_result_key()
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9", config=RunnerConfig(state_dir=tmp_path), result_key=key
    )
    a = sign(generate(file_candidate(), config=CFG), key)
    svc._absorb(AUTOMATIONS.name, encode(a))
    forged = [_passed(a, c.case_id, lang) for c in a.test_cases for lang in ("python", "bash")]
    for r in forged:
        svc._absorb(TEST_RESULTS.name, encode(r))
    assert svc.registry.state_of(a.automation_id)[1] == "generated"  # type: ignore[index]
    assert svc.unsigned_results == len(forged)
    for r in forged:
        svc._absorb(
            TEST_RESULTS.name, encode(sign_result(r.model_copy(update={"result_id": uuid.uuid4().hex}), key))
        )
    assert svc.registry.state_of(a.automation_id)[1] == "verified"  # type: ignore[index]
    svc._absorb(TEST_RESULTS.name, b"not json")  # invalid events on the feed are skipped, not fatal


def test_no_key_no_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTE_RESULT_KEY", raising=False)
    monkeypatch.delenv("ROTE_RESULT_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="no result key"):
        RunnerService(bootstrap_servers="127.0.0.1:9", config=RunnerConfig(state_dir=tmp_path))


def _request(automation_id: str, made_seconds_ago: float) -> RunRequest:
    return RunRequest(
        run_id=f"run-{uuid.uuid4().hex}",
        automation_id=automation_id,
        params={},
        requested_at=datetime.now(UTC) - timedelta(seconds=made_seconds_ago),
    )


def test_the_wait_for_an_unknown_automation_counts_from_the_request(tmp_path: Path) -> None:
    """A request may overtake its verification, so a fresh one naming an automation the feed does not know
    waits for it; an old one (a backlog read after an outage) is refused at once instead of holding up
    the runnable requests behind it for the whole wait."""
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9",
        config=RunnerConfig(state_dir=tmp_path, await_state_seconds=2.0),
        result_key=ephemeral_result_key(),
    )
    fresh, half, old, future = (
        _request("a-unknown", 0),
        _request("a-unknown", 1),
        _request("a-unknown", 600),
        _request("a-unknown", -600),
    )
    assert 1.9 <= svc.state_wait(fresh) <= 2.0
    assert 0.9 <= svc.state_wait(half) <= 1.0
    assert svc.state_wait(old) == 0.0
    assert svc.state_wait(future) == 2.0  # a requester's clock ahead gets the whole wait, no more

    async def timed(request: RunRequest) -> tuple[float, str | None]:
        t0 = time.monotonic()
        execution = await svc.handle(request)
        assert execution is not None
        return time.monotonic() - t0, execution.refused

    waited, why = asyncio.run(timed(old))
    assert waited < 0.5 and why is not None and "a-unknown" in why
    waited, why = asyncio.run(timed(fresh))
    assert waited >= 1.8 and why is not None


def test_a_fresh_request_runs_once_the_feed_learns_its_automation(tmp_path: Path) -> None:
    key = ephemeral_result_key()
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9",
        config=RunnerConfig(state_dir=tmp_path, await_state_seconds=20.0),
        result_key=key,
    )
    a = sign(generate(file_candidate(), config=CFG), key)
    seen: list[str | None] = []

    def execute(request: RunRequest, automation: Any, state: str | None) -> Execution:
        seen.append(state)
        return Execution(refused="stub: not run")

    svc.executor.execute = execute  # type: ignore[method-assign]

    async def overtaken() -> None:
        task = asyncio.create_task(svc.handle(_request(a.automation_id, 0)))
        await asyncio.sleep(0.5)
        assert not task.done()  # still waiting for the feed
        svc._absorb(AUTOMATIONS.name, encode(a))
        for c in a.test_cases:
            for lang in ("python", "bash"):
                svc._absorb(TEST_RESULTS.name, encode(sign_result(_passed(a, c.case_id, lang), key)))
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(overtaken())
    assert seen == ["verified"]


def test_the_executor_takes_only_automations_rote_rendered(tmp_path: Path) -> None:
    """A topic writer's own automation never enters the executor's registry (attack sweep of 2026-12-02);
    nor does a record reusing a verified automation's id and version with another program: that one is
    refused by its signature and, were it signed, by the registry (a version is immutable)."""
    key = ephemeral_result_key()
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9", config=RunnerConfig(state_dir=tmp_path), result_key=key
    )
    a = generate(file_candidate(), config=CFG)
    svc._absorb(AUTOMATIONS.name, encode(a))  # unsigned
    assert svc.registry.state_of(a.automation_id) is None and svc.unsigned_automations == 1
    a = sign(a, key)
    svc._absorb(AUTOMATIONS.name, encode(a))
    for c in a.test_cases:
        for lang in ("python", "bash"):
            svc._absorb(TEST_RESULTS.name, encode(sign_result(_passed(a, c.case_id, lang), key)))
    assert svc.registry.state_of(a.automation_id)[1] == "verified"  # type: ignore[index]
    swapped = a.model_copy(update={"plan": a.plan[:1]})
    svc._absorb(AUTOMATIONS.name, encode(swapped))  # the signature no longer verifies
    svc._absorb(AUTOMATIONS.name, encode(sign(swapped, key)))  # signed (a key holder's bug): immutable
    assert svc.unsigned_automations == 2
    found = svc.registry.state_of(a.automation_id)
    assert found is not None and found[0].plan == a.plan and found[1] == "verified"


def test_a_request_for_an_automation_the_caught_up_feed_never_saw_is_refused_at_once(tmp_path: Path) -> None:
    """Attack sweep of 2026-12-02: fresh requests naming made-up automations held each batch of requests
    (and every runnable one behind them) for the whole wait. Once the feed has caught up, an automation it
    has never seen cannot be verified in the next seconds (it is published before it is tested)."""
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9",
        config=RunnerConfig(state_dir=tmp_path, await_state_seconds=20.0),
        result_key=ephemeral_result_key(),
    )

    async def timed() -> tuple[float, str | None]:
        svc.ready.set()
        t0 = time.monotonic()
        execution = await svc.handle(_request("a-made-up", 0))
        assert execution is not None
        return time.monotonic() - t0, execution.refused

    waited, why = asyncio.run(timed())
    assert waited < 1.0 and why is not None and "a-made-up" in why


def test_the_done_log_reads_back_run_ids_holding_line_separators(tmp_path: Path) -> None:
    """A requester's run id may hold U+2028, \\r or \\x1c (all line breaks to `str.splitlines`): read back
    after a restart it must be the one id published, or that run would be run again."""
    from rote.runner.service import DoneLog

    ids = ["run-a\u2028b", "run-c\rd", "run-e\x1cf", "run-g\nh", '"quoted"', "run-plain"]
    log = DoneLog(tmp_path / "done.log")
    for run_id in ids:
        log.add(run_id)
    log.close()
    again = DoneLog(tmp_path / "done.log")
    assert list(again.ids) == ids
    again.close()
    (tmp_path / "old.log").write_text("run-1\nrun-2\n", encoding="utf-8")  # before ids were quoted
    assert list(DoneLog(tmp_path / "old.log").ids) == ["run-1", "run-2"]


def test_the_executor_learns_an_automation_from_the_registrys_signed_echo(tmp_path: Path) -> None:
    """`automations` is compacted and the registry's lifecycle echo has the automation's key, so after
    compaction the generated record is gone and only the echo is left (review of 2026-12-02: a restarted
    executor then knew no automation at all). The echo is signed anew by the registry; the executor takes
    the program from it, and its state from its own signed verdicts while it has any."""
    key = ephemeral_result_key()
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9", config=RunnerConfig(state_dir=tmp_path), result_key=key
    )
    a = generate(file_candidate(), config=CFG)
    relabelled = sign(a, key).model_copy(update={"state": "verified"})  # a replay relabelled, not re-signed
    svc._absorb(AUTOMATIONS.name, encode(relabelled))
    assert svc.unsigned_automations == 1 and svc.registry.state_of(a.automation_id) is None
    echo = sign(a.model_copy(update={"state": "verified", "state_reason": "all cases passed"}), key)
    svc._absorb(AUTOMATIONS.name, encode(echo))
    # `test-results` keeps verdicts 30 days, `automations` keeps the echo: with no verdict of its own left,
    # the executor takes the registry's signed decision (every run was refused after a late restart)
    assert svc.registry.state_of(a.automation_id)[1] == "verified"  # type: ignore[index]
    # where the feed has verdicts of its own, they decide, whatever an echo says
    b = generate(file_candidate(version=2), config=CFG).model_copy(update={"automation_id": "auto-b"})
    svc._absorb(AUTOMATIONS.name, encode(sign(b, key)))
    failed = _passed(b, b.test_cases[0].case_id, "python").model_copy(
        update={"verdict": "failed", "passed": False, "exit_code": 1}
    )
    svc._absorb(TEST_RESULTS.name, encode(sign_result(failed, key)))
    before = svc.registry.state_of("auto-b")
    assert before is not None and before[1] != "verified"
    svc._absorb(AUTOMATIONS.name, encode(sign(b.model_copy(update={"state": "verified"}), key)))
    assert svc.registry.state_of("auto-b")[1] == before[1]  # type: ignore[index]


def test_run_metrics_no_sandbox_or_executor_signed_move_nothing(tmp_path: Path) -> None:
    """Review of 2026-12-02: forged run metrics degraded a verified automation (three failures), re-enabled
    a degraded one (one success), retired one (twenty failures) and claimed a run id before it ran."""
    from rote.streams.schemas import RunMetric
    from rote.streams.topics import METRICS

    key = ephemeral_result_key()
    svc = RunnerService(
        bootstrap_servers="127.0.0.1:9", config=RunnerConfig(state_dir=tmp_path), result_key=key
    )
    a = sign(generate(file_candidate(), config=CFG), key)
    svc._absorb(AUTOMATIONS.name, encode(a))
    for c in a.test_cases:
        for lang in ("python", "bash"):
            svc._absorb(TEST_RESULTS.name, encode(sign_result(_passed(a, c.case_id, lang), key)))
    assert svc.registry.state_of(a.automation_id)[1] == "verified"  # type: ignore[index]

    def failed(run_id: str) -> RunMetric:
        return RunMetric(
            run_id=run_id,
            automation_id=a.automation_id,
            version=a.version,
            source="production",
            started_at=datetime.now(UTC),
            duration_seconds=1.0,
            success=False,
            outcome="failed",
        )

    for i in range(25):
        svc._absorb(METRICS.name, encode(failed(f"forged-{i}")))
    assert svc.unsigned_metrics == 25
    assert svc.registry.state_of(a.automation_id)[1] == "verified"  # type: ignore[index]
    assert not svc.registry.has_run("forged-0")  # a request with that id still runs
    for i in range(3):
        svc._absorb(METRICS.name, encode(sign(failed(f"real-{i}"), key)))
    assert svc.registry.state_of(a.automation_id)[1] == "degraded"  # type: ignore[index]
