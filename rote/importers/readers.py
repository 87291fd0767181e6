"""Reading a log file into `ImportedRecord`s: every row is either a validated event or an error with its line.

Each row becomes an `ImportedRecord`. A row that cannot be an action (bad timestamp, wrong column count,
undecodable bytes, too large, outside the plausible time window, rejected by the event schema) becomes an
error record with the importer's own reason ("line 12: timestamp 2027-... is after the plausible window"),
which the pipeline dead-letters as it is, so a file with a few broken rows still replays and the broken rows
are visible instead of silently dropped. Rows that are not actions at all (blank lines, lifecycle ``start``
events) are skipped and counted. `ImportStats` holds the tally.

Event ids are a hash of the file name and line number: replaying the same file twice produces the same ids,
which makes the replay idempotent downstream (agents de-duplicate by event id). Records are sorted stably by
timestamp because loggers flush events out of order (the Action Logger writes a ``getCell`` after the
``copy`` it caused); ties keep file order.

The user of a row is the log's own user column (``userID``, ``org:resource`` ...). Loggers leave it empty on
OS-level events (the Action Logger's clipboard rows), so an empty cell means the user of the nearest earlier
row (the first user in the file for rows before any); `user_id` is used only for files without users.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rote.errors import ImportFormatError, ValidationError
from rote.importers.formats import (
    Columns,
    event_id_for,
    labels_from,
    map_row,
    parse_timestamp,
    resolve_columns,
    skip_reason,
    user_of,
)
from rote.importers.options import (
    ACTION_COLUMNS,
    FORMATS,
    INSTANCE_COLUMNS,
    TIME_COLUMNS,
    USER_COLUMNS,
    CsvOptions,
    Format,
    max_event_bytes,
)
from rote.importers.sniff import (
    UNDECODABLE,
    detect_format,
    has_undecodable,
    open_text,
    sniff,
    sniff_delimiter,
)
from rote.importers.stats import ImportStats, kind_of
from rote.importers.xes import XesError, iter_xes_rows
from rote.privacy import redact_payload
from rote.streams.schemas import UserAction, decode, implausible_time

#: How much of an invalid row a dead letter keeps (the rest is counted in `raw_size`).
RAW_KEEP_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class ImportedRecord:
    """One input row: the mapped event (validated unless `error`), its ground-truth labels, or why not.

    `raw` is the row as read (error records only, at most `RAW_KEEP_BYTES`; `raw_size` is its full size),
    kept for the dead letter. `kind` is the closed category of `error` (`stats.INVALID_KINDS`).
    """

    line: int
    payload: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    kind: str | None = None
    raw: bytes = b""
    raw_size: int = 0
    action: UserAction | None = None


@dataclass(kw_only=True)
class _Row:
    """A row as a reader saw it, before users are filled in and the event is validated."""

    line: int
    payload: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    error: str | None = None
    kind: str | None = None
    raw: bytes = b""
    raw_size: int = 0
    skipped: str | None = None


def _capped(text: str) -> tuple[bytes, int]:
    data = text.encode("utf-8", UNDECODABLE)  # a line's undecodable bytes as they were (`open_text`)
    return data[:RAW_KEEP_BYTES], len(data)


def _human_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} B"


def _too_large(line: int, size: int, cap: int) -> str:
    return (
        f"line {line}: {_human_bytes(size)}, over the {_human_bytes(cap)} per-event cap "
        "(ROTE_MAX_EVENT_BYTES)"
    )


def _bounded_lines(fh: IO[str], cap: int, oversized: dict[int, tuple[int, str]]) -> Iterator[str]:
    """The physical lines of `fh`; a line longer than `cap` is read past in chunks (memory stays bounded),
    recorded in `oversized` (line number -> its length and first `cap` characters) and replaced by an
    empty line."""
    number = 0
    while True:
        line = fh.readline(cap + 1)
        if not line:
            return
        number += 1
        if len(line) > cap and line[-1] not in "\r\n":
            size, head = len(line), line
            while True:
                more = fh.readline(1 << 20)
                size += len(more.rstrip("\r\n"))
                if len(head) < RAW_KEEP_BYTES:
                    head += more.rstrip("\r\n")[: RAW_KEEP_BYTES - len(head)]
                if not more or more[-1] in "\r\n":
                    break
            oversized[number] = (size, head)
            yield "\n"
            continue
        yield line


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


def _read_csv(
    path: Path, fmt: Format, options: CsvOptions | None, encoding: str, delimiter: str, stats: ImportStats
) -> Iterator[_Row]:
    cap = max_event_bytes()
    if csv.field_size_limit() < cap:
        csv.field_size_limit(cap)
    oversized: dict[int, tuple[int, str]] = {}
    with open_text(path, encoding) as handle:
        lines = _bounded_lines(handle, cap, oversized)
        reader = csv.reader(lines, delimiter=delimiter)
        header: list[str] = []
        try:
            for row in reader:
                if oversized:
                    first = min(oversized)
                    raise ImportFormatError(
                        f"{path.name}: line {first} is {_human_bytes(oversized[first][0])} without a line "
                        "break: not a log header"
                    )
                if row:
                    header = [c.strip().lstrip("\ufeff") for c in row]
                    break
        except csv.Error as exc:
            raise ImportFormatError(f"{path.name}: unreadable CSV header: {exc}") from None
        if not header:
            raise ImportFormatError(f"{path.name} has no header line")
        if any(has_undecodable(c) for c in header):
            raise ImportFormatError(f"{path.name}: the header is not {encoding} text; pass --encoding")
        cols = resolve_columns(fmt, header, options, path.name)
        width = len(header)
        prev_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                line = reader.line_num
                prev_end = line
                stats.rows += 1
                kind = "too large" if "field limit" in str(exc) else "unreadable row"
                yield _Row(line=line, error=f"line {line}: unreadable CSV ({exc})", kind=kind)
                continue
            start, line = prev_end + 1, reader.line_num
            prev_end = line
            big = [n for n in range(start, line + 1) if n in oversized]
            if big:
                stats.rows += 1
                size = sum(oversized[n][0] for n in big)
                data = oversized[big[0]][1].encode("utf-8", UNDECODABLE)[:RAW_KEEP_BYTES]
                yield _Row(
                    line=line, error=_too_large(big[0], size, cap), kind="too large", raw=data, raw_size=size
                )
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line is not a row
            stats.rows += 1
            yield _csv_row(row, header, width, line, fmt, cols, delimiter, encoding, cap)


#: Cells up to this long are read as field labels when looking for a password field in a rejected row.
_LABEL_CHARS = 64


def _without_passwords(row: list[str], header: list[str], cols: Columns) -> list[str]:
    """A rejected CSV row's cells with what was typed into a password field replaced by `<password>`.

    A row that failed to map never becomes an event, so the redactor's field-aware rule (a value typed
    into a field labelled "Password" is a password) never sees it; its raw cells go to the dead letters.
    Here the same rule is applied to the cells: a column whose name is a password field's is redacted, and
    when a short cell of the row names a password field (the logger's label or element column), the row's
    value columns are, or, when the file has none, every cell but the time, action, application, user
    and label cells (a dead letter then says less, and keeps no password).
    """
    from rote.privacy import PASSWORD_MARKER, default_redactor
    from rote.privacy.labels import label_kinds

    config = default_redactor().config
    if not (config.redact and config.redact_password):
        return row
    names = header + [""] * max(0, len(row) - len(header))
    context = [
        i for i, v in enumerate(row) if 0 < len(v) <= _LABEL_CHARS and "password" in label_kinds(v)
    ]
    keep = {cols.time, *cols.action, *cols.app, cols.user}
    out = list(row)
    for i, (name, v) in enumerate(zip(names, row, strict=False)):
        if not v.strip() or i in context:
            continue
        typed = name in cols.value if cols.value else name not in keep
        if "password" in label_kinds(name) or (context and typed):
            out[i] = PASSWORD_MARKER
    return out


def _csv_row(
    row: list[str],
    header: list[str],
    width: int,
    line: int,
    fmt: Format,
    cols: Columns,
    delimiter: str,
    encoding: str,
    cap: int,
) -> _Row:
    text = None

    def raw() -> tuple[bytes, int]:
        """The row as its dead letter keeps it: written back with the typed password taken out (what
        `redact_bytes` later does to the text cannot know which cell is a password: it has no field)."""
        nonlocal text
        if text is None:
            buf = io.StringIO()
            cells = _without_passwords(row, header, cols)
            csv.writer(buf, delimiter=delimiter, lineterminator="").writerow(cells)
            text = buf.getvalue()
        return _capped(text)

    if len(row) > width and not any(v.strip() for v in row[width:]):
        row = row[:width]  # trailing empty cells (a spreadsheet's export): not a different row shape
    if len(row) != width:
        data, size = raw()
        shown = {"\t": "tab"}.get(delimiter, delimiter)
        return _Row(
            line=line,
            error=f"line {line}: {len(row)} columns, the header has {width} (delimiter '{shown}')",
            kind="columns",
            raw=data,
            raw_size=size,
            payload=dict(zip(header, row, strict=False)),
        )
    values = dict(zip(header, row, strict=True))
    labels = labels_from(values, cols)
    if any(has_undecodable(v) for v in row):
        data, size = raw()
        return _Row(
            line=line,
            error=f"line {line}: not valid {encoding.removesuffix('-sig')} text (pass --encoding)",
            kind="encoding",
            raw=data,
            raw_size=size,
            labels=labels,
            payload={
                k: v.encode("utf-8", UNDECODABLE).decode("utf-8", "replace") for k, v in values.items()
            },
        )
    size = sum(len(v) for v in row)
    if size > cap:
        data, _ = raw()
        return _Row(line=line, error=_too_large(line, size, cap), kind="too large", raw=data, raw_size=size)
    reason = skip_reason(values, cols)
    if reason is not None:
        return _Row(line=line, skipped=reason)
    try:
        payload = map_row(fmt, values, cols)
    except ValueError as exc:
        data, size = raw()
        return _Row(
            line=line,
            error=f"line {line}: {exc}",
            kind=kind_of(str(exc)),
            raw=data,
            raw_size=size,
            labels=labels,
            payload=values,
        )
    return _Row(line=line, payload=payload, labels=labels, user=user_of(values, cols))


def _read_jsonl(path: Path, encoding: str, stats: ImportStats) -> Iterator[_Row]:
    cap = max_event_bytes()
    oversized: dict[int, tuple[int, str]] = {}
    with open_text(path, encoding) as handle:
        for line, text in enumerate(_bounded_lines(handle, cap, oversized), start=1):
            if line in oversized:
                stats.rows += 1
                size, head = oversized[line]
                yield _Row(
                    line=line,
                    error=_too_large(line, size, cap),
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
                data, size = _capped(body)
                yield _Row(
                    line=line, error=_too_large(line, size, cap), kind="too large", raw=data, raw_size=size
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
                data, size = _capped(body)
                shown_raw = data.decode("utf-8", "replace")
                yield _Row(
                    line=line, payload={"raw": shown_raw}, error=error, kind=kind, raw=data, raw_size=size
                )
                continue
            raw_labels = obj.pop("labels", None)
            labels = {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
            obj.setdefault("source", "jsonl")
            user = obj.get("user_id") if isinstance(obj.get("user_id"), str) and obj.get("user_id") else None
            row = _Row(line=line, payload=obj, labels=labels, user=user)
            row.raw, row.raw_size = _capped(body)
            yield row


#: The standard XES extension key of each role (IEEE 1849: concept, time, org), with the other names it has.
_XES_ROLES = (
    ("time:timestamp", TIME_COLUMNS),
    ("concept:name", ACTION_COLUMNS),
    ("org:resource", USER_COLUMNS),
    ("case:concept:name", INSTANCE_COLUMNS),
)


def _xes_header(first: dict[str, str]) -> list[str]:
    """The first event's keys plus the standard key of every role it has no key for: XES events are sparse,
    so the first event may lack an attribute that the others carry."""
    header = list(first)
    for standard, aliases in _XES_ROLES:
        if not any(a in first for a in aliases):
            header.append(standard)
    return header


def _read_xes(path: Path, options: CsvOptions | None, stats: ImportStats) -> Iterator[_Row]:
    cap = max_event_bytes()
    cols: Columns | None = None
    try:
        for line, values in iter_xes_rows(path):
            stats.rows += 1
            if cols is None:
                cols = resolve_columns("xes", _xes_header(values), options, path.name)
            size = sum(len(k) + len(v) for k, v in values.items())
            data, _ = _capped(json.dumps(values, ensure_ascii=False)[:RAW_KEEP_BYTES])
            if size > cap:
                yield _Row(
                    line=line, error=_too_large(line, size, cap), kind="too large", raw=data, raw_size=size
                )
                continue
            reason = skip_reason(values, cols)
            if reason is not None:
                yield _Row(line=line, skipped=reason)
                continue
            labels = labels_from(values, cols)
            try:
                payload = map_row("xes", values, cols)
            except ValueError as exc:
                yield _Row(
                    line=line,
                    error=f"line {line}: {exc}",
                    kind=kind_of(str(exc)),
                    raw=data,
                    raw_size=len(data),
                    labels=labels,
                    payload=values,
                )
                continue
            yield _Row(line=line, payload=payload, labels=labels, user=user_of(values, cols))
    except XesError as exc:
        stats.rows += 1
        yield _Row(line=exc.line, error=f"line {exc.line}: {exc}", kind="broken XML", payload={})


# --------------------------------------------------------------------------------------------------
# the record path
# --------------------------------------------------------------------------------------------------


def _fill_users(rows: list[_Row], fallback: str, fmt: Format) -> None:
    """Give every mapped row a user: its own, else the nearest earlier row's, else the file's first."""
    if fmt == "jsonl":
        for r in rows:
            if r.payload is not None:
                r.payload.setdefault("user_id", fallback)
        return
    first = next((r.user for r in rows if r.user), None)
    current = first or fallback
    for r in rows:
        if r.user:
            current = r.user
        if r.payload is not None and r.error is None:
            r.payload["user_id"] = current


def _finish(
    row: _Row, path: Path, stats: ImportStats, validate: bool, cap: int
) -> tuple[datetime | None, ImportedRecord]:
    """The one place every mapped row passes on its way to becoming an event: ids, size, time, schema."""
    line = row.line
    if row.payload:  # rote.privacy: passwords dropped, identifiers pseudonymised at capture
        row.payload = redact_payload(row.payload)
    if row.error is not None or row.payload is None:
        stats.add_invalid(row.kind or "bad value", row.error or f"line {line}: unreadable")
        return None, ImportedRecord(
            line=line,
            payload=row.payload or {},
            labels=row.labels,
            error=row.error,
            kind=row.kind,
            raw=row.raw,
            raw_size=row.raw_size,
        )
    payload = row.payload
    payload.setdefault("event_id", event_id_for(path, line))
    payload.setdefault("schema_version", 1)
    ts: datetime | None
    try:
        ts = (
            parse_timestamp(payload.get("timestamp"))
            if isinstance(payload.get("timestamp"), str | int | float)
            else None
        )
    except ValueError:
        ts = None

    def bad(error: str, kind: str) -> tuple[datetime | None, ImportedRecord]:
        stats.add_invalid(kind, error)
        raw, size = (row.raw, row.raw_size) if row.raw else _capped(json.dumps(payload, default=str))
        return ts, ImportedRecord(
            line=line, payload=payload, labels=row.labels, error=error, kind=kind, raw=raw, raw_size=size
        )

    encoded = json.dumps(payload, default=str)
    if len(encoded) > cap:
        return bad(_too_large(line, len(encoded), cap), "too large")
    if ts is not None:
        reason = implausible_time(ts)
        if reason is not None:
            return bad(f"line {line}: {reason}", "implausible time")
    action: UserAction | None = None
    if validate:
        try:
            action = decode(UserAction, payload)
        except ValidationError as exc:
            kind = "bad timestamp" if exc.field == "timestamp" else "invalid event"
            return bad(f"line {line}: {exc.reason}", kind)
    stats.valid += 1
    return ts, ImportedRecord(line=line, payload=payload, labels=row.labels, action=action)


def resolve_format(path: Path, fmt: Format, options: CsvOptions | None) -> tuple[Format, str, str | None]:
    """(format, encoding, delimiter or None) of `path`, sniffing what the options leave open."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    opts = options or CsvOptions()
    # JSON is UTF-8 by its standard (RFC 8259): a JSONL file is not guessed into another encoding, so one
    # garbage line stays one bad line instead of turning the whole file into UTF-16
    sniffed = sniff(path, encoding=opts.encoding or ("utf-8-sig" if fmt == "jsonl" else None))
    if fmt == "auto":
        fmt = detect_format(path, sniffed, opts.delimiter)
    encoding = sniffed.encoding
    if fmt == "jsonl" and opts.encoding is None:
        encoding = "utf-8-sig"
    delimiter = None
    if fmt in ("actionlogger", "bosco", "csv"):
        delimiter = opts.delimiter or sniff_delimiter(sniffed.sample)
    return fmt, encoding, delimiter


def iter_records(
    path: Path,
    *,
    fmt: Format = "auto",
    user_id: str = "user-1",
    csv_options: CsvOptions | None = None,
    stats: ImportStats | None = None,
    validate: bool = True,
) -> Iterator[ImportedRecord]:
    """Read a log file into records sorted stably by timestamp; `stats` (if given) gets the tally.

    Rows whose timestamp cannot be read keep their place after the previous readable row, so a replay
    still shows them (as dead letters) near where they happened. With `validate`, every record without an
    error holds its validated `UserAction`.
    """
    path = Path(path)
    tally = stats if stats is not None else ImportStats()
    resolved, encoding, delimiter = resolve_format(path, fmt, csv_options)
    tally.path, tally.format, tally.encoding, tally.delimiter = path.name, resolved, encoding, delimiter
    if resolved == "jsonl":
        reader = _read_jsonl(path, encoding, tally)
    elif resolved == "xes":
        reader = _read_xes(path, csv_options, tally)
    else:
        assert delimiter is not None
        reader = _read_csv(path, resolved, csv_options, encoding, delimiter, tally)
    rows: list[_Row] = []
    for row in reader:
        if row.skipped is not None:
            tally.add_skipped("not a completed event", f"line {row.line}: {row.skipped}")
            continue
        rows.append(row)
    _fill_users(rows, user_id, resolved)
    cap = max_event_bytes()
    keyed: list[tuple[datetime, int, ImportedRecord]] = []
    last = datetime.min.replace(tzinfo=UTC)
    for order, row in enumerate(rows):
        ts, rec = _finish(row, path, tally, validate, cap)
        if ts is not None and rec.error is None:
            last = ts
        keyed.append((ts if ts is not None and rec.error is None else last, order, rec))
    keyed.sort(key=lambda t: (t[0], t[1]))
    for _, _, rec in keyed:
        yield rec
