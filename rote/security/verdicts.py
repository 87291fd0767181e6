"""Signed events: what the registry and the executor trust comes from a holder of the key.

Anyone who can write to a topic could otherwise
- publish `passed: true` for an automation that never ran (issue 11): the sandbox runner signs every
  `TestResult`, the registry and the executor verify it;
- publish an automation of their own making (a program that reads a private file and submits it to a host
  of theirs, with test cases it passes): the sandbox would test it, sign `passed`, and the executor would
  run it. So the generator signs every `Automation` it renders, and the sandbox tests, the registry
  counts and the executor runs only automations that verify;
- publish a candidate of their own making, which rote's own generator would render into such a program:
  the task identifier signs every `Candidate`, and the generator renders only candidates that verify;
- publish runs that never happened (three failures degrade an automation, one success re-enables it, a
  run id claimed first is never run): the sandbox runner and the executor sign every `RunMetric`, and the
  registry, the executor, the performance monitor and the report count only runs that verify.
Each is HMAC-SHA256 under one key the workers and the sandbox runners share (they hold it already for the
verdicts). The ACLs that let only each agent's principal write its topic are the other half; either one
alone stops the forgeries above.

What is signed: every field of the event except `signature` (an automation's lifecycle `state` too: the
report reads it, so the registry signs each lifecycle echo anew; the executor still takes the state from
the signed verdicts, never from that field), as canonical JSON (the model's JSON form, keys sorted, no
whitespace, ASCII with JSON escapes, fields that are None left out), prefixed with a domain tag naming
the schema and its version (`rote.TestResult.v1`), so a signature over one kind of message can never pass
for another's. Leaving None out is what keeps additive schema changes compatible: a signer that knows a
newer optional field (defaulting to None) and leaves it unset signs the same bytes an older verifier
computes; one that sets it is rejected by a verifier that cannot see it, which is the safe way round.
Absent and None mean the same to the model, so nothing can be smuggled through the difference.

The key comes from `ROTE_RESULT_KEY` (the key itself, at least 32 characters) or `ROTE_RESULT_KEY_FILE`
(a file holding it, e.g. a mounted secret; not writable by group or others). `rote run`, where runner and
registry live in one process, generates one ephemeral key per run (`ephemeral_result_key`) and hands it to
both; nothing else ever sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from rote.errors import ConfigError
from rote.streams.schemas import Automation, Candidate, RunMetric, TestResult

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_KEY_BYTES",
    "SIGNED",
    "canonical_bytes",
    "ephemeral_result_key",
    "result_key_from_env",
    "sign",
    "sign_result",
    "verify",
    "verify_result",
    "why_not",
]

KEY_ENV = "ROTE_RESULT_KEY"
KEY_FILE_ENV = "ROTE_RESULT_KEY_FILE"
#: A shorter key is refused: HMAC-SHA256's security is bounded by the key's entropy.
MIN_KEY_BYTES = 32
_SCHEME = "hmac-sha256"


#: The kinds of event that carry a signature, and the fields each signature leaves out.
SIGNED: dict[type[Any], frozenset[str]] = {
    TestResult: frozenset({"signature"}),
    # the lifecycle too: the report and the tracker read `state`; the registry re-signs its echoes
    Automation: frozenset({"signature"}),
    Candidate: frozenset({"signature"}),
    RunMetric: frozenset({"signature"}),
}

Signed = TypeVar("Signed", TestResult, Automation, Candidate, RunMetric)


def canonical_bytes(event: TestResult | Automation | Candidate | RunMetric) -> bytes:
    """The exact bytes that are signed: domain tag, newline, canonical JSON of the signed fields."""
    body = event.model_dump(mode="json", exclude=set(SIGNED[type(event)]), exclude_none=True)
    # ASCII-only and no NaN/Infinity: the same bytes whatever the strings hold (lone surrogates included);
    # an event that cannot be encoded so is refused by `sign` and fails `verify`.
    doc = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"rote.{type(event).__name__}.v{event.schema_version}\n".encode() + doc.encode("ascii")


def _mac(event: TestResult | Automation | Candidate | RunMetric, key: bytes) -> str:
    return hmac.new(key, canonical_bytes(event), hashlib.sha256).hexdigest()


def sign(event: Signed, key: bytes) -> Signed:
    """A copy of `event` carrying its signature (`hmac-sha256:<hex>`); any earlier signature is replaced."""
    _check_key(key, "the result key")
    unsigned = event.model_copy(update={"signature": None})
    return unsigned.model_copy(update={"signature": f"{_SCHEME}:{_mac(unsigned, key)}"})


def verify(event: TestResult | Automation | Candidate | RunMetric, key: bytes) -> bool:
    """True only if `event` carries a signature made with `key` over exactly its current signed fields.

    Unsigned, malformed, other-scheme, altered or wrongly keyed events are all False; the comparison takes
    the same time wherever the signature differs.
    """
    sig = event.signature
    if not sig or not key:
        return False
    scheme, _, digest = sig.partition(":")
    if scheme != _SCHEME or len(digest) != 64:
        return False
    try:
        expected = _mac(event, key)
    except ValueError:  # a float JSON cannot carry (inf): nothing a signer signs
        return False
    return hmac.compare_digest(digest.encode("ascii", "replace"), expected.encode("ascii"))


def why_not(event: TestResult | Automation | Candidate | RunMetric) -> str:
    """The one-line reason a dead letter gives for an event that does not verify."""
    kind = {
        TestResult: "test result",
        Automation: "automation",
        Candidate: "candidate",
        RunMetric: "run metric",
    }[type(event)]
    if not event.signature:
        return f"{kind} has no signature (not made by a holder of the key)"
    return f"{kind} signature does not verify (forged or altered)"


def sign_result(result: TestResult, key: bytes) -> TestResult:
    """`sign` for a test result (the sandbox runner's verdicts)."""
    return sign(result, key)


def verify_result(result: TestResult, key: bytes) -> bool:
    """`verify` for a test result."""
    return verify(result, key)


def ephemeral_result_key() -> bytes:
    """A fresh random key for one process's lifetime (`rote run`: runner and registry share it in memory)."""
    return secrets.token_bytes(MIN_KEY_BYTES)


def result_key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The shared result key from `ROTE_RESULT_KEY` or `ROTE_RESULT_KEY_FILE`; None if neither is set.

    Both set is an error (which one is meant?), as are a key shorter than `MIN_KEY_BYTES`, an unreadable
    file, and a file that group or others may write (anyone who can replace the key can forge verdicts).
    """
    env = os.environ if env is None else env
    raw = env.get(KEY_ENV)
    path = env.get(KEY_FILE_ENV)
    if raw is not None and path is not None:
        raise ConfigError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if raw is not None:
        key = raw.encode("utf-8")
        _check_key(key, KEY_ENV)
        return key
    if path is None:
        return None
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{KEY_FILE_ENV}={path} is not a regular file")
        if st.st_mode & 0o022:
            raise ConfigError(
                f"{KEY_FILE_ENV}={path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                "anyone who can replace the key can forge verdicts"
            )
        key = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{KEY_FILE_ENV}={path} cannot be read: {exc.strerror}") from None
    _check_key(key, f"{KEY_FILE_ENV}={path}")
    return key


def _check_key(key: bytes, where: str) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where} is {len(key)} bytes; a result key must be at least {MIN_KEY_BYTES}")
