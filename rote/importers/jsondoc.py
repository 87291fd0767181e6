"""JSON exports that are not rote's own events: a JSON array of records, nested objects, foreign field names.

Browser extensions and trackers export a pretty-printed JSON array of records with their own nesting
(``{"ts": 1550768400000, "event": {"type": "click", "element": {"label": "OK"}}}``). Such a record is
flattened into one row whose columns are dotted paths (``event.type``, ``event.element.label``), and from
there it is a delimited log: the same column names are recognised, and the same flags
(``--time-col ts --action-cols event.type,event.element.label``) say which column is which.

The array is read record by record with the line each record starts on, so an error names its line, a
broken record costs only itself (reading resumes at the next record: a `{` that begins a line or follows
`},`), and a file cut short keeps every record before the cut.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from rote.errors import ImportFormatError
from rote.importers.formats import record_id_for, resolve_columns
from rote.importers.options import CsvOptions, Format, max_event_bytes
from rote.importers.rows import (
    RAW_KEEP_BYTES,
    UNDECODED_HINT,
    Row,
    bounded_lines,
    capped,
    mapped_row,
    too_large,
)
from rote.importers.sniff import UNDECODABLE, has_undecodable, open_text
from rote.importers.stats import ImportStats

#: Largest JSON array read (characters): an array is parsed in memory, JSON lines stream.
MAX_ARRAY_CHARS = 256 * 2**20

#: Records looked at before deciding how a file is read (rote's own events or mapped columns) and which
#: columns it has: the union of their keys is the header the column flags and names are matched against.
LOOKAHEAD = 1000

#: The keys of rote's own events that foreign records do not have (an object with one is read as an event).
EVENT_KEYS = ("timestamp", "action_type")

#: Where reading resumes after a broken record: the next `{` that begins a line (a pretty-printed export)
#: or follows `},` (a minified one).
_NEXT_RECORD = re.compile(r"(?:\n[ \t]*|\}[ \t\r\n]*,[ \t\r\n]*)(?=\{)")
_DECODER = json.JSONDecoder()
#: a record read: the line it starts on, the object, its text, its place in the file (for its event id)
_Object = tuple[int, dict[str, Any], str, int]
_SPACE = re.compile(r"[ \t\r\n]*")
#: Parsing work allowed per character of the file before the rest is given up as broken: a broken record
#: is re-read from the next record start, and hostile nesting (`{"a":[` a thousand times) made every
#: attempt run to the end of the file (a 4 MB file took 41 s).
_PARSE_BUDGET = 8
_PARSE_FLOOR = 2**20


@dataclass(frozen=True)
class Broken:
    """A stretch of the array that is not a JSON value: its first line, why, and its text."""

    line: int
    reason: str
    text: str


def iter_array(text: str) -> Iterator[tuple[int, Any | Broken]]:
    """(line, record) for each element of the JSON array `text`, or (line, `Broken`) for a stretch that
    does not parse (then reading resumes at the next record start: a `{` beginning a line or after `},`).
    Nothing is skipped unreported: text after the closing `]` is a `Broken` stretch too (a stray `]`, a
    second array appended), and so is the rest of a file whose broken records cost more parsing than
    `_PARSE_BUDGET` times its size."""
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "[":
        yield 1, Broken(1, "not a JSON array (rote reads JSON lines, or one array of records)", text[:200])
        return
    pos += 1
    line, counted = 1 + text.count("\n", 0, pos), pos

    def line_at(p: int) -> int:
        nonlocal line, counted
        if p > counted:
            line += text.count("\n", counted, p)
            counted = p
        return line

    n = len(text)
    budget = _PARSE_BUDGET * n + _PARSE_FLOOR

    def resume(after: int, first: int, why: str) -> Iterator[tuple[int, Broken]]:
        """The broken stretch from `first` to the next record start after `after` (or the end)."""
        nonlocal pos
        m = _NEXT_RECORD.search(text, after)
        end = m.end() if m else n
        at = line_at(first)
        yield at, Broken(at, why, text[first:end].rstrip(", \t\r\n"))
        pos = end

    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            yield line_at(pos), Broken(line_at(pos), "the array is cut short (no closing ])", "")
            return
        if text[pos] == "]":
            rest = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
            if rest >= n:
                return
            yield from resume(pos + 1, pos, "text after the array's closing ]")
            if pos >= n:
                return
            continue
        if text[pos] == ",":
            pos += 1
            continue
        if budget <= 0:
            yield from resume(n, pos, "not read: the broken records before it cost too much parsing")
            return
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, and integers over 4,300 digits
            # what the attempt read (a nesting too deep stops the parser at ~1,000 levels: charged flat)
            budget -= exc.pos - pos if isinstance(exc, json.JSONDecodeError) else 2**14
            if isinstance(exc, json.JSONDecodeError):
                # JSONDecodeError.msg leaves out where ("Invalid control character at"): say it
                why = f"not JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno})"
            elif isinstance(exc, RecursionError):
                why = "JSON nested too deeply"
            else:
                why = "not JSON (a number too long to read)"
            # the parser ran out of text inside this record, and no record starts after it: the file ends
            # here (a closing `]` of a nested list at the very end is not the array's)
            ran_out = isinstance(exc, json.JSONDecodeError) and exc.pos >= len(text.rstrip())
            unclosed = not text.rstrip().endswith("]")
            if (ran_out or unclosed) and _NEXT_RECORD.search(text, pos + 1) is None:
                why = f"the array is cut short inside this record ({why})"
            yield from resume(pos + 1, pos, why)
            if pos >= n:
                return  # the broken record ran to the end: the cut is already reported with it
            continue
        budget -= end - pos
        yield line_at(pos), value
        pos = end


#: Nesting followed into dotted columns; deeper objects stay JSON text in their column.
MAX_DEPTH = 32


class TooLarge(Exception):
    """A record whose flattened row passes the per-event cap (long keys repeat in every path below them)."""


def flatten(
    obj: dict[str, Any], prefix: str = "", depth: int = 0, budget: int | None = None
) -> dict[str, str]:
    """A nested record as one row of text cells, keyed by dotted path (lists, and objects nested deeper
    than `MAX_DEPTH`, stay JSON text). With `budget`, a row whose keys and cells pass that many characters
    raises `TooLarge` as soon as it does: 31 nested 4,000-character keys over 3,000 leaves made a 156 KB
    record a 1.5 GB row."""
    out: dict[str, str] = {}
    left = [budget if budget is not None else -1]
    _flatten_into(out, obj, prefix, depth, left)
    return out


def _flatten_into(out: dict[str, str], obj: dict[str, Any], prefix: str, depth: int, left: list[int]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            _flatten_into(out, value, f"{name}.", depth + 1, left)
            continue
        if value is None or value == {}:
            cell = ""
        elif isinstance(value, bool):
            cell = "true" if value else "false"
        elif isinstance(value, str):
            cell = value
        elif isinstance(value, int | float):
            cell = repr(value)
        else:
            try:
                cell = json.dumps(value, ensure_ascii=False)
            except RecursionError:  # what the parser took at the edge of the stack, the encoder may not
                cell = "<nested too deeply>"
        out[name] = cell
        if left[0] >= 0:
            left[0] -= len(name) + len(cell)
            if left[0] < 0:
                raise TooLarge(name[:80])


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
                error, kind = f"line {line}: not valid {shown} text {UNDECODED_HINT}", "encoding"
            else:
                try:
                    obj = json.loads(body)
                except json.JSONDecodeError as exc:
                    error, kind = f"line {line}: not JSON ({exc.msg} at column {exc.colno})", "not JSON"
                except RecursionError:
                    error, kind = f"line {line}: JSON nested too deeply", "not JSON"
                except ValueError:  # an integer of more than 4,300 digits
                    error, kind = f"line {line}: not JSON (a number too long to read)", "not JSON"
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
            yield line, obj, body, line


def _array_objects(path: Path, encoding: str, stats: ImportStats) -> Iterator[Row | _Object]:
    """Each record of a JSON array file (with its first line and its text), or the row that says why a
    stretch of it is not one. The file is read whole: a JSON array has no line structure to stream by."""
    cap = max_event_bytes()
    parts: list[str] = []
    read = 0
    damaged: Exception | None = None
    with open_text(path, encoding) as handle:
        try:
            while read <= MAX_ARRAY_CHARS and (chunk := handle.read(2**16)):
                parts.append(chunk)
                read += len(chunk)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # what came before the damage is kept
            damaged = exc
    text = "".join(parts)
    if damaged is not None:
        stats.rows += 1
        line = 1 + text.count("\n")
        why = f"line {line}: the compressed file is cut short or damaged ({damaged}): the rest is lost"
        yield Row(line=line, error=why, kind="unreadable row", payload={})
    if len(text) > MAX_ARRAY_CHARS:
        raise ImportFormatError(
            f"{path.name}: a JSON array over {MAX_ARRAY_CHARS // 2**20} MB is not read into memory; as JSON "
            f"lines it streams: jq -c '.[]' {path.name} > {path.stem}.jsonl"
        )
    for index, (line, rec) in enumerate(iter_array(text), start=1):
        stats.rows += 1
        if isinstance(rec, Broken):
            if rec.reason.startswith("the array is cut short"):
                stats.cut_short = f"line {line}: the JSON array ends inside a record, with no closing ]"
            yield _text_row(line, rec.text, f"line {line}: {rec.reason}", "not JSON")
            continue
        try:
            body = json.dumps(rec, ensure_ascii=False)
        except RecursionError:
            yield Row(line=line, error=f"line {line}: JSON nested too deeply", kind="not JSON", payload={})
            continue
        if len(body) > cap:
            yield _too_large_record(line, body, cap)
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
            yield line, rec, body, index


def _too_large_record(line: int, body: str, cap: int) -> Row:
    """A record over the per-event cap: its dead letter keeps its size and the line, not its text (cut to
    64 KB it could not be parsed again for field-aware redaction, and a password in it would stay)."""
    size = len(body.encode("utf-8", UNDECODABLE))
    return Row(line=line, error=too_large(line, size, cap), kind="too large", raw=b"", raw_size=size)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unpaired(line: int, body: str) -> Row | None:
    """A record holding a lone surrogate (`"\\ud800"` is valid JSON, but not text any encoder writes)."""
    if _SURROGATE.search(body) is None:
        return None
    why = f"line {line}: not valid text (a lone surrogate such as \\ud800)"
    return _text_row(line, _SURROGATE.sub("\ufffd", body), why, "encoding")


def _text_row(line: int, text: str, why: str, kind: str) -> Row:
    """A stretch of the file that is not a record, kept as text for its dead letter."""
    data, size = capped(text)
    shown = {"raw": data.decode("utf-8", "replace")}
    return Row(line=line, payload=shown, error=why, kind=kind, raw=data, raw_size=size)


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
    cap = max_event_bytes()
    own = not _mapping_asked(options) and (not objects or any(is_event(o) for o in objects))
    if own and objects:
        try:
            stats.own_json_keys = list(flatten(objects[0], budget=cap))[:12]
        except TooLarge:
            stats.own_json_keys = []
    cols = None
    header: dict[str, None] = {}
    for obj in objects if not own else ():
        try:
            keys = flatten(obj, budget=cap)
        except TooLarge:
            continue
        header.update(dict.fromkeys(k for k in keys if k not in header and len(header) < MAX_COLUMNS))
    if header:
        cols = resolve_columns("csv", list(header), options, path.name)
    for item in records:
        if isinstance(item, Row):
            yield item
            continue
        line, obj, body, place = item
        if cols is None and not own:  # no record of the look-ahead could name the columns: this one does
            try:
                cols = resolve_columns("csv", list(flatten(obj, budget=cap)), options, path.name)
            except TooLarge:
                yield _too_large_record(line, body, cap)
                continue
        escaped = fmt == "jsonl" and _ESCAPED_SURROGATE.search(body) is not None
        bad = _unpaired(line, _dump(obj) if escaped else body)
        if bad is not None:
            yield bad
            continue
        if own or cols is None:
            row = _own_event(line, obj, body, source=fmt)
        else:
            try:
                row = mapped_row(line, flatten(obj, budget=cap), cols, fmt, cap)
            except TooLarge:
                row = _too_large_record(line, body, cap)
        if fmt == "json" and row.payload is not None and row.error is None:
            # records of a minified array share a line: the id is the record's place, not its line
            row.payload.setdefault("event_id", record_id_for(path, place))
        yield row


#: Distinct columns taken from the first records (a record with thousands of keys is not a log's header).
MAX_COLUMNS = 2000
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _dump(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False)
    except RecursionError:
        return ""


def _mapping_asked(options: CsvOptions | None) -> bool:
    """Whether a flag names a column: then the records are mapped, whatever their keys."""
    if options is None:
        return False
    return bool(
        options.time_col or options.action_cols or options.app_col or options.value_col or options.id_col
    )


def not_events_hint(stats: ImportStats) -> str:
    """Why a JSON file with no valid event may be another tool's export read as rote's own events."""
    keys = stats.own_json_keys
    if keys is None:
        return ""
    shown = ", ".join(keys) if keys else "?"
    time_key = next((k for k in keys if k in EVENT_KEYS), "timestamp")
    return (
        f"; its records were read as rote's own events (a record has `{time_key}`): if they are another "
        f"tool's export, name its columns, e.g. --time-col {time_key} --action-cols <key>[,<key>...] "
        f"(the first record has: {shown})"
    )


def document_hint(path: Path, encoding: str, limit: int = 256 << 20) -> str:
    """A JSON Lines file none of whose lines is JSON may be one pretty-printed document: name the member
    that holds its records (`{"exportVersion": 2, "events": [...]}`), and how to take them out."""
    try:
        if path.stat().st_size > limit:
            return ""
        with open_text(path, encoding) as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError, RecursionError, ImportFormatError):
        return ""
    if not isinstance(doc, dict):
        return ""
    lists = [
        (k, len(v))
        for k, v in doc.items()
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    ]
    if not lists:
        return ""
    key, n = max(lists, key=lambda kv: kv[1])
    return (
        f"; the file is one JSON object, not JSON lines: its {n} records are under {json.dumps(key)}; take "
        f"them out with: jq -c '.[{json.dumps(key)}][]' {path.name} > records.jsonl"
    )
