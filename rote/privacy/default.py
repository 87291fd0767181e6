"""The process-wide redactor that capture points share: the producer API, the importers, ingress.

Each capture point makes one call (`redact_payload` or `redact_action`) instead of building and carrying a
`Redactor`: the configuration comes from the environment, as everywhere in rote. The redactor is rebuilt
when one of its variables changes (tests and `rote eval` switch redaction off and on in one process), which
costs a few environment look-ups per call: fine for importers and producers; the worker's hot path keeps
its own `Redactor` and calls its methods directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields
from typing import Any, TypeVar

from rote.privacy.config import CREATED_KEY_FILES, RedactionConfig
from rote.privacy.redactor import Redactor

T = TypeVar("T")

_VARS: tuple[str, ...] = tuple(f"ROTE_{f.name.upper()}" for f in fields(RedactionConfig))
_lock = threading.Lock()
_current: tuple[tuple[str | None, ...], Redactor] | None = None


def default_redactor() -> Redactor:
    """The redactor for the current `ROTE_*` environment (built on first use, rebuilt when it changes)."""
    global _current
    env = os.environ
    signature = tuple(env.get(v) for v in _VARS)
    current = _current
    if current is not None and current[0] == signature:
        return current[1]
    with _lock:
        if _current is None or _current[0] != signature:
            _current = (signature, Redactor(RedactionConfig.from_env()))
        return _current[1]


@contextmanager
def no_new_key_unless_done() -> Iterator[None]:
    """A pseudonym key file this block creates is removed again (with the folders made for it) when the
    block raises: a run refused for bad input leaves nothing behind, though redacting its refused rows made
    the key (a new user found `.rote/pseudonym.key` after a refusal). The cached redactor, which holds that
    key, is dropped with it, so the next key is the one a later run writes and keeps."""
    global _current
    config = RedactionConfig.from_env()
    if config.pseudonym_key:
        yield
        return
    path = config.key_path
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    had_key = path.exists()
    try:
        yield
    except BaseException:
        if not had_key and path in CREATED_KEY_FILES:  # written by this process, in this block
            CREATED_KEY_FILES.discard(path)
            path.unlink(missing_ok=True)
            for d in missing:  # deepest first
                with suppress(OSError):  # not empty: something else is in it now
                    d.rmdir()
            with _lock:
                _current = None
        raise


def redact_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """`default_redactor().redact_payload(payload)`: a redacted copy of an unvalidated action dict."""
    return default_redactor().redact_payload(payload)


def redact_action(action: T) -> T:
    """`default_redactor().redact_action(action)`: the action itself, or a redacted copy."""
    return default_redactor().redact_action(action)


def redact_bytes(raw: bytes) -> bytes:
    """A rejected event's bytes, redacted for the dead-letter topic.

    Dead letters keep what arrived so it can be inspected and replayed, but what arrived may hold what a
    person typed. A JSON object is redacted field-aware (`redact_payload`: a password field's value is
    known as one) and re-serialised; anything else (broken JSON, CSV lines, binary) is redacted as text,
    with undecodable bytes carried through unchanged (surrogate escapes), so only identifiers change.
    """
    import json

    text = raw.decode("utf-8", "surrogateescape")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        redactor = default_redactor()
        if data.get("kind") == "user-action-batch" and isinstance(data.get("actions"), list):
            data["actions"] = [
                redactor.redact_payload(a) if isinstance(a, dict) else a for a in data["actions"]
            ]
        else:
            data = redactor.redact_payload(data)
        return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogateescape")
    return default_redactor().redact_text(text).encode("utf-8", "surrogateescape")
