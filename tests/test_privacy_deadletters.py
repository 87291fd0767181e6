"""Dead letters keep what arrived, redacted: a rejected event may still hold what a person typed."""

from __future__ import annotations

import json

from rote.privacy import redact_bytes


def test_a_rejected_event_loses_its_password_and_identifiers_but_nothing_else() -> None:
    bad = {"event_id": "x", "target": {"element_type": "password"}, "value": "hunter2", "app": "Chrome"}
    out = json.loads(redact_bytes(json.dumps(bad).encode()))
    assert out["value"] == "<password>" and out["app"] == "Chrome" and out["event_id"] == "x"


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
