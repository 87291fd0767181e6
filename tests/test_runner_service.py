"""The executor service's registry feed trusts only signed verdicts, and refuses to start without the key
(no broker needed: the feed's decoding is called directly)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_registry import CFG, file_candidate

from rote.errors import ConfigError
from rote.generator import generate
from rote.runner.executor import RunnerConfig
from rote.runner.service import RunnerService
from rote.security.verdicts import ephemeral_result_key, sign_result
from rote.streams.schemas import TestResult, encode
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
    a = generate(file_candidate(), config=CFG)
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
