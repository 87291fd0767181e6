"""The redactor's contract on payload dicts and on action objects, its configuration and its key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rote.errors import ConfigError
from rote.importers import iter_records
from rote.privacy import PASSWORD_MARKER, RedactionConfig, Redactor, default_redactor, load_key
from rote.streams.schemas import UserAction, decode

KEY = b"test-key-for-pseudonyms-0123456789"
CARD = "4539 1488 0343 6467"  # Luhn-valid, made up
PASSWORD = "Tr0ub4dor&3-horse"


def _action(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "user_id": "ana",
        "timestamp": "2024-05-01T09:00:00Z",
        "app": "Chrome",
        "action_type": "editField",
        "target": {"field": "SingleLine", "element_type": "text", "url": "https://forms.example.com/new"},
        "value": "John",
        "attributes": {"target.tagName": "INPUT", "target.type": "text"},
    }
    base.update(over)
    return base


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(RedactionConfig(), key=KEY)


# ------------------------------------------------------------------------------------------------------
# payload dicts
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        # Action Logger: target.type=password (element_type and the raw attribute)
        _action(
            target={"field": "pwd", "element_type": "password"},
            value=PASSWORD,
            attributes={"target.type": "password", "target.innerHTML": f'<input value="{PASSWORD}">'},
        ),
        # Bosco: the field label says it
        _action(
            app="Web", action_type="insertValue", target={"field": "password"}, value=PASSWORD, attributes={}
        ),
        # process-mining export: the field is in the action name
        _action(action_type="insertValue_password_Web", target={}, value=PASSWORD, attributes={}),
        # browser extension: autocomplete attribute
        _action(
            target={"element": "input#x"}, value=PASSWORD, attributes={"autocomplete": "current-password"}
        ),
    ],
)
def test_password_never_reaches_the_payload(redactor: Redactor, payload: dict[str, Any]) -> None:
    out = redactor.redact_payload(payload)
    assert out["value"] == PASSWORD_MARKER
    assert PASSWORD not in json.dumps(out)
    assert PASSWORD in json.dumps(payload)  # the input is not modified


def test_pasted_card_number_never_reaches_the_payload(redactor: Redactor) -> None:
    payload = _action(app="OS-Clipboard", action_type="paste", value=f"card: {CARD}")
    out = redactor.redact_payload(payload)
    assert CARD not in json.dumps(out) and CARD.replace(" ", "") not in json.dumps(out)
    assert out["value"].startswith("card: <card:")
    decode(UserAction, out)  # still a valid event


def test_identifiers_in_targets_attributes_and_ids(redactor: Redactor) -> None:
    payload = _action(
        user_id="ana.lopez@example.org",
        target={"title": "Inbox - ana.lopez@example.org", "url": "https://crm.example.com/c?email=b%40x.org"},
        attributes={"target.innerText": "Call +44 20 7946 0123", "n": 4111111111111111},
    )
    out = redactor.redact_payload(payload)
    text = json.dumps(out)
    for raw in ("ana.lopez@example.org", "b%40x.org", "7946 0123", "4111111111111111"):
        assert raw not in text
    assert out["user_id"].startswith("<email:")
    assert out["target"]["url"].startswith("https://crm.example.com/c?email=<email:")


def test_unmapped_rows_are_scrubbed_with_their_own_columns(redactor: Redactor) -> None:
    """A logger row that failed to map keeps its raw columns (for the dead letter): they are redacted too."""
    raw_row = {"target.type": "password", "target.value": PASSWORD, "content": "", "url": "https://x.example"}
    out = redactor.redact_payload(raw_row)
    assert PASSWORD not in json.dumps(out)
    row2 = {"eventType": "paste", "content": f"{CARD}", "extra": {"note": "mail ana@example.org"}}
    text = json.dumps(redactor.redact_payload(row2))
    assert CARD not in text and "ana@example.org" not in text


def test_hostile_payload_shapes(redactor: Redactor) -> None:
    """Unvalidated input of the wrong shape is scrubbed, not trusted and not a crash."""
    odd = _action(
        target="mail ana@example.org",
        attributes=["+44 20 7946 0123"],
        value=None,
    )
    odd["attributes"] = {"name": ["x"], "target.type": {"k": "password"}, "note": "ana@example.org"}
    text = json.dumps(redactor.redact_payload(odd))
    assert "ana@example.org" not in text
    odd2 = _action(target="mail ana@example.org", attributes=["+44 20 7946 0123"])
    text2 = json.dumps(redactor.redact_payload(odd2))
    assert "ana@example.org" not in text2 and "7946 0123" not in text2


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "text",
    ["1" * 65000 + "a", "1 " * 30000, "1-" * 30000 + "@a.b.cc", "4111 " * 12000, "(" * 30000 + "1" * 30000],
    ids=["digits", "spaced", "dashed-email", "card-groups", "parens"],
)
def test_pathological_values_finish(redactor: Redactor, text: str) -> None:
    """No exponential backtracking on the largest value an event may carry (the timeout only guards
    against a hang; speed is measured by `rote bench`)."""
    assert isinstance(redactor.redact_text(text), str)


def test_ordinary_payload_is_unchanged(redactor: Redactor) -> None:
    payload = _action(value="18/08/1992")
    assert redactor.redact_payload(payload) == payload


# ------------------------------------------------------------------------------------------------------
# objects: same object when nothing changes, a replaced copy otherwise
# ------------------------------------------------------------------------------------------------------


class Tgt(msgspec.Struct, frozen=True):
    field: str | None = None
    element: str | None = None
    element_type: str | None = None
    workbook: str | None = None
    sheet: str | None = None
    cell: str | None = None
    column: str | None = None
    row: int | None = None
    url: str | None = None
    file: str | None = None
    title: str | None = None


class Act(msgspec.Struct, frozen=True):
    event_id: str
    user_id: str
    timestamp: str
    app: str
    action_type: str
    target: Tgt = Tgt()
    value: str | None = None
    attributes: dict[str, str] = {}


def _struct(**over: Any) -> Act:
    p = _action(**over)
    return Act(
        event_id=p["event_id"],
        user_id=p["user_id"],
        timestamp=p["timestamp"],
        app=p["app"],
        action_type=p["action_type"],
        target=Tgt(**p["target"]),
        value=p["value"],
        attributes=p["attributes"],
    )


def test_struct_same_object_when_clean_replaced_copy_otherwise(redactor: Redactor) -> None:
    clean = _struct()
    assert redactor.redact_action(clean) is clean
    assert redactor.redact_action(clean) is clean  # and again, from the memo

    dirty = _struct(value="ana@example.org", target={"title": "mail ana@example.org", "field": "Email"})
    out = redactor.redact_action(dirty)
    assert out is not dirty and isinstance(out, Act)
    assert dirty.value == "ana@example.org"  # never mutated
    assert out.value is not None and out.value.startswith("<email:")
    assert out.target.title == f"mail {out.value}"  # same value, same token
    assert out.target.field == "Email" and out.event_id == dirty.event_id
    assert redactor.redact_action(out) is out  # redacting redacted data changes nothing

    pw = _struct(target={"element_type": "password"}, value=PASSWORD, attributes={"target.type": "password"})
    assert redactor.redact_action(pw).value == PASSWORD_MARKER


def test_pydantic_action_and_partial_objects(redactor: Redactor) -> None:
    action = decode(UserAction, _action(value=f"pasted {CARD}"))
    out = redactor.redact_action(action)
    assert isinstance(out, UserAction) and CARD not in (out.value or "")
    clean = decode(UserAction, _action())
    assert redactor.redact_action(clean) is clean

    class Bare:  # no attributes/target: the general path copes
        def __init__(self, value: str) -> None:
            self.value = value

    with pytest.raises(TypeError):  # it cannot copy a plain object, but it does not crash on reading it
        redactor.redact_action(Bare("ana@example.org"))
    bare = Bare("nothing here")
    assert redactor.redact_action(bare) is bare


# ------------------------------------------------------------------------------------------------------
# allow / deny lists, switches, configuration
# ------------------------------------------------------------------------------------------------------


def test_deny_list_drops_values_allow_list_skips_scanning() -> None:
    r = Redactor(
        RedactionConfig(
            redact_deny_apps=("KeePass*",),
            redact_deny_urls=("bank.example",),
            redact_allow_urls=("https://intranet.example/directory/",),
        ),
        key=KEY,
    )
    denied = r.redact_payload(_action(app="KeePassXC", value="anything", attributes={"a": "b"}))
    assert denied["value"] is None and denied["attributes"] == {}
    bank = r.redact_payload(
        _action(target={"url": "https://www.bank.example/pay?iban=x", "title": "Acct 123"}, value="100.00")
    )
    assert bank["value"] is None and bank["target"]["url"] == "https://www.bank.example/pay"
    assert bank["target"]["title"] is None
    allowed = r.redact_payload(
        _action(target={"url": "https://intranet.example/directory/p1"}, value="ana@example.org")
    )
    assert allowed["value"] == "ana@example.org"
    allowed_pw = r.redact_payload(
        _action(
            target={"url": "https://intranet.example/directory/p1", "element_type": "password"}, value="pw1"
        )
    )
    assert allowed_pw["value"] == PASSWORD_MARKER  # password fields are never stored, trusted or not
    assert r.redact_payload(_action(value="ana@example.org"))["value"].startswith("<email:")


def test_config_from_env() -> None:
    env = {
        "ROTE_REDACT_EMAIL": "0",
        "ROTE_REDACT_DENY_APPS": "KeePass, 1Password ,",
        "ROTE_PSEUDONYM_KEY": "k" * 32,
        "ROTE_STATE_DIR": "/tmp/x",
    }
    cfg = RedactionConfig.from_env(env)
    assert "email" not in cfg.classes and "phone" in cfg.classes
    assert cfg.redact_deny_apps == ("KeePass", "1Password")
    assert cfg.key_path == Path("/tmp/x/pseudonym.key")
    assert "k" * 32 not in repr(cfg)  # the key never shows in a repr or a log line
    assert RedactionConfig.from_env({"ROTE_REDACT": "off"}).classes == frozenset()
    with pytest.raises(ConfigError):
        RedactionConfig.from_env({"ROTE_REDACT_PHONE": "maybe"})


def test_redaction_off_passes_everything() -> None:
    r = Redactor(RedactionConfig(redact=False))
    payload = _action(value="ana@example.org", target={"element_type": "password"})
    assert r.redact_payload(payload) == payload
    obj = _struct(value="ana@example.org")
    assert r.redact_action(obj) is obj


def test_key_file_created_0600_reused_and_refused_when_open(tmp_path: Path) -> None:
    cfg = RedactionConfig(state_dir=tmp_path / "state")
    key = load_key(cfg)
    path = tmp_path / "state" / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and load_key(cfg) == key
    token = Redactor(cfg).redact_text("ana@example.org")
    assert Redactor(cfg).redact_text("ana@example.org") == token  # same deployment, same token
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(cfg)
    path.chmod(0o600)
    # rotation: a new key gives new tokens
    path.unlink()
    assert Redactor(cfg).redact_text("ana@example.org") != token
    assert load_key(RedactionConfig(pseudonym_key="x" * 20, state_dir=tmp_path / "nowhere")) == b"x" * 20
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(ConfigError):
        load_key(RedactionConfig(pseudonym_key="short"))


def test_default_redactor_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROTE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("ROTE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("ROTE_REDACT", "1")
    on = default_redactor()
    assert on.enabled and default_redactor() is on
    # the key file is made when something is first pseudonymised (a refused run leaves the state dir alone)
    assert not (tmp_path / "pseudonym.key").exists()
    assert "ana@example.org" not in on.redact_text("mail ana@example.org")
    assert (tmp_path / "pseudonym.key").exists()
    monkeypatch.setenv("ROTE_REDACT", "0")
    assert not default_redactor().enabled


def test_importers_redact_at_capture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "login.jsonl"
    rows = [
        _action(event_id="a", target={"field": "Password", "element_type": "password"}, value=PASSWORD),
        _action(event_id="b", app="OS-Clipboard", action_type="paste", value=CARD),
        _action(event_id="c", value="ana@example.org"),
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("ROTE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("ROTE_REDACT", raising=False)
    text = json.dumps([r.payload for r in iter_records(log, fmt="jsonl")])
    for raw in (PASSWORD, CARD, "ana@example.org"):
        assert raw not in text
    monkeypatch.setenv("ROTE_REDACT", "0")
    assert PASSWORD in json.dumps([r.payload for r in iter_records(log, fmt="jsonl")])
    assert os.environ["ROTE_REDACT"] == "0"


def test_a_payload_nested_deeper_than_anyone_types_is_redacted_whole_not_a_crash() -> None:
    """A JSON line nested ~900 deep parses; scanning it recursively exhausted the stack (RecursionError in
    the importer, found by the hostile-input property test). Past 32 levels it is replaced whole."""
    from rote.privacy import default_redactor

    deep: object = "bob@example.com"
    for _ in range(900):
        deep = {"a": deep}
    out = default_redactor().redact_payload({"event_id": "e1", "extra": deep, "note": "bob@example.com"})
    assert "bob@example.com" not in json.dumps(out)
    level = out["extra"]
    for _ in range(33):
        level = level["a"]
    assert level == "<nested>"


@pytest.mark.parametrize("key", ["password", "pwd", "event.password", "Passwort", "user_password"])
def test_an_attribute_named_as_a_password_field_is_one_on_every_path(redactor: Redactor, key: str) -> None:
    """A foreign export's `{"password": "…"}` becomes an attribute named `password` (an attacker's sweep
    of the JSON importer): its value is a password whatever the action's own field says."""
    from rote.streams.fast import decode_action

    payload = {
        "event_id": "e1",
        "user_id": "u",
        "timestamp": "2024-01-08T09:00:00Z",
        "app": "Chrome",
        "action_type": "login",
        "attributes": {key: "Hunter2xyz", "keyboard": "de", "note": "fine"},
    }
    as_dict = redactor.redact_payload(payload)["attributes"]
    as_model = redactor.redact_action(UserAction.model_validate(payload)).attributes
    as_struct = redactor.redact_action(decode_action(json.dumps(payload).encode())).attributes
    for attrs in (as_dict, as_model, as_struct):
        assert attrs == {key: PASSWORD_MARKER, "keyboard": "de", "note": "fine"}


