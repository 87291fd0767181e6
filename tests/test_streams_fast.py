"""The fast `user-actions` decoder (streams/fast.py) agrees with the pydantic schema, action by action."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rote.errors import ValidationError
from rote.streams.fast import (
    BATCH_KIND,
    FastAction,
    decode_action,
    decode_message,
    encode_batch,
    from_model,
)
from rote.streams.schemas import MAX_BATCH_ACTIONS, UserAction, UserActionBatch, decode

NOW = datetime.now(UTC)

GOOD: dict[str, Any] = {
    "event_id": "e1",
    "user_id": "ana",
    "timestamp": "2024-05-01T09:00:00Z",
    "app": "Excel",
    "action_type": "copyCell",
    "target": {"cell": "A2", "sheet": "Sheet1", "row": 2},
    "value": "John",
    "attributes": {"userID": "ana"},
}


def _pydantic(raw: bytes) -> UserAction | None:
    try:
        return decode(UserAction, raw)
    except ValidationError:
        return None


def _fast(raw: bytes) -> FastAction | None:
    try:
        return decode_action(raw)
    except ValidationError:
        return None


def _data(action: FastAction) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(action)
    if not data.get("target"):
        data.pop("target", None)  # an empty target and no target are the same action
    return data


def _same(fast: FastAction, model: UserAction) -> bool:
    return _data(fast) == _data(from_model(model))


# Values chosen to hit every coercion pydantic and msgspec might disagree on.
odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "5",
            "1e3",
            "true",
            "2024-05-01",
            "2024-05-01T09:00:00",
            "2024-05-01 09:00:00Z",
            "2024-05-01T09:00:00+05:30",
            "1970-01-01T00:00:00Z",
            "2999-01-01T00:00:00Z",
            "2024-05-01T09:00:00.1234567Z",
            "x" * 600,
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
FIELDS = [
    "event_id",
    "user_id",
    "timestamp",
    "app",
    "action_type",
    "value",
    "duration_seconds",
    "session_id",
    "schema_version",
    "attributes",
    "target",
    "source",
]
TARGET_FIELDS = ["cell", "row", "field", "url"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), odd, max_size=3),
    target_changes=st.dictionaries(st.sampled_from(TARGET_FIELDS), odd, max_size=2),
    drop=st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_fast_decoder_judges_every_payload_as_the_schema_does(
    changes: dict[str, Any], target_changes: dict[str, Any], drop: list[str]
) -> None:
    payload = {**GOOD, **changes}
    if isinstance(payload.get("target"), dict):
        payload["target"] = {**payload["target"], **target_changes}
    for key in drop:
        payload.pop(key, None)
    raw = json.dumps(payload).encode()
    model, fast = _pydantic(raw), _fast(raw)
    assert (model is None) == (fast is None), (payload, model, fast)
    if model is not None and fast is not None:
        assert _same(fast, model)


def test_a_batch_keeps_its_valid_actions_and_rejects_the_rest_alone() -> None:
    actions = [{**GOOD, "event_id": f"e{i}", "value": f"v{i}"} for i in range(5)]
    actions[2] = {**actions[2], "timestamp": "yesterday"}
    actions[3] = {**actions[3], "user_id": "bob"}
    raw = json.dumps({"kind": BATCH_KIND, "schema_version": 1, "user_id": "ana", "actions": actions}).encode()
    out = decode_message(raw)
    assert out.batch and [a.event_id for a in out.actions] == ["e0", "e1", "e4"]
    reasons = [r.reason for r in out.rejected]
    assert reasons[0].startswith("actions[2].timestamp") and "differs from its batch" in reasons[1]
    assert json.loads(out.rejected[0].raw)["event_id"] == "e2"  # the action's own bytes


def test_single_actions_and_garbage() -> None:
    assert decode_message(json.dumps(GOOD).encode()).actions[0].event_id == "e1"
    for bad in (
        b"",
        b"\xff\xfe",
        b"[1,2]",
        b'{"kind": "user-action-batch", "actions": []}',
        b"{" * 10000,
        json.dumps({"kind": BATCH_KIND, "actions": [GOOD] * (MAX_BATCH_ACTIONS + 1)}).encode(),
    ):
        out = decode_message(bad)
        assert not out.actions and len(out.rejected) == 1 and out.rejected[0].reason


def test_encoded_batch_is_a_valid_schema_batch_and_round_trips() -> None:
    model = decode(UserAction, json.dumps(GOOD).encode())
    later = model.model_copy(update={"event_id": "e2", "timestamp": NOW - timedelta(hours=1)})
    raw = encode_batch("ana", [model, later])
    UserActionBatch.model_validate_json(raw)  # the published schema accepts what rote sends
    out = decode_message(raw)
    assert [a.event_id for a in out.actions] == ["e1", "e2"] and not out.rejected
    assert _same(out.actions[0], model)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(st.dictionaries(st.sampled_from(FIELDS), odd, max_size=2), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_a_batch_accepts_exactly_the_actions_the_schema_accepts(
    rows: list[tuple[dict[str, Any], bool]],
) -> None:
    payloads = []
    for i, (changes, keep_user) in enumerate(rows):
        p = {**GOOD, "event_id": f"b{i}", **changes}
        if keep_user:
            p["user_id"] = "ana"
        payloads.append(p)
    try:  # a message that is not JSON at all (NaN, Infinity) is rejected whole: another test covers that
        raw = json.dumps(
            {"kind": BATCH_KIND, "schema_version": 1, "user_id": "ana", "actions": payloads}, allow_nan=False
        ).encode()
    except ValueError:
        assume(False)
    out = decode_message(raw)
    expected = []
    for p in payloads:
        model = _pydantic(json.dumps(p).encode())
        if model is not None and model.user_id == "ana":
            expected.append(model)
    assert [a.event_id for a in out.actions] == [m.event_id for m in expected]
    assert all(_same(a, m) for a, m in zip(out.actions, expected, strict=True))
    assert len(out.actions) + len(out.rejected) == len(payloads)


def test_a_poison_action_is_rejected_alone_and_never_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker with the producer login crashed every worker in a loop: a batch action stamped
    0001-01-01T00:00:00+01:00 (before year 1 in UTC: `astimezone` raised OverflowError), or any action with
    an integer of 4,301 digits (Python's int() limit: a bare ValueError from the JSON fallback). Each is
    now rejected alone with a reason, its valid sibling kept; and whatever else a decoder raises rejects
    the message instead of stopping the agent."""
    import rote.streams.fast as fast
    from rote.streams.schemas import Candidate

    huge = "1" * 4301  # written into the JSON text: Python itself cannot make that int from a string

    def act(eid: str, ts: str, **extra: object) -> dict[str, object]:
        return {
            "event_id": eid,
            "user_id": "u1",
            "timestamp": ts,
            "app": "Excel",
            "action_type": "click",
            **extra,
        }

    def text(obj: object) -> bytes:
        return json.dumps(obj).replace('"HUGE"', huge).encode()

    poisons = [
        act("bad", "0001-01-01T00:00:00+01:00"),
        act("bad", "9999-12-31T23:59:59-01:00"),
        act("bad", "2024-03-04T09:00:00Z", schema_version="HUGE"),
    ]
    for poison in poisons:
        batch: dict[str, object] = {"kind": "user-action-batch", "schema_version": 1, "user_id": "u1"}
        batch["actions"] = [act("ok", "2024-03-04T09:00:00Z"), poison]
        got = fast.decode_message(text(batch))
        assert [a.event_id for a in got.actions] == ["ok"] and len(got.rejected) == 1
        assert got.rejected[0].reason.startswith("actions[1].")
        alone = fast.decode_message(text(poison))
        assert not alone.actions and len(alone.rejected) == 1
    with pytest.raises(ValidationError, match="not JSON rote reads"):
        decode(Candidate, text({"candidate_id": "HUGE"}))

    def boom(raw: bytes, window: object) -> None:
        raise TypeError("a decoder bug")

    monkeypatch.setattr(fast, "_decode_whole_batch", boom)
    got = fast.decode_message(b'{"kind": "user-action-batch"}')
    assert not got.actions and "undecodable message (TypeError: a decoder bug)" in got.rejected[0].reason
