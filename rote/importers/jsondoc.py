"""JSON exports that are not rote's own events: a JSON array of records, nested objects, foreign field names.

Browser extensions and trackers export a pretty-printed JSON array of records with their own nesting
(``{"ts": 1550768400000, "event": {"type": "click", "element": {"label": "OK"}}}``). Such a record is
flattened into one row whose columns are dotted paths (``event.type``, ``event.element.label``), and from
there it is a delimited log: the same column names are recognised, and the same flags
(``--time-col ts --action-cols event.type,event.element.label``) say which column is which.

The array is read record by record with the line each record starts on, so an error names its line, a
broken record costs only itself (reading resumes at the next record that starts a line), and a file cut
short keeps every record before the cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from rote.errors import ImportFormatError
from rote.importers.formats import resolve_columns
from rote.importers.options import CsvOptions, Format, max_event_bytes
from rote.importers.rows import RAW_KEEP_BYTES, Row, bounded_lines, capped, mapped_row, too_large
from rote.importers.sniff import UNDECODABLE, has_undecodable, open_text
from rote.importers.stats import ImportStats

#: Largest JSON array read (characters): an array is parsed in memory, JSON lines stream.
MAX_ARRAY_CHARS = 256 * 2**20

#: Records looked at before deciding how a file is read (rote's own events or mapped columns) and which
#: columns it has: the union of their keys is the header the column flags and names are matched against.
LOOKAHEAD = 1000

#: The keys of rote's own events that foreign records do not have (an object with one is read as an event).
EVENT_KEYS = ("timestamp", "action_type")

#: Where reading resumes after a broken record: the next `{` that begins a line.
_NEXT_RECORD = re.compile(r"\n[ \t]*\{")
_DECODER = json.JSONDecoder()
#: a record read: the line it starts on, the object, its text
_Object = tuple[int, dict[str, Any], str]
_SPACE = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True)
class Broken:
    """A stretch of the array that is not a JSON value: its first line, why, and its text."""

    line: int
    reason: str
    text: str


def iter_array(text: str) -> Iterator[tuple[int, Any | Broken]]:
    """(line, record) for each element of the JSON array `text`, or (line, `Broken`) for a stretch that
    does not parse (then reading resumes at the next record starting a line). `text` starts with `[`."""
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "[":
        yield 1, Broken(1, "not a JSON array (rote reads JSON lines, or one array of records)", text[:200])
        return
    pos += 1
    line, counted = 1 + text.count("\n", 0, pos), pos

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    n = len(text)
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            yield line_at(pos), Broken(line_at(pos), "the array is cut short (no closing ])", "")
            return
        if text[pos] == "]":
            return
        if text[pos] == ",":
            pos += 1
            continue
        start = line_at(pos)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            m = _NEXT_RECORD.search(text, pos + 1)
            end = m.start() + 1 if m else n
            why = f"not JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            yield start, Broken(start, why, text[pos:end].rstrip(", \t\r\n"))
            pos = end
            if m is None:
                return
            continue
        yield start, value
        pos = end


#: Nesting followed into dotted columns; deeper objects stay JSON text in their column.
MAX_DEPTH = 32


def flatten(obj: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, str]:
    """A nested record as one row of text cells, keyed by dotted path (lists, and objects nested deeper
    than `MAX_DEPTH`, stay JSON text)."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            out.update(flatten(value, f"{name}.", depth + 1))
        elif value is None or value == {}:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | float):
            out[name] = repr(value)
        else:
            try:
                out[name] = json.dumps(value, ensure_ascii=False)
            except RecursionError:  # what the parser took at the edge of the stack, the encoder may not
                out[name] = "<nested too deeply>"
    return out


def is_event(obj: Any) -> bool:
    """Whether `obj` is meant as one of rote's own events (`UserAction`): it has one of the keys that
    define one. Even an invalid one is judged as an event (and dead-lettered alone with the schema's
    reason), not taken as a sign that the whole file is some other tool's export."""
    return isinstance(obj, dict) and any(k in obj for k in EVENT_KEYS)


def _jsonl_objects(path: Path, encoding: str, stats: ImportStats) -> Iterator[Row | _Object]:
    """Each line's object (with the line and its text), or the row that says why a line is not one."""
    cap = max_event_bytes()
    oversized: dict[int, tuple[int, str]] = {}
    with open_text(path, encoding) as handle:
        for line, text in enumerate(bounded_lines(handle, cap, oversized), start=1):
            if line in oversized:
                stats.rows += 1
                size, head = oversized[line]
                yield Row(
                    line=line,
                    error=too_large(line, size, cap),
                    kind="too large",
                    raw=head.encode("utf-8", UNDECODABLE)[:RAW_KEEP_BYTES],
                    raw_size=size,
                )
                continue
            if not text.strip():
                continue  # a blank line is not an event
            stats.rows += 1
            body = text.rstrip("\r\n")
            if len(body) > cap:
                data, size = capped(body)
                yield Row(
                    line=line, error=too_large(line, size, cap), kind="too large", raw=data, raw_size=size
                )
                continue
            error = kind = None
            obj: Any = None
            if has_undecodable(body):
                shown = encoding.removesuffix("-sig")
                error, kind = f"line {line}: not valid {shown} text (pass --encoding)", "encoding"
            else:
                try:
                    obj = json.loads(body)
                except json.JSONDecodeError as exc:
                    error, kind = f"line {line}: not JSON ({exc.msg} at column {exc.colno})", "not JSON"
                except RecursionError:
                    error, kind = f"line {line}: JSON nested too deeply", "not JSON"
            if error is None and not isinstance(obj, dict):
                shown = "null" if obj is None else f"a JSON {type(obj).__name__}"
                error, kind = f"line {line}: {shown}, not an event object", "not an object"
            if error is not None:
                data, size = capped(body)
                shown_raw = data.decode("utf-8", "replace")
                yield Row(
                    line=line, payload={"raw": shown_raw}, error=error, kind=kind, raw=data, raw_size=size
                )
                continue
            yield line, obj, body


