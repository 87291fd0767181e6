"""What redacted text looks like: keyed pseudonyms `<kind:hex>` and fixed markers `<password>`.

Everything downstream that must treat redacted values specially (the generator, which must never turn them
into literals; the redactor itself, which must not redact its own output again when a payload passes the
producer, an importer and ingress) recognises them with the patterns here, so the format is defined once.

A pseudonym is HMAC-SHA256(key, kind NUL normalised value), the first `DIGEST_HEX` hex digits. 48 bits:
among a million distinct values of one kind, the chance that any two share a token is about 0.2%, and
without the key nobody can test a guessed value against a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: Hex digits of the HMAC kept in a token.
DIGEST_HEX = 12

#: Fixed markers: values that are dropped, not pseudonymised (no equality is kept for them).
PASSWORD_MARKER = "<password>"
SECRET_MARKER = "<secret>"
MARKERS: frozenset[str] = frozenset({PASSWORD_MARKER, SECRET_MARKER})

#: Token kinds the detectors emit (`<kind:hex>`); kept short because they end up inside values.
TOKEN_KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "card",
    "iban",
    "ssn",
    "nino",
    "cpf",
    "dni",
    "nie",
    "cf",
    "aadhaar",
    "sin",
    "nir",
    "ip",
    "mac",
)

_KIND_ALT = "|".join(TOKEN_KINDS)
#: A pseudonym or a marker anywhere in a text.
REDACTED_RE = re.compile(rf"<(?:(?:{_KIND_ALT}):[0-9a-f]{{{DIGEST_HEX}}}|password|secret)>")


def pseudonym(key: bytes, kind: str, normalised: str) -> str:
    """`<kind:hex>` for a normalised value: equal values give equal tokens under one key."""
    mac = hmac.new(key, f"{kind}\x00{normalised}".encode(), hashlib.sha256).hexdigest()
    return f"<{kind}:{mac[:DIGEST_HEX]}>"


def contains_redaction(text: str | None) -> bool:
    """True when `text` holds a pseudonym or a marker (the generator makes such values parameters)."""
    return text is not None and "<" in text and REDACTED_RE.search(text) is not None


def holds_marker(text: str | None) -> bool:
    """True when `text` holds a fixed marker. Two `<password>` values are not known to be equal (the marker
    keeps no equality), so nothing may be wired from one to the other: a generated login once typed the
    VPN password into the one-time passcode field because both had become `<password>`."""
    return text is not None and "<" in text and any(m in text for m in MARKERS)


def redacted_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` already holds tokens or markers: detectors leave these alone (idempotence)."""
    if "<" not in text:
        return []
    return [m.span() for m in REDACTED_RE.finditer(text)]
