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
import dataclasses
import gzip
import io
import json
import zlib
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

from rote.errors import ImportFormatError, ValidationError
from rote.importers.formats import (
    Columns,
    event_id_for,
    labels_from,
    parse_timestamp,
    resolve_columns,
)
from rote.importers.jsondoc import read_json
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
from rote.importers.rows import (
    RAW_KEEP_BYTES,
    UNDECODED_HINT,
    ImportedRecord,
    Row,
    bounded_lines,
    capped,
    human_bytes,
    mapped_row,
    too_large,
    without_passwords,
)
from rote.importers.sniff import (
    UNDECODABLE,
    detect_format,
    has_undecodable,
    json_encoding,
    open_text,
    sniff,
    sniff_delimiter,
)
from rote.importers.stats import ImportStats
from rote.importers.xes import XesError, iter_xes_rows
from rote.privacy import redact_payload
from rote.streams.schemas import UserAction, decode, implausible_time

# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


class _Lines:
    """The physical lines fed to `csv.reader`, numbered, keeping the lines of the record being read so that a
    quote opened and never closed can be undone: the lines it swallowed are handed out again."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._it = lines
        self._back: deque[tuple[int, str]] = deque()
        self._number = 0
        #: the file's last line has been handed out and the reader asked for more: a record read to here
        #: ended inside a quoted cell (`csv.reader` returns it as it stands)
        self.exhausted = False
        #: (line number, text) of every line handed out since `take()`
        self.record: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._back:
            number, text = self._back.popleft()
        else:
            try:
                text = next(self._it)
            except StopIteration:
                self.exhausted = True
                raise
            self._number += 1
            number = self._number
        self.record.append((number, text))
        return text

    def take(self) -> list[tuple[int, str]]:
        rec, self.record = self.record, []
        self.exhausted = False
        return rec

    def again(self, lines: list[tuple[int, str]]) -> None:
        """Hand these lines out again, before any other."""
        self._back.extendleft(reversed(lines))


def _width_cells(text: str, delimiter: str, width: int) -> list[str]:
    """One physical line's cells; empty cells past the header's width (a spreadsheet's export) left out, as
    `_csv_row` leaves them out."""
    cells = next(csv.reader([text], delimiter=delimiter), [])
    if len(cells) > width and not any(c.strip() for c in cells[width:]):
        del cells[width:]
    return cells


def _row_like(
    text: str, width: int, delimiter: str, time_at: int | None, *, last: bool, time_format: str | None = None
) -> bool:
    """Is this line, read alone, a row of the file: the header's number of cells and a readable time? The
    last line of a multi-line cell holds its closing quote inside a cell (`line two",2026-...,type`): a
    line whose first quote does not begin a cell is that, not a row."""
    if last:
        q = text.find('"')
        if q > 0 and text[q - 1] != delimiter:
            return False
    cells = _width_cells(text, delimiter, width)
    if len(cells) != width:
        return False
    if time_at is None:
        return True
    try:
        parse_timestamp(cells[time_at], time_format=time_format)
    except ValueError:
        return False
    return True


def _runaway_quote(
    rec: list[tuple[int, str]],
    width: int,
    delimiter: str,
    time_at: int | None,
    time_format: str | None = None,
) -> bool:
    """A record read over several lines whose later lines are rows of the file on their own: a quote opened
    in its first line never closed (a value starting with `"`), and the reader took the rows after it as
    that cell's text. A real multi-line cell (a note with a line break, commas and all) holds no line that
    is a row with a readable time."""
    n = len(rec)
    return any(
        _row_like(text, width, delimiter, time_at, last=k == n - 1, time_format=time_format)
        for k, (_, text) in enumerate(rec)
        if k
    )


def _stray_line(text: str, width: int, delimiter: str) -> list[str] | None:
    """The cells of a line whose quote never closes: closed at the line's end (`"Zitat Kunde ...` is one
    cell, and quoted cells before it keep their delimiters; cells it left short are empty), else with
    quotes read as text; None when neither gives the header's width."""
    closed = next(csv.reader([text.rstrip("\r\n") + '"'], delimiter=delimiter), [])
    if len(closed) <= width:
        return closed + [""] * (width - len(closed))
    plain = next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
    if len(plain) > width and not any(c.strip() for c in plain[width:]):
        del plain[width:]
    return plain if len(plain) == width else None