LABEL_KEYS = ["el.fieldName", "field_name", "inputName", "aria_label", "labelText", "caption"]


@pytest.mark.parametrize("key", LABEL_KEYS)
def test_browser_extensions_label_keys_say_the_field_is_a_password(redactor: Redactor, key: str) -> None:
    from rote.streams.fast import decode_action

    payload = {
        "event_id": "e1",
        "user_id": "u",
        "timestamp": "2024-01-08T09:00:00Z",
        "app": "Chrome",
        "action_type": "input",
        "value": "Hunter2xyz",
        "attributes": {key: "Password"},
    }
    assert redactor.redact_payload(payload)["value"] == PASSWORD_MARKER
    assert redactor.redact_action(decode_action(json.dumps(payload).encode())).value == PASSWORD_MARKER


def test_a_password_typed_into_another_field_later_is_hidden_too(redactor: Redactor) -> None:
    """A new user's log (2026-12-02): a password typed into a Teams message box was kept verbatim (no field
    says "password" there). What was typed into a password field is remembered (a keyed digest) and the
    same text is hidden wherever it is typed after, in dict payloads and in the worker's objects alike."""
    secret = "Herbst#LKPW3zz"
    chat = _action(app="Teams", target={"field": "Nachricht"}, value=secret)
    assert redactor.redact_payload(chat)["value"] == secret  # before: nothing says it is one (memoised clean)
    login = _action(target={"field": "pwd", "element_type": "password"}, value=secret)
    assert redactor.redact_payload(login)["value"] == PASSWORD_MARKER
    assert redactor.redact_payload(chat)["value"] == PASSWORD_MARKER
    action = UserAction.model_validate(_action(app="Teams", target={"field": "Suche"}, value=secret))
    assert redactor.redact_action(action).value == PASSWORD_MARKER
    # an ordinary value is not touched, nor a short one typed into a password field (a PIN: 1234 is also
    # a quantity), nor text that only contains the password (only exact repeats are caught)
    redactor.redact_payload(_action(target={"field": "pin", "element_type": "password"}, value="1234"))
    for other in ("1234", "Herbst", f"pw {secret}"):
        assert redactor.redact_payload(_action(target={"field": "Nachricht"}, value=other))["value"] == other
    assert secret not in repr(vars(redactor._secrets))  # digests only
