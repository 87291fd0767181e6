"""The topic catalogue, the event schemas, their JSON Schema files, settings and the producer API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError as PydanticValidationError

from rote.config import Settings
from rote.errors import ConfigError, ValidationError
from rote.streams import jsonschema as generated
from rote.streams.schemas import SCHEMAS, DeadLetter, UserAction, decode, encode, json_schema
from rote.streams.topics import BY_NAME, CATALOGUE, Cleanup, topic

GOOD = {
    "event_id": "e-1",
    "user_id": "ana",
    "timestamp": "2026-05-01T09:00:00+02:00",
    "app": "Excel",
    "action_type": "copyCell",
    "target": {"sheet": "Sheet1", "cell": "A2", "column": "A", "row": 2},
    "value": "John",
}


def test_catalogue_has_the_design_card_topics_with_keys_and_schemas() -> None:
    names = {t.name for t in CATALOGUE}
    assert {
        "user-actions",
        "candidates",
        "automations",
        "test-results",
        "metrics",
        "anomalies",
        "optimization-reports",
        "dead-letters",
    } <= names
    for spec in CATALOGUE:
        assert spec.schema in SCHEMAS
        assert spec.key in SCHEMAS[spec.schema].model_fields, f"{spec.name} keyed by a field its events lack"
        assert spec.partitions >= 1
        if spec.cleanup is Cleanup.COMPACT:
            assert spec.config() == {"cleanup.policy": "compact"}
        else:
            assert spec.config()["retention.ms"] == str(spec.retention_ms)
    # agents that join topics in one table need equal partition counts
    assert topic("automations").partitions == topic("test-results").partitions == topic("metrics").partitions
    with pytest.raises(KeyError, match="unknown topic"):
        topic("nope")


def test_valid_event_round_trips_and_timestamps_become_utc() -> None:
    action = decode(UserAction, json.dumps(GOOD).encode())
    assert action.timestamp == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
    assert action.target.cell == "A2"
    assert decode(UserAction, encode(action)) == action
    # unknown fields from newer producers are ignored, not fatal
    assert decode(UserAction, {**GOOD, "new_field": 1}) == action


def test_encoding_leaves_out_none_and_loses_nothing() -> None:
    """`encode` drops a candidate's None fields (its unset target fields were a third of its bytes): safe
    only while every nullable field of the event models defaults to None, which this checks over all."""
    from pydantic import BaseModel

    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = list(SCHEMAS.values())
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            ann = info.annotation
            args = getattr(ann, "__args__", ()) or ()
            nested, stack = [], [ann]
            while stack:  # every model inside the annotation (list[Target | None], dict[str, X], ...)
                a = stack.pop()
                if isinstance(a, type) and issubclass(a, BaseModel):
                    nested.append(a)
                stack += list(getattr(a, "__args__", ()) or ())
            todo += nested
            if type(None) in args:  # a nullable field: left out when None, so None must be its default
                assert not info.is_required(), f"{model.__name__}.{name} is required and nullable"
                assert info.default is None, f"{model.__name__}.{name} defaults to {info.default!r}, not None"
    assert len(seen) > len(SCHEMAS)  # nested models (Target, RoutineStep, ...) were looked at too
    from test_registry import file_candidate

    from rote.streams.schemas import Candidate

    cand = file_candidate()
    wire = encode(cand)
    assert b":null" not in wire and len(wire) < len(cand.model_dump_json())  # (a list keeps its nulls)
    assert decode(Candidate, wire).model_dump() == cand.model_dump()
    # small events keep their null fields: consumers outside rote index them (`key_b64` of a dead letter)
    action = decode(UserAction, json.dumps(GOOD).encode())
    assert b'"session_id":null' in encode(action)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b'{"event_id": ', "not JSON"),
        (b"[1, 2]", "JSON list, expected an object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}).encode(), "user_id: Field required"),
        (json.dumps({**GOOD, "timestamp": "yesterday"}).encode(), "timestamp:"),
        (json.dumps({**GOOD, "timestamp": "2026-05-01T09:00:00"}).encode(), "timestamp:"),  # no timezone
        (json.dumps({**GOOD, "duration_seconds": -1}).encode(), "duration_seconds:"),
        (json.dumps({**GOOD, "timestamp": "2999-01-01T00:00:00Z"}).encode(), "in the future"),
        (json.dumps({**GOOD, "event_id": ""}).encode(), "event_id:"),
    ],
)
def test_invalid_events_get_a_clear_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode(UserAction, payload)
    assert reason in info.value.reason


def test_dead_letter_keeps_the_original_bytes() -> None:
    raw = b"\xff not json at all"
    import base64

    letter = DeadLetter(
        source_topic="user-actions",
        reason="payload is not UTF-8",
        payload_b64=base64.b64encode(raw).decode(),
        received_at=datetime.now(UTC),
        agent="task-identifier",
    )
    assert decode(DeadLetter, encode(letter)).payload == raw


def test_committed_json_schema_files_are_fresh() -> None:
    assert generated.stale() == [], "run `rote schemas build`"


def test_stale_detection_sees_edits_and_leftovers(tmp_path: Path) -> None:
    generated.write(tmp_path)
    assert generated.stale(tmp_path) == []
    (tmp_path / "UserAction.v1.json").write_text("{}")
    (tmp_path / "Removed.v1.json").write_text("{}")
    assert generated.stale(tmp_path) == ["Removed.v1.json", "UserAction.v1.json"]


@pytest.mark.parametrize(
    "payload",
    [
        GOOD,
        {**GOOD, "user_id": 5},
        {k: v for k, v in GOOD.items() if k != "app"},
        {**GOOD, "duration_seconds": -2},
    ],
)
def test_json_schema_agrees_with_the_models(payload: dict[str, Any]) -> None:
    """A producer validating with the JSON Schema accepts exactly what rote's ingress accepts."""
    schema = json_schema(UserAction)
    try:
        decode(UserAction, payload)
        accepted = True
    except ValidationError:
        accepted = False
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(payload))
    assert accepted == (not errors)


