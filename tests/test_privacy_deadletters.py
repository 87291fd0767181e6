"""Dead letters keep what arrived, redacted: a rejected event may still hold what a person typed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from rote.privacy import redact_bytes


def test_a_rejected_event_loses_its_password_and_identifiers_but_nothing_else() -> None:
    bad = {"event_id": "x", "target": {"element_type": "password"}, "value": "hunter2", "app": "Chrome"}
    out = json.loads(redact_bytes(json.dumps(bad).encode()))
    assert out["value"] == "<password>" and out["app"] == "Chrome" and out["event_id"] == "x"


def test_a_target_that_is_not_an_object_still_names_the_password_field() -> None:
    # invalid (a target is an object), so dead-lettered: its value is still what was typed into "Password"
    for target in ("Password", ["login", "pwd"]):
        bad = {"event_id": "x", "action_type": "type", "target": target, "value": "hunter2", "app": "Chrome"}
        out = json.loads(redact_bytes(json.dumps(bad).encode()))
        assert out["value"] == "<password>" and out["target"] == target
    plain = {"event_id": "x", "action_type": "type", "target": "Name", "value": "Ana", "app": "Chrome"}
    assert json.loads(redact_bytes(json.dumps(plain).encode()))["value"] == "Ana"


def test_a_rejected_batch_is_redacted_action_by_action() -> None:
    batch = {
        "kind": "user-action-batch",
        "actions": [{"value": "mail ana.lopez@example.org now", "app": "Outlook"}, "not an object"],
    }
    out = json.loads(redact_bytes(json.dumps(batch).encode()))
    assert "ana.lopez@example.org" not in json.dumps(out)
    assert out["actions"][1] == "not an object" and out["actions"][0]["app"] == "Outlook"


def test_broken_json_and_binary_are_redacted_as_text_and_keep_their_other_bytes() -> None:
    raw = b'{"event_id": "e", "value": "card 4111 1111 1111 1111, \xff\xfe trunc'
    out = redact_bytes(raw)
    assert b"4111 1111 1111 1111" not in out and b"<card:" in out
    assert out.startswith(b'{"event_id": "e"') and b"\xff\xfe trunc" in out
    garbage = b"\x00\xffgarbage\x80"
    assert redact_bytes(garbage) == garbage


def _dead_letters_of(tmp_path: Path, text: str, **options: Any) -> list[bytes]:
    from rote.importers import CsvOptions, dead_letter, iter_records

    path = tmp_path / "log.csv"
    path.write_text(text, encoding="utf-8")
    opts = CsvOptions(**options) if options else None
    return [
        base64.b64decode(dead_letter(r, path).payload_b64)
        for r in iter_records(path, fmt="csv", csv_options=opts)
        if r.error is not None
    ]


def test_a_csv_row_that_fails_to_map_loses_the_password_typed_into_its_field(tmp_path: Path) -> None:
    """A row whose action cell is empty never becomes an event, so the field-aware rule never saw it: its
    cells are redacted by the same rule (the label cell names a password field, the value cell is taken)."""
    text = (
        "timestamp,eventType,label,value,status\n"
        "2024-01-08T09:00:00Z,insertValue,username,Frank01,complete\n"
        "2024-01-08T09:00:02Z,,password,LittleFrank123,complete\n"
    )
    (letter,) = _dead_letters_of(tmp_path, text)
    assert b"LittleFrank123" not in letter
    assert letter == b"2024-01-08T09:00:02Z,,password,<password>,complete"


def test_without_a_value_column_every_other_cell_of_such_a_row_is_taken(tmp_path: Path) -> None:
    text = (
        "time;what;field;typed;note\n"
        "2024-01-08 09:00:00;type;Kennwort;Geheim-2024!;ok\n"
        "2024-01-08 09:00:05;;Kennwort;Geheim-2024!;ok\n"
    )
    (letter,) = _dead_letters_of(tmp_path, text, time_col="time", action_cols=("what", "field"))
    assert b"Geheim-2024!" not in letter
    assert letter.startswith(b"2024-01-08 09:00:05;;Kennwort;<password>;")


def test_a_password_column_is_redacted_in_a_row_of_the_wrong_width(tmp_path: Path) -> None:
    text = "timestamp,eventType,password\n2024-01-08T09:00:00Z,login,s3cr3t-Pa55,extra\n"
    (letter,) = _dead_letters_of(tmp_path, text)
    assert b"s3cr3t-Pa55" not in letter and b"<password>" in letter


def test_a_password_split_by_the_delimiter_is_taken_whole(tmp_path: Path) -> None:
    """A new user's export: a password holding the delimiter (`Herbst;Kennw0rt!4711`) split the row into
    one cell more than the header; only the first half was redacted and the rest kept in the dead letter."""
    text = (
        "Zeit;Aktion;Element;Wert;Titel\n"
        "2024-01-08 09:00:00;Eingeben;Benutzer;m.schneider;Login\n"
        "2024-01-08 09:00:02;Eingeben;Kennwort;Herbst;Kennw0rt!4711;Login\n"
    )
    opts = {"time_col": "Zeit", "action_cols": ("Aktion", "Element"), "value_col": "Wert"}
    (letter,) = _dead_letters_of(tmp_path, text, **opts)
    assert b"Kennw0rt" not in letter and b"Herbst" not in letter
    assert letter.startswith(b"2024-01-08 09:00:02;Eingeben;Kennwort;<password>;<password>")
    # a password *column* split the same way (a reviewer): from that column on
    text = "Zeit;Aktion;Benutzer;Passwort;Titel\n2024-01-08 09:00:02;;ana;Herbst;Kennw0rt!4711;Login\n"
    (letter,) = _dead_letters_of(tmp_path, text, time_col="Zeit", action_cols=("Aktion",))
    assert b"Kennw0rt" not in letter and b"Herbst" not in letter and b"ana" in letter


def test_a_rejected_row_without_a_password_field_keeps_its_cells(tmp_path: Path) -> None:
    text = "timestamp,eventType,label,value\n2024-01-08T09:00:00Z,,city,Melbourne\n"
    (letter,) = _dead_letters_of(tmp_path, text)
    assert letter == b"2024-01-08T09:00:00Z,,city,Melbourne"


def test_a_rejected_events_nested_password_field_is_redacted() -> None:
    """A foreign record with `timestamp` is read as one of rote's events and rejected by the schema; its
    dead letter kept `{"event": {"el": {"label": "Password"}, "value": "…"}}` in clear (an attacker's
    sweep). Nested objects get the action's rule: a label saying password hides the content beside it, a
    key named as a password field is one."""
    bad = {
        "timestamp": "2019-02-21T17:00:01Z",
        "event": {"el": {"label": "Password"}, "value": "Hunter2xyz"},
        "extra": {"pwd": "abc12345", "city": "Melbourne"},
        "other": {"el": {"label": "City"}, "value": "Sydney"},
    }
    out = json.loads(redact_bytes(json.dumps(bad).encode()))
    assert out["event"]["value"] == "<password>"
    assert out["extra"] == {"pwd": "<password>", "city": "Melbourne"}
    assert out["other"] == bad["other"]
