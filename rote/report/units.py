"""Numbers and text for people: durations, hours, money, percentages and counts in the units a reader
expects, and text from logs made safe to show (`visible`).

Every view (the run summary, `rote report`, the HTML page, `rote automations`) formats through these, so the
same quantity reads the same everywhere and no raw float such as ``4182.164539020656`` reaches a person.
"""

from __future__ import annotations

import math


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``4.2 s``, ``12 s``, ``3 min 05 s``, ``1 h 09 min``, ``3 d 4 h``."""
    s = _finite(seconds)
    if s is None:
        return "–"
    sign = "−" if s < 0 else ""
    s = abs(s)
    if s >= 86400:
        return f"{sign}{int(s // 86400)} d {int(s % 86400 // 3600)} h"
    if s >= 3600:
        return f"{sign}{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    if s >= 60:
        return f"{sign}{int(s // 60)} min {int(s % 60):02d} s"
    if s >= 10:
        return f"{sign}{s:.0f} s"
    if s >= 1:
        return f"{sign}{s:.1f} s"
    if s == 0:
        return "0 s"
    return f"{sign}{s:.2f} s" if s >= 0.01 else f"{sign}{s * 1000:.1f} ms"


def hours(h: float | None) -> str:
    """``175 h``, ``3.5 h``, ``0.25 h``."""
    x = _finite(h)
    if x is None:
        return "–"
    if x == 0:
        return "0 h"
    if abs(x) >= 100:
        return f"{x:,.0f} h"
    if abs(x) >= 10:
        return f"{x:.0f} h"
    return f"{x:.1f} h" if abs(x) >= 1 else f"{x:.2f} h"


def money(v: float | None, currency: str) -> str:
    """``57.87 USD``, ``1,234 USD``, ``−42.10 USD``."""
    x = _finite(v)
    if x is None:
        return "–"
    sign = "−" if x < 0 else ""
    x = abs(x)
    body = f"{x:,.0f}" if x >= 1000 else f"{x:,.2f}"
    return f"{sign}{body} {currency}".strip()


def percent(ratio: float | None, *, signed: bool = False) -> str:
    """A ratio as a percentage: ``87 %``, ``+12 %``, ``−86 %``."""
    x = _finite(ratio)
    if x is None:
        return "–"
    value = x * 100
    text = f"{abs(value):,.0f} %"
    if value < 0 and round(abs(value)) != 0:
        return "−" + text
    return ("+" + text) if signed and round(value) > 0 else text


def count(n: int | float | None) -> str:
    """``2,409``."""
    if n is None:
        return "–"
    return f"{int(n):,}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{count(n)} {word if n == 1 else (words or word + 's')}"


#: Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts escape sequences that
#: set the window title or clear the screen) and the bidirectional overrides that reorder what is shown.
_INVISIBLE = {
    **{c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]},
    **{c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]},
}


def visible(text: str) -> str:
    """`text` with what a terminal would act on written out (`\\x1b`): names, reasons and generated
    sources come from users' logs and topics, and an escape sequence in them reached the terminal (an
    attacker's sweep). Line breaks and tabs stay."""
    return text.translate(_INVISIBLE)
