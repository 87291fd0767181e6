"""Making a payload's output safe to show on a terminal.

`rote sandbox run` prints what the jailed script wrote. Copied raw to a terminal, that output drives the
terminal: OSC 52 writes the clipboard, OSC 0 sets the window title, CSI sequences move the cursor and erase
lines (forging or hiding the runner's own status line), SGR 8 conceals text, and some terminals answer
queries by typing into their input. So before anything the payload wrote reaches a terminal, every control
character except newline and tab is replaced by a visible escape (`\\x1b`, `\\r`, `\\u202e`): C0, DEL, the
C1 range (0x80-0x9f, which some terminals take as 8-bit CSI/OSC), and Unicode's bidirectional overrides
and isolates, which reorder what the eye reads ("Trojan Source"). Invalid UTF-8 is shown as `\\xNN`.
"""

from __future__ import annotations

__all__ = ["neutralise"]

_BIDI = frozenset(
    [0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069]
)


def _visible(ch: str) -> str:
    code = ord(ch)
    if ch == "\r":
        return "\\r"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _unsafe(code: int) -> bool:
    return (code < 0x20 and code not in (0x0A, 0x09)) or 0x7F <= code <= 0x9F or code in _BIDI


def neutralise(data: bytes) -> str:
    """`data` as text a terminal only displays: nothing in it can act on the terminal."""
    text = data.decode("utf-8", errors="backslashreplace")
    if not any(_unsafe(ord(ch)) for ch in text):
        return text
    return "".join(_visible(ch) if _unsafe(ord(ch)) else ch for ch in text)
