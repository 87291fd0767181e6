"""What happened to every row of an imported file: kept, dead-lettered (and why), or skipped (and why).

No row disappears silently: each one is counted here under a short closed kind, with the first line of
each kind and its full reason, so a person sees "98 rows: timestamp outside the plausible window (first:
line 12 ...)" instead of a smaller number of events than they expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: How many lines after the first of each kind are named.
ALSO_LINES = 5
_LINE = re.compile(r"line (\d+)")

#: Closed set of reasons a row is invalid (the dead-letter metric's and the summary's categories).
INVALID_KINDS = (
    "columns",
    "unreadable row",
    "encoding",
    "too large",
    "not JSON",
    "not an object",
    "missing value",
    "bad timestamp",
    "implausible time",
    "bad value",
    "invalid event",
    "broken XML",
)


def kind_of(cause: str) -> str:
    """The closed kind of a mapper's `ValueError` text."""
    text = cause.lower()
    if "timestamp" in text:
        return "bad timestamp"
    if text.endswith(("is empty", "is missing")) or "is missing (" in text:
        return "missing value"
    return "bad value"


@dataclass
class ImportStats:
    """Counts of one import; `describe()` is what a command prints, `to_dict()` what `--json` shows."""

    path: str = ""
    format: str = ""
    encoding: str | None = None
    delimiter: str | None = None
    rows: int = 0
    valid: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    #: valid rows that repeat an earlier one's user, event id and time (an export written twice, with
    #: `--id-col`): sent, and taken once by discovery (its de-duplication), so a reader reconciles "actions
    #: in" with what was learnt
    repeated_ids: int = 0
    #: CSV rows with a quote that opens a cell and never closes, read as plain text (the quote kept): a
    #: reader takes every row after such a quote into that one cell, up to the next quote in the file
    stray_quotes: int = 0
    #: where the file looks cut off (it ends inside a quoted cell, or in a row short of cells without a line
    #: break): its last row may be incomplete; None when it ends whole
    cut_short: str | None = None

    #: JSON records read as rote's own events (they have `timestamp` or `action_type`, no column flag was
    #: given): the keys of the first one, for the hint when none of them is a valid event
    own_json_keys: list[str] | None = None

    #: the lines of the next few rows of each kind after the first (a person fixing the export wants to
    #: find them without decoding dead letters)
    also: dict[str, list[int]] = field(default_factory=dict)

    def add_invalid(self, kind: str, reason: str) -> None:
        self.invalid[kind] = self.invalid.get(kind, 0) + 1
        self._note(kind, reason)

    def add_skipped(self, kind: str, reason: str) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        self._note(kind, reason)

    def _note(self, kind: str, reason: str) -> None:
        if kind not in self.first:
            self.first[kind] = reason
            return
        m = _LINE.match(reason)
        lines = self.also.setdefault(kind, [])
        if m is not None and len(lines) < ALSO_LINES:
            lines.append(int(m.group(1)))

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> list[str]:
        """One line per kind of invalid or skipped row, largest first, with its first occurrence."""
        out = []
        for label, counts in (("invalid", self.invalid), ("skipped", self.skipped)):
            for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                line = f"{n} {'row' if n == 1 else 'rows'} {label} ({kind}); first: {self.first[kind]}"
                also = self.also.get(kind)
                if also:
                    more = ", ".join(map(str, also)) + (", …" if n > len(also) + 1 else "")
                    line += f"; also line{'s' if n > 2 else ''} {more}"
                out.append(line)
        if self.stray_quotes:
            n = self.stray_quotes
            out.append(
                f"{n} {'row' if n == 1 else 'rows'} with a quote that never closes, read as plain text "
                f"(quote kept); first: {self.first.get('stray quote', '?')}"
            )
        if self.cut_short:
            out.append(f"the file looks cut short ({self.cut_short}): its last row may be incomplete")
        return out

    def headline(self) -> str:
        """One line: how many rows were read and what became of them."""
        parts = [f"{self.valid} valid"]
        if self.invalid_total:
            parts.append(f"{self.invalid_total} invalid (dead-lettered)")
        if self.skipped_total:
            parts.append(f"{self.skipped_total} skipped")
        dialect = self.format
        if self.delimiter is not None:
            shown = {"\t": "tab", " ": "space"}.get(self.delimiter, self.delimiter)
            dialect += f", '{shown}'-separated"
        if self.encoding:
            dialect += f", {self.encoding}"
        return f"{self.rows} rows read ({dialect}): " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "rows": self.rows,
            "valid": self.valid,
            "invalid": dict(self.invalid),
            "skipped": dict(self.skipped),
            "first": dict(self.first),
            "also": {k: list(v) for k, v in self.also.items()},
            "repeated_ids": self.repeated_ids,
            "stray_quotes": self.stray_quotes,
            "cut_short": self.cut_short,
        }