def _read_csv(
    path: Path, fmt: Format, options: CsvOptions | None, encoding: str, delimiter: str, stats: ImportStats
) -> Iterator[Row]:
    cap = max_event_bytes()
    if csv.field_size_limit() < cap:
        csv.field_size_limit(cap)
    oversized: dict[int, tuple[int, str]] = {}
    with open_text(path, encoding) as handle:
        lines = _Lines(bounded_lines(handle, cap, oversized))
        reader = csv.reader(lines, delimiter=delimiter)
        header: list[str] = []
        try:
            for row in reader:
                if oversized:
                    first = min(oversized)
                    raise ImportFormatError(
                        f"{path.name}: line {first} is {human_bytes(oversized[first][0])} without a line "
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
        time_at = header.index(cols.time) if cols.time in header else None
        lines.take()
        while True:
            failed: csv.Error | None = None
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                failed, row = exc, []
            ended = lines.exhausted  # the reader asked past the file's end for this record
            rec = lines.take()
            if not rec:
                continue
            # a row is named (in reasons and its event id) by its first line, where it starts: a note over
            # two lines gave the row the second line's number, off by one from the user's own count
            start, end = rec[0][0], rec[-1][0]
            line = start
            if len(rec) > 1 and _runaway_quote(rec, width, delimiter, time_at, cols.time_format):
                # Read the first line alone (its quote closed at the line's end) and the others again.
                lines.again(rec[1:])
                failed, end = None, start
                row = _stray_line(rec[0][1], width, delimiter) or next(
                    csv.reader([rec[0][1]], delimiter=delimiter, quoting=csv.QUOTE_NONE), []
                )
                stats.stray_quotes += 1
                stats._note("stray quote", f"line {start}")
            elif ended and failed is None:
                # the file ends inside this record's quoted cell: kept as read, and said (a file cut off in
                # a note's second line was read as if whole)
                stats.cut_short = f"line {start}: the file ends inside a quoted cell of this row"
            if failed is not None:
                stats.rows += 1
                kind = "too large" if "field limit" in str(failed) else "unreadable row"
                yield Row(line=line, error=f"line {line}: unreadable CSV ({failed})", kind=kind)
                continue
            big = [n for n in range(start, end + 1) if n in oversized]
            if big:
                stats.rows += 1
                size = sum(oversized[n][0] for n in big)
                data = oversized[big[0]][1].encode("utf-8", UNDECODABLE)[:RAW_KEEP_BYTES]
                yield Row(
                    line=line, error=too_large(big[0], size, cap), kind="too large", raw=data, raw_size=size
                )
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line is not a row
            stats.rows += 1
            if [c.strip().lstrip("\ufeff") for c in row] == header:
                yield Row(line=line, skipped="the header again (files joined?)", skip_kind="repeated header")
                continue
            out = _csv_row(row, header, width, line, fmt, cols, delimiter, encoding, cap)
            if out.kind == "columns" and len(row) < width and not rec[-1][1].endswith(("\n", "\r")):
                # the file's last line, without a line break and short of cells: most likely cut off
                stats.cut_short = f"line {line}: the file's last line ends without a line break"
                out = dataclasses.replace(out, error=f"{out.error or ''}; the file ends here: cut short?")
            yield out


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
) -> Row:
    text = None

    def raw() -> tuple[bytes, int]:
        """The row as its dead letter keeps it: written back with the typed password taken out (what
        `redact_bytes` later does to the text cannot know which cell is a password: it has no field)."""
        nonlocal text
        if text is None:
            buf = io.StringIO()
            cells = without_passwords(row, header, cols)
            csv.writer(buf, delimiter=delimiter, lineterminator="").writerow(cells)
            text = buf.getvalue()
        return capped(text)

    if len(row) > width and not any(v.strip() for v in row[width:]):
        row = row[:width]  # trailing empty cells (a spreadsheet's export): not a different row shape
    if len(row) != width:
        data, size = raw()
        shown = {"\t": "tab"}.get(delimiter, delimiter)
        return Row(
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
        return Row(
            line=line,
            error=f"line {line}: not valid {encoding.removesuffix('-sig')} text {UNDECODED_HINT}",
            kind="encoding",
            raw=data,
            raw_size=size,
            labels=labels,
            payload={k: v.encode("utf-8", UNDECODABLE).decode("utf-8", "replace") for k, v in values.items()},
        )
    return mapped_row(line, values, cols, fmt, cap, size=sum(len(v) for v in row), kept=raw)


#: The standard XES extension key of each role (IEEE 1849: concept, time, org), with the other names it has.
_XES_ROLES = (
    ("time:timestamp", TIME_COLUMNS),
    ("concept:name", ACTION_COLUMNS),
    ("org:resource", USER_COLUMNS),
    ("case:concept:name", INSTANCE_COLUMNS),
)


#: XES events looked at for the attributes the log has (events are sparse: the first may lack one the
#: others carry, and a flag naming it was refused).
XES_LOOKAHEAD = 1000


def _xes_header(events: list[dict[str, str]]) -> list[str]:
    """Every attribute key of the first `XES_LOOKAHEAD` events, plus the standard key of every role none
    of them has a key for."""
    header: dict[str, None] = {}
    for values in events:
        header.update(dict.fromkeys(values))
    for standard, aliases in _XES_ROLES:
        if not any(a in header for a in aliases):
            header[standard] = None
    return list(header)


def _read_xes(path: Path, options: CsvOptions | None, stats: ImportStats) -> Iterator[Row]:
    cap = max_event_bytes()
    ahead: list[tuple[int, dict[str, str]]] = []
    broken: XesError | None = None
    events = iter_xes_rows(path)
    try:
        for item in events:
            ahead.append(item)
            if len(ahead) >= XES_LOOKAHEAD:
                break
    except XesError as exc:
        broken = exc
    cols = resolve_columns("xes", _xes_header([v for _, v in ahead]), options, path.name) if ahead else None
    try:
        for line, values in chain(ahead, events if broken is None else ()):
            stats.rows += 1
            assert cols is not None
            yield mapped_row(line, values, cols, "xes", cap)
    except XesError as exc:
        broken = exc
    if broken is not None:
        stats.rows += 1
        yield Row(line=broken.line, error=f"line {broken.line}: {broken}", kind="broken XML", payload={})


# --------------------------------------------------------------------------------------------------
# the record path
# --------------------------------------------------------------------------------------------------


def _fill_users(rows: list[Row], fallback: str) -> None:
    """Give every mapped row a user: its own, else the nearest earlier row's, else the file's first (rote's
    own events without one get `fallback`)."""
    for r in rows:
        if r.own_event and r.payload is not None:
            r.payload.setdefault("user_id", fallback)
    rows = [r for r in rows if not r.own_event]
    first = next((r.user for r in rows if r.user), None)
    current = first or fallback
    for r in rows:
        if r.user:
            current = r.user
        if r.payload is not None and r.error is None:
            r.payload["user_id"] = current


def _finish(
    row: Row, path: Path, stats: ImportStats, validate: bool, cap: int
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
        raw, size = (row.raw, row.raw_size) if row.raw else capped(json.dumps(payload, default=str))
        return ts, ImportedRecord(
            line=line, payload=payload, labels=row.labels, error=error, kind=kind, raw=raw, raw_size=size
        )

    encoded = json.dumps(payload, default=str)
    if len(encoded) > cap:
        return bad(too_large(line, len(encoded), cap), "too large")
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


def _refuse_wrong_encoding(name: str, stats: ImportStats, records: list[ImportedRecord]) -> None:
    """Most rows undecodable: the file is in another encoding than the one it is read in (a wrong
    `--encoding`), not a log with a few damaged lines. Replaying what is left would pass a fraction of the
    log off as the whole (a new user's `--encoding utf-8` on a cp1252 export replayed 478 of 1,066 rows,
    exit status 0, and replaced the last run's archive)."""
    bad = sum(1 for r in records if r.error is not None and r.error.endswith(UNDECODED_HINT))
    if bad and bad * 2 > stats.rows:
        shown = (stats.encoding or "utf-8").removesuffix("-sig")
        raise ImportFormatError(
            f"{name}: {bad} of {stats.rows} rows are not valid {shown} text; the file is in another "
            f"encoding: pass it with --encoding (cp1252, latin-1, utf-16, ...)"
        )


def resolve_format(path: Path, fmt: Format, options: CsvOptions | None) -> tuple[Format, str, str | None]:
    """(format, encoding, delimiter or None) of `path`, sniffing what the options leave open."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    opts = options or CsvOptions()
    # JSON is UTF-8 by its standard (RFC 8259): a JSONL file is not guessed into another encoding, so one
    # garbage line stays one bad line instead of turning the whole file into UTF-16 (a UTF-16 byte-order
    # mark is unambiguous, and honoured: `json_encoding`)
    default = json_encoding(path) if fmt in ("jsonl", "json") else None
    sniffed = sniff(path, encoding=opts.encoding or default)
    if fmt == "auto":
        fmt = detect_format(path, sniffed, opts.delimiter)
    encoding = sniffed.encoding
    if fmt in ("jsonl", "json") and opts.encoding is None:
        encoding = default or json_encoding(path)  # read once when the format was given
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
    if resolved in ("jsonl", "json"):
        reader = read_json(path, resolved, csv_options, encoding, tally)
    elif resolved == "xes":
        reader = _read_xes(path, csv_options, tally)
    else:
        assert delimiter is not None
        reader = _read_csv(path, resolved, csv_options, encoding, delimiter, tally)
    rows: list[Row] = []
    try:
        for row in reader:
            if row.skipped is not None:
                tally.add_skipped(row.skip_kind, f"line {row.line}: {row.skipped}")
                continue
            rows.append(row)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # a compressed file cut short or damaged: every row before the damage is kept, the loss is counted
        tally.rows += 1
        line = rows[-1].line + 1 if rows else 1
        why = f"line {line}: the compressed file is cut short or damaged ({exc}); nothing after it was read"
        rows.append(Row(line=line, error=why, kind="unreadable row", payload={}))
    except UnicodeError as exc:
        # a codec that refuses the bytes outright (`--encoding utf-16` on a file without its BOM) is the
        # wrong encoding, not a fault of rote's: nothing is yielded, the command exits 2
        raise ImportFormatError(
            f"{path.name} cannot be read as {encoding} ({exc}); pass another --encoding, or none to detect it"
        ) from None
    _fill_users(rows, user_id)
    cap = max_event_bytes()
    keyed: list[tuple[datetime, int, ImportedRecord]] = []
    last = datetime.min.replace(tzinfo=UTC)
    for order, row in enumerate(rows):
        ts, rec = _finish(row, path, tally, validate, cap)
        if ts is not None and rec.error is None:
            last = ts
        keyed.append((ts if ts is not None and rec.error is None else last, order, rec))
    _refuse_wrong_encoding(path.name, tally, [rec for _, _, rec in keyed])  # before one is yielded
    keyed.sort(key=lambda t: (t[0], t[1]))
    for _, _, rec in keyed:
        yield rec