def _array_objects(path: Path, encoding: str, stats: ImportStats) -> Iterator[Row | _Object]:
    """Each record of a JSON array file (with its first line and its text), or the row that says why a
    stretch of it is not one. The file is read whole: a JSON array has no line structure to stream by."""
    cap = max_event_bytes()
    with open_text(path, encoding) as handle:
        text = handle.read(MAX_ARRAY_CHARS + 1)
    if len(text) > MAX_ARRAY_CHARS:
        raise ImportFormatError(
            f"{path.name}: a JSON array over {MAX_ARRAY_CHARS // 2**20} MB is not read into memory; as JSON "
            f"lines it streams: jq -c '.[]' {path.name} > {path.stem}.jsonl"
        )
    for line, rec in iter_array(text):
        stats.rows += 1
        if isinstance(rec, Broken):
            data, size = capped(rec.text)
            yield Row(
                line=line,
                payload={"raw": data.decode("utf-8", "replace")},
                error=f"line {line}: {rec.reason}",
                kind="not JSON",
                raw=data,
                raw_size=size,
            )
            continue
        try:
            body = json.dumps(rec, ensure_ascii=False)
        except RecursionError:
            yield Row(line=line, error=f"line {line}: JSON nested too deeply", kind="not JSON", payload={})
            continue
        if len(body) > cap:
            data, size = capped(body)
            yield Row(line=line, error=too_large(line, size, cap), kind="too large", raw=data, raw_size=size)
        elif not isinstance(rec, dict):
            shown = "null" if rec is None else f"a JSON {type(rec).__name__}"
            data, size = capped(body)
            yield Row(
                line=line,
                payload={"raw": body[:RAW_KEEP_BYTES]},
                error=f"line {line}: {shown}, not an event object",
                kind="not an object",
                raw=data,
                raw_size=size,
            )
        else:
            yield line, rec, body


def _own_event(line: int, obj: dict[str, Any], body: str, source: str) -> Row:
    """One of rote's own events, taken as it is (a `labels` object is kept aside)."""
    raw_labels = obj.pop("labels", None)
    labels = {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
    obj.setdefault("source", source)
    user = obj.get("user_id") if isinstance(obj.get("user_id"), str) and obj.get("user_id") else None
    row = Row(line=line, payload=obj, labels=labels, user=user, own_event=True)
    row.raw, row.raw_size = capped(body)
    return row


def read_json(
    path: Path, fmt: Format, options: CsvOptions | None, encoding: str, stats: ImportStats
) -> Iterator[Row]:
    """JSON lines (`jsonl`) or a JSON array (`json`): rote's own events are read as they are; other
    records are flattened (`flatten`) and mapped by their columns, as a delimited log's rows are.

    Which of the two is decided once per file, from its first `LOOKAHEAD` records: rote's own events if
    any of them has `timestamp` or `action_type` and no column flag was given; columns otherwise (the
    flags, `--time-col ts --action-cols event.type`, name dotted paths).
    """
    read = _jsonl_objects if fmt == "jsonl" else _array_objects
    source = read(path, encoding, stats)
    ahead: list[Row | _Object] = []
    for item in source:
        ahead.append(item)
        if len(ahead) >= LOOKAHEAD:
            break
    records = chain(ahead, source)
    objects = [item[1] for item in ahead if isinstance(item, tuple)]
    if not _mapping_asked(options) and (not objects or any(is_event(o) for o in objects)):
        for item in records:
            yield item if isinstance(item, Row) else _own_event(*item, source=fmt)
        return
    header: dict[str, None] = {}
    for obj in objects:
        header.update(dict.fromkeys(flatten(obj)))
    cols = resolve_columns("csv", list(header), options, path.name)
    cap = max_event_bytes()
    for item in records:
        if isinstance(item, Row):
            yield item
        else:
            line, obj, _ = item
            yield mapped_row(line, flatten(obj), cols, fmt, cap)


def _mapping_asked(options: CsvOptions | None) -> bool:
    """Whether a flag names a column: then the records are mapped, whatever their keys."""
    if options is None:
        return False
    return bool(
        options.time_col or options.action_cols or options.app_col or options.value_col or options.id_col
    )
