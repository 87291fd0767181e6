"""Signed test verdicts (rote.security.verdicts): what the runner signs, what the registry will accept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rote.errors import ConfigError
from rote.security.verdicts import (
    canonical_bytes,
    ephemeral_result_key,
    result_key_from_env,
    sign,
    sign_result,
    verify,
    verify_result,
    why_not,
)
from rote.streams.schemas import Automation, Candidate, TestResult, decode, encode

KEY = b"k" * 32


def _result(**kw: object) -> TestResult:
    base: dict[str, object] = dict(
        result_id="r-1",
        automation_id="a-1",
        version=2,
        case_id="good",
        language="python",
        verdict="failed",
        passed=False,
        exit_code=1,
        stop_reason="exited",
        detail="exited with status 1",
        wall_seconds=0.2,
        cpu_seconds=0.05,
        peak_memory_bytes=1 << 20,
        output_bytes=10,
        mismatches=["step 1: expected 'Ada', got 'Grace'"],
        started_at=datetime(2026, 5, 1, 9, tzinfo=UTC),
        runner="host:1",
    )
    base.update(kw)
    return TestResult.model_validate(base)


def test_a_signed_result_verifies_and_survives_the_wire() -> None:
    signed = sign_result(_result(), KEY)
    assert signed.signature is not None and signed.signature.startswith("hmac-sha256:")
    assert verify_result(signed, KEY)
    # What the registry sees is the decoded event, not the runner's object.
    assert verify_result(decode(TestResult, encode(signed)), KEY)


def test_unsigned_results_are_rejected() -> None:
    assert not verify_result(_result(), KEY)
    assert not verify_result(_result(signature=""), KEY)


def test_forged_results_are_rejected() -> None:
    # The attack of issue 11: hand-made "passed" results, with made-up or copied signatures.
    forged = _result(verdict="passed", passed=True, exit_code=0, detail="exited with status 0")
    assert not verify_result(forged.model_copy(update={"signature": "hmac-sha256:" + "0" * 64}), KEY)
    assert not verify_result(forged.model_copy(update={"signature": "hmac-sha256:zz"}), KEY)
    assert not verify_result(forged.model_copy(update={"signature": "sha256:" + "0" * 64}), KEY)
    other = sign_result(_result(result_id="r-2"), KEY)
    assert not verify_result(forged.model_copy(update={"signature": other.signature}), KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"passed": True},
        {"verdict": "passed"},
        {"stop_reason": "cpu"},
        {"version": 3},
        {"automation_id": "a-2"},
        {"case_id": None},
        {"exit_code": 0},
        {"mismatches": []},
        {"wall_seconds": 0.2000001},
        {"runner": "attacker"},
        {"started_at": datetime(2026, 5, 1, 9, 0, 1, tzinfo=UTC)},
    ],
)
def test_altering_any_field_breaks_the_signature(change: dict[str, object]) -> None:
    signed = sign_result(_result(), KEY)
    assert not verify_result(signed.model_copy(update=change), KEY)
    # ... also when the change arrives as edited JSON on the topic.
    doc = json.loads(encode(signed))
    doc.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in change.items()})
    assert not verify_result(decode(TestResult, json.dumps(doc).encode()), KEY)


def test_wrong_key_is_rejected() -> None:
    signed = sign_result(_result(), KEY)
    assert not verify_result(signed, b"K" * 32)
    assert not verify_result(signed, b"")
    assert not verify_result(signed, KEY + b"x")


def test_unknown_fields_and_reordering_do_not_matter() -> None:
    signed = sign_result(_result(), KEY)
    doc = json.loads(encode(signed))
    doc["added_by_someone"] = "ignored by the model"
    reordered = json.dumps(dict(reversed(list(doc.items())))).encode()
    assert verify_result(decode(TestResult, reordered), KEY)


def test_canonical_form_is_tagged_and_excludes_the_signature() -> None:
    signed = sign_result(_result(), KEY)
    raw = canonical_bytes(signed)
    assert raw.startswith(b"rote.TestResult.v1\n") and b"signature" not in raw
    assert canonical_bytes(signed) == canonical_bytes(_result())
    assert sign_result(signed, KEY).signature == signed.signature  # re-signing replaces, same bytes


def test_unencodable_results_fail_closed() -> None:
    odd = _result(detail="\ud800 lone surrogate")
    assert verify_result(sign_result(odd, KEY), KEY)  # escaped, not an encoding error
    # the schema refuses Infinity now; an object made past validation still fails closed
    with pytest.raises(ValueError, match="finite"):
        _result(wall_seconds=float("inf"))
    forged = _result().model_copy(
        update={"wall_seconds": float("inf"), "signature": "hmac-sha256:" + "0" * 64}
    )
    assert not verify_result(forged, KEY)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        sign_result(_result(), b"short")
    assert len(ephemeral_result_key()) == 32 and ephemeral_result_key() != ephemeral_result_key()


def test_key_from_env(tmp_path: Path) -> None:
    assert result_key_from_env({}) is None
    assert result_key_from_env({"ROTE_RESULT_KEY": "x" * 40}) == b"x" * 40
    with pytest.raises(ConfigError, match="ROTE_RESULT_KEY is 5 bytes"):
        result_key_from_env({"ROTE_RESULT_KEY": "short"})
    f = tmp_path / "key"
    f.write_bytes(b"s" * 48 + b"\n")
    f.chmod(0o600)
    assert result_key_from_env({"ROTE_RESULT_KEY_FILE": str(f)}) == b"s" * 48
    with pytest.raises(ConfigError, match="not both"):
        result_key_from_env({"ROTE_RESULT_KEY_FILE": str(f), "ROTE_RESULT_KEY": "x" * 40})
    f.chmod(0o622)
    with pytest.raises(ConfigError, match="writable by group or others"):
        result_key_from_env({"ROTE_RESULT_KEY_FILE": str(f)})
    with pytest.raises(ConfigError, match="cannot be read"):
        result_key_from_env({"ROTE_RESULT_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="not a regular file"):
        result_key_from_env({"ROTE_RESULT_KEY_FILE": str(tmp_path)})
    f.chmod(0o600)
    f.write_bytes(b"short\n")
    with pytest.raises(ConfigError, match="at least 32"):
        result_key_from_env({"ROTE_RESULT_KEY_FILE": str(f)})


def _automation() -> Automation:
    from test_registry import CFG, file_candidate

    from rote.generator import generate

    return generate(file_candidate(), config=CFG)


def test_automations_and_candidates_are_signed_over_everything_they_carry() -> None:
    """The generator signs what it renders, the task identifier what it found (rote.security.verdicts):
    a changed program, test case, routine or lifecycle state no longer verifies; the registry signs its
    lifecycle echoes anew (review of 2026-12-02: a replay relabelled `verified` counted in the report)."""
    from test_registry import file_candidate

    a = sign(_automation(), KEY)
    assert verify(a, KEY) and verify(decode(Automation, encode(a)), KEY)
    echo = a.model_copy(update={"state": "verified", "state_reason": "all held-out cases passed"})
    assert not verify(echo, KEY)  # the lifecycle is signed too (the report reads it): a relabelled replay
    assert verify(sign(echo, KEY), KEY)  # the registry re-signs its echoes
    for change in (
        {"plan": a.plan[:1]},
        {"test_cases": a.test_cases[:1]},
        {"parameters": [*a.parameters, "extra"]},
        {"version": a.version + 1},
        {"user_id": "mallory"},
    ):
        assert not verify(a.model_copy(update=change), KEY), change
    assert not verify(a.model_copy(update={"signature": None}), KEY)
    assert not verify(a, b"another-key-of-32-bytes-or-more!!")
    assert why_not(a.model_copy(update={"signature": None})) == (
        "automation has no signature (not made by a holder of the key)"
    )
    assert "signature does not verify" in why_not(a.model_copy(update={"user_id": "mallory"}))

    c = sign(file_candidate(), KEY)
    assert verify(c, KEY) and verify(decode(Candidate, encode(c)), KEY)
    assert not verify(c.model_copy(update={"routine": [*c.routine, "open_url"]}), KEY)
    # one kind's signature never passes for another's (domain tags)
    assert canonical_bytes(c).startswith(b"rote.Candidate.v1\n")
    assert canonical_bytes(a).startswith(b"rote.Automation.v1\n")
    assert canonical_bytes(sign_result(_result(), KEY)).startswith(b"rote.TestResult.v1\n")


def test_run_metrics_are_signed_like_verdicts() -> None:
    from rote.streams.schemas import RunMetric

    m = RunMetric(
        run_id="r-1",
        automation_id="a-1",
        version=1,
        source="production",
        started_at=datetime(2026, 5, 1, 9, tzinfo=UTC),
        duration_seconds=2.5,
        success=True,
    )
    signed = sign(m, KEY)
    assert verify(decode(RunMetric, encode(signed)), KEY)
    assert not verify(m, KEY) and not verify(signed.model_copy(update={"success": False}), KEY)
    assert canonical_bytes(signed).startswith(b"rote.RunMetric.v1\n")
    assert why_not(m) == "run metric has no signature (not made by a holder of the key)"
