"""Literal quoting per target language: the only way a value ever enters generated source.

Every value that reaches a template goes through one of these, so a value is always a complete string
literal of the target language and can never close the literal and continue as code. Each function
either returns a literal that denotes exactly the input or raises `QuotingError` when the language cannot
represent the value at all (Bash words cannot hold NUL); the generator then marks that step unsupported
for that language instead of emitting something subtly different.
"""

from __future__ import annotations

import ast
import unicodedata

from rote.errors import RoteError


class QuotingError(RoteError):
    """The value cannot be written as a literal of this language."""


def py_literal(value: str) -> str:
    """A Python string literal. `repr` escapes quotes, backslashes, control characters and lone
    surrogates, so the literal is one token on one line; the round trip is checked anyway."""
    lit = repr(str(value))
    if ast.literal_eval(lit) != value:  # pragma: no cover - repr guarantees this; kept as a tripwire
        raise QuotingError("python literal does not round-trip")
    return lit


def sh_quote(value: str) -> str:
    """A Bash single-quoted word: nothing inside single quotes is special except the quote itself,
    which is written as '\\'' (close, escaped quote, reopen). Newlines are fine inside quotes; NUL is not
    representable in any Bash string."""
    if "\x00" in value:
        raise QuotingError("bash cannot hold a NUL character in a string")
    return "'" + value.replace("'", "'\\''") + "'"


_AS_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _as_needs_char_id(ch: str) -> bool:
    if ch in _AS_ESCAPES:
        return False
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def as_string(value: str) -> str:
    """An AppleScript string expression. Printable text goes inside "..." with \\\\ and \\" escaped;
    \\n \\r \\t use AppleScript's escapes; any other control or invisible character is concatenated as
    (character id N), so the source stays printable and the literal can't be broken by what it holds."""
    parts: list[str] = []
    buf: list[str] = []
    for ch in value:
        if _as_needs_char_id(ch):
            if buf:
                parts.append('"' + "".join(buf) + '"')
                buf = []
            parts.append(f"(character id {ord(ch)})")
        else:
            buf.append(_AS_ESCAPES.get(ch, ch))
    if buf or not parts:
        parts.append('"' + "".join(buf) + '"')
    return parts[0] if len(parts) == 1 else "(" + " & ".join(parts) + ")"


def comment_text(value: str, *, limit: int = 120) -> str:
    """Text safe inside a one-line comment of any of the three languages (no line breaks, no control
    characters, no AppleScript block-comment delimiters)."""
    out = []
    for ch in value:
        cat = unicodedata.category(ch)
        out.append(" " if cat.startswith(("C", "Z")) and ch != " " else ch)
    text = "".join(out).replace("(*", "( *").replace("*)", "* )")
    return text if len(text) <= limit else text[: limit - 1] + "…"