def test_settings_from_env_and_flags() -> None:
    s = Settings.from_env(
        {"ROTE_BROKER": "kafka://a:9092,b:9092", "ROTE_METRICS_PORT": "9999"}, metrics_port=None
    )
    assert s.bootstrap_servers == "a:9092,b:9092" and s.metrics_port == 9999
    assert Settings.from_env({"ROTE_METRICS_PORT": "9999"}, metrics_port=1234).metrics_port == 1234
    with pytest.raises(ConfigError, match="not a valid int"):
        Settings.from_env({"ROTE_METRICS_PORT": "lots"})
    with pytest.raises(ConfigError, match="broker must be"):
        Settings(broker="http://x")
    with pytest.raises(ConfigError, match="store must be"):
        Settings(store="redis://x")
    with pytest.raises(ConfigError):
        Settings(sandbox_concurrency=0)
    with pytest.raises(ConfigError, match="known only once"):
        _ = Settings().bootstrap_servers
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        s.broker = "embedded"  # type: ignore[misc]


@pytest.mark.integration
@pytest.mark.tansu
def test_producer_api_validates_before_sending_and_batches_per_user(tansu_broker: Any) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from rote.brokers import create_topics
    from rote.producer import ActionProducer
    from rote.streams.fast import decode_message

    create_topics(tansu_broker.bootstrap, [BY_NAME["user-actions"]])
    with ActionProducer(tansu_broker.bootstrap, topic="user-actions", linger_seconds=5.0) as producer:
        sent = producer.send({**GOOD, "event_id": "producer-api-1"})
        with pytest.raises(ValidationError, match="timestamp"):
            producer.send({**GOOD, "event_id": "producer-api-2", "timestamp": "never"})
        for i in range(3, 6):
            producer.send({**GOOD, "event_id": f"producer-api-{i}"})
    consumer = KafkaConsumer(bootstrap_servers=tansu_broker.bootstrap, consumer_timeout_ms=2000)
    parts = [TopicPartition("user-actions", p) for p in range(BY_NAME["user-actions"].partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    messages = [decode_message(m.value) for m in consumer if m.key == b"ana"]
    consumer.close()
    ours = [m for m in messages if any(a.event_id.startswith("producer-api-") for a in m.actions)]
    # held within the linger, the user's four valid actions left as one batch message, in order
    assert len(ours) == 1 and ours[0].batch and not ours[0].rejected
    ids = [a.event_id for a in ours[0].actions]
    assert ids == [sent.event_id, "producer-api-3", "producer-api-4", "producer-api-5"]


@pytest.mark.integration
@pytest.mark.tansu
def test_rote_produce_validates_or_forwards_as_asked(tansu_broker: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "actions.jsonl"
    rows = [
        {**GOOD, "event_id": "produce-1"},
        {**GOOD, "event_id": "produce-2", "user_id": "ben"},
        {**GOOD, "event_id": "produce-3", "timestamp": "not a time"},
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    broker = f"kafka://{tansu_broker.bootstrap}"

    def produce(*extra: str) -> dict[str, Any]:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rote.cli",
                "produce",
                str(log),
                "--format",
                "jsonl",
                "--broker",
                broker,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    assert produce() == {"sent": 2, "rejected": 1, "failed": 0}
    assert produce("--no-validate") == {"sent": 3, "rejected": 0, "failed": 0}


# ------------------------------------------------------------------ decode's JSON fast path
def _python_path(model: type[Any], raw: bytes) -> Any:
    """What `decode` did before it tried pydantic's JSON parser: json.loads, then model_validate."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "refused"
    if not isinstance(data, dict):
        return "refused"
    try:
        return model.model_validate(data)
    except PydanticValidationError:
        return "refused"


def _mutations() -> Any:
    from hypothesis import strategies as st

    json_leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["2026-05-01T09:00:00Z", "2026-05-01", "1e3", "NaN", "true", "", "09:00"]),
    )
    return st.tuples(st.sampled_from([*sorted(GOOD), "target", "schema_version", "new"]), json_leaf)


def test_the_json_fast_path_changes_no_verdict_and_no_value() -> None:
    """`decode` parses bytes with pydantic's JSON parser first; for every schema, mutated events get the
    same verdict (and the same value when accepted) as json.loads + model_validate."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(_mutations(), max_size=4), st.sampled_from(sorted(SCHEMAS)))
    def check(changes: list[tuple[str, Any]], schema: str) -> None:
        model = SCHEMAS[schema]
        payload = dict(GOOD)
        for k, v in changes:
            payload[k] = v
        for raw in (json.dumps(payload).encode(), json.dumps(payload).encode().replace(b'"', b"'", 1)):
            expected = _python_path(model, raw)
            try:
                got: Any = decode(model, raw)
            except ValidationError:
                got = "refused"
            assert got == expected

    check()


def test_the_json_fast_path_agrees_on_real_events() -> None:
    """Real candidates, automations and actions from the bundled log decode to the same value both ways,
    and so do copies with a nested field broken."""
    from rote.discovery import DiscoveryConfig, RoutineDiscoverer
    from rote.generator import generate
    from rote.importers import bundled_log, load_actions

    path, fmt = bundled_log()
    actions = load_actions(path, fmt=fmt)
    discoverer = RoutineDiscoverer(DiscoveryConfig())
    state = discoverer.new_state(actions[0].user_id)
    candidates = discoverer.learn_many(state, actions) + discoverer.flush(state)
    assert candidates
    events: list[Any] = [*actions[:50], *candidates, generate(candidates[0])]
    for event in events:
        raw = encode(event)
        broken = raw.replace(b'"label":"', b'"label":7,"x":"', 1).replace(b'"version":1', b'"version":-1', 1)
        for payload in (raw, broken):
            for model in SCHEMAS.values():
                expected = _python_path(model, payload)
                try:
                    got: Any = decode(model, payload)
                except ValidationError:
                    got = "refused"
                assert got == expected, (type(event).__name__, model.__name__)
        assert decode(type(event), raw) == event
