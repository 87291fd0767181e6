"""Signed test verdicts: the registry trusts a `TestResult` only if the sandbox runner signed it.

Anyone who can write to `test-results` could otherwise publish `passed: true` for an automation that never
ran (issue 11). The runner signs every result with HMAC-SHA256 under a key it shares with the registry; the
registry verifies before it lets a result change anything. The ACL that lets only the runner's principal
write the topic is the other half; either one alone still stops a forged verdict.

What is signed: every field of the result except `signature`, as canonical JSON (the model's JSON form,
keys sorted, no whitespace, ASCII with JSON escapes, fields that are None left out), prefixed with a
domain tag naming the schema and its version, so a signature over some other kind of message can never
pass for a result's.
Leaving None out is what keeps additive schema changes compatible: a runner that knows a newer optional
field and leaves it unset signs the same bytes an older registry computes; one that sets it is rejected
by a registry that cannot see it, which is the safe way round. Absent and None mean the same to the model,
so nothing can be smuggled through the difference.

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

from rote.errors import ConfigError
from rote.streams.schemas import TestResult

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_KEY_BYTES",
    "canonical_bytes",
    "ephemeral_result_key",
    "result_key_from_env",
    "sign_result",
    "verify_result",
]

KEY_ENV = "ROTE_RESULT_KEY"
KEY_FILE_ENV = "ROTE_RESULT_KEY_FILE"
#: A shorter key is refused: HMAC-SHA256's security is bounded by the key's entropy.
MIN_KEY_BYTES = 32
_SCHEME = "hmac-sha256"


def canonical_bytes(result: TestResult) -> bytes:
    """The exact bytes that are signed: domain tag, newline, canonical JSON of all fields but `signature`."""
    body = result.model_dump(mode="json", exclude={"signature"}, exclude_none=True)
    # ASCII-only and no NaN/Infinity: the same bytes whatever the strings hold (lone surrogates included);
    # a result that cannot be encoded so is refused by `sign_result` and fails `verify_result`.
    doc = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"rote.TestResult.v{result.schema_version}\n".encode() + doc.encode("ascii")


def _mac(result: TestResult, key: bytes) -> str:
    return hmac.new(key, canonical_bytes(result), hashlib.sha256).hexdigest()


def sign_result(result: TestResult, key: bytes) -> TestResult:
    """A copy of `result` carrying its signature (`hmac-sha256:<hex>`); any earlier signature is replaced."""
    _check_key(key, "the result key")
    unsigned = result.model_copy(update={"signature": None})
    return unsigned.model_copy(update={"signature": f"{_SCHEME}:{_mac(unsigned, key)}"})


def verify_result(result: TestResult, key: bytes) -> bool:
    """True only if `result` carries a signature made with `key` over exactly its current fields.

    Unsigned, malformed, other-scheme, altered or wrongly keyed results are all False; the comparison takes
    the same time wherever the signature differs.
    """
    sig = result.signature
    if not sig or not key:
        return False
    scheme, _, digest = sig.partition(":")
    if scheme != _SCHEME or len(digest) != 64:
        return False
    try:
        expected = _mac(result, key)
    except ValueError:  # a float JSON cannot carry (inf): nothing the runner signs
        return False
    return hmac.compare_digest(digest.encode("ascii", "replace"), expected.encode("ascii"))


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
