"""Per-format row mappers: one raw row (a dict of column -> text) in, one `UserAction` payload out.

A mapper raises `ValueError` with a short cause when a row cannot be an action (the reader adds the line);
it never validates against the schema (ingress does that) and never invents values. Ground-truth columns
are not copied into the payload, so a discoverer cannot cheat by reading them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from rote.errors import ImportFormatError
from rote.importers.options import (
    ACTION_COLUMNS,
    APP_COLUMNS,
    DATE_ORDERS,
    INSTANCE_COLUMNS,
    INSTANCE_LABEL,
    LIFECYCLE_COLUMN,
    ROUTINE_LABEL,
    TIME_COLUMNS,
    USER_COLUMNS,
    VALUE_COLUMNS,
    CsvOptions,
    Format,
    zone_of,
)
from rote.streams.schemas import UNKNOWN_APP

_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def clean(value: Any) -> str | None:
    """The text of a cell, or None when it is missing or blank."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() != "" else None


#: ``30.11.2026 14:03:05`` (seconds and fraction optional): day first wherever dates are written with dots
#: (German, Nordic, Slavic locales), so it is not ambiguous as ``11/30`` and ``30/11`` are.
_DOTTED = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4})"  # day, month, year
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"  # time, seconds and fraction optional
)


def _dotted(text: str) -> datetime | None:
    m = _DOTTED.fullmatch(text)
    if m is None:
        return None
    day, month, year, hour, minute, second, fraction = m.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None  # 31.02.2026: reported as not a timestamp below


#: ``11/03/2026 2:05:07 PM`` or ``03/11/2026 14:05``: a date with slashes (or dashes or dots) and an optional
#: 12-hour clock, read month first or day first as `--time-format MDY` or `DMY` says (the two cannot be told
#: apart from a row: 11/03 is both).
_SLASHED = re.compile(
    r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})"
    r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(?:\s*([AaPp])\.?[Mm]\.?)?)?"
)


def _slashed(text: str, order: str) -> datetime | None:
    m = _SLASHED.fullmatch(text)
    if m is None:
        return None
    a, b, year, hour, minute, second, fraction, half = m.groups()
    month, day = (a, b) if order == "MDY" else (b, a)
    h = int(hour or 0)
    if half is not None:  # 12 AM is midnight, 12 PM noon
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if half in "Pp" else 0)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            h,
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None  # 13/31/2026 read month first: reported as not a timestamp below


def _formatted(text: str, fmt: str) -> datetime | None:
    if fmt in DATE_ORDERS:
        return _slashed(text, fmt)
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


def parse_timestamp(raw: str | None, zone: tzinfo = UTC, time_format: str | None = None) -> datetime:
    """ISO-8601 (``Z`` or offset; naive means `zone`, UTC unless `--tz` says otherwise), ``DD.MM.YYYY
    hh:mm[:ss]`` (naive too: what an export from a spreadsheet in a German locale writes) or epoch
    seconds/milliseconds (always UTC); with `time_format` (`--time-format`: MDY, DMY or a strptime format),
    that format first."""
    text = clean(raw)
    if text is None:
        raise ValueError("timestamp is empty")
    text = text.strip()
    if time_format is not None:
        own = _formatted(text, time_format)
        if own is not None:
            return _in_utc(own, zone, text)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if number > 1e11:  # milliseconds since the epoch
            number /= 1000.0
        try:
            return datetime.fromtimestamp(number, tz=UTC)
        except (OverflowError, OSError, ValueError):  # nan, inf, years past 9999
            raise ValueError(f"timestamp {text!r} is out of range") from None
    try:
        ts = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        dotted = _dotted(text)
        if dotted is None:
            raise ValueError(_unreadable(text, time_format)) from None
        ts = dotted
    return _in_utc(ts, zone, text)


def _unreadable(text: str, time_format: str | None) -> str:
    if time_format is not None:
        return f"timestamp {text[:40]!r} does not match --time-format {time_format!r}"
    hint = ""
    if _SLASHED.fullmatch(text) is not None:
        hint = " (month first? --time-format MDY; day first? --time-format DMY)"
    elif any(c.isalpha() for c in text):
        hint = " (say its format with --time-format, e.g. '%d %b %Y %H:%M:%S')"
    return f"timestamp {text[:40]!r} is not ISO-8601, DD.MM.YYYY hh:mm:ss or epoch seconds{hint}"


def _in_utc(ts: datetime, zone: tzinfo, text: str) -> datetime:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=zone)
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-05:00 is past datetime.max in UTC
        raise ValueError(f"timestamp {text!r} is out of range in UTC") from None


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: `--instance-col none`: the log has no ground-truth instance column, whatever its columns are called.
NO_COLUMN = "none"


def event_id_for(path: Path, line: int) -> str:
    """Deterministic id of a file row, so that replaying a file is idempotent."""
    digest = hashlib.sha1(f"{path.name}:{line}".encode()).hexdigest()[:10]
    return f"{path.stem}-{line}-{digest}"


def record_id_for(path: Path, place: int) -> str:
    """Deterministic id of the `place`-th record of a JSON array (its records may share a line)."""
    digest = hashlib.sha1(f"{path.name}:r{place}".encode()).hexdigest()[:10]
    return f"{path.stem}-r{place}-{digest}"


def _split_cell(ref: str | None) -> tuple[str | None, int | None]:
    if ref is None:
        return None, None
    m = _CELL_RE.match(ref.strip())
    if not m:
        return None, None
    return m.group(1).upper(), int(m.group(2))


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _strip_ws(v: Any) -> str | None:
    text = clean(v)
    return " ".join(text.split()) if text is not None else None


def _first(header: Sequence[str], names: Sequence[str]) -> str | None:
    """The header's column for the first of `names` it has: spelled the same, else in another case (`Action`
    for `action`: a new user's export was refused for "no action column" while the error listed `action`)."""
    present = set(header)
    exact = next((n for n in names if n in present), None)
    if exact is not None:
        return exact
    folded: dict[str, str] = {}
    for col in header:
        folded.setdefault(col.casefold(), col)
    return next((folded[n.casefold()] for n in names if n.casefold() in folded), None)


# --------------------------------------------------------------------------------------------------
# columns
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Columns:
    """The concrete columns of one file: `CsvOptions` resolved against its header."""

    time: str
    action: tuple[str, ...]
    user: str | None
    app: tuple[str, ...]
    value: tuple[str, ...]
    event_id: str | None
    instance: str | None
    routine: str | None
    lifecycle: str | None
    #: (target field, column) pairs: what a generic log's columns say about where an action happened
    target: tuple[tuple[str, str], ...] = ()
    #: the log's action names (case-folded) -> rote's (`CsvOptions.action_map`)
    action_map: Mapping[str, str] = field(default_factory=dict)
    #: the zone of timestamps without an offset (`CsvOptions.timezone`)
    zone: tzinfo = UTC
    #: `CsvOptions.time_format`: MDY, DMY or a strptime format, tried before the formats read anyway
    time_format: str | None = None

    @property
    def labels(self) -> set[str]:
        return {c for c in (self.instance, self.routine) if c}


def resolve_columns(fmt: Format, header: Sequence[str], options: CsvOptions | None, name: str) -> Columns:
    """Which column is which, from the flags where given and the known names otherwise.

    A missing column is named with the names that were looked for and the flag that sets it, since the
    person reading the error is the one who knows what their logger called it.
    """
    opts = options or CsvOptions()
    looks_json = bool(header) and header[0].lstrip("\ufeff \t").startswith(("{", "["))
    if fmt in ("actionlogger", "bosco", "csv") and looks_json:
        # JSON read as a CSV header: its "columns" are pieces of the first record (a person's data), never
        # shown in the refusal
        raise ImportFormatError(
            f"{name} is not a{'n' if fmt == 'actionlogger' else ''} {fmt} log: it holds JSON records; "
            "try --format auto"
        )

    def pick(flag: str | None, aliases: Sequence[str], what: str, option: str) -> str | None:
        if flag is None:
            return _first(header, aliases)
        if flag not in header:
            raise ImportFormatError(f"{name}: no {what} column {flag!r} ({option}); header: {_shown(header)}")
        return flag

    if fmt in ("actionlogger", "bosco"):
        required = (
            ("eventType", "timeStamp", "targetApp") if fmt == "actionlogger" else ("eventType", "timeStamp")
        )
        missing = [c for c in required if c not in header]
        if missing:
            raise ImportFormatError(
                f"{name} is not a{'n' if fmt == 'actionlogger' else ''} {fmt} log: missing column(s) "
                f"{', '.join(missing)} (header: {_shown(header)}); try --format auto"
            )
        time = "timeStamp"
        action: tuple[str, ...] = ("eventType",)
    else:
        found = pick(opts.time_col, TIME_COLUMNS, "time", "--time-col")
        if found is None:
            # both missing: said at once, not one per run (a new user needed two failed runs to learn it)
            no_action = not opts.action_cols and _first(header, ACTION_COLUMNS) is None
            raise ImportFormatError(
                f"{name}: no time column (looked for {', '.join(TIME_COLUMNS)})"
                + (f" and no action column (looked for {', '.join(ACTION_COLUMNS)})" if no_action else "")
                + f"; header: {_shown(header)}; pass --time-col"
                + (" and --action-cols" if no_action else "")
            )
        time = found
        if opts.action_cols:
            for col in opts.action_cols:
                pick(col, (), "action", "--action-cols")
            action = tuple(opts.action_cols)
        else:
            first = _first(header, ACTION_COLUMNS)
            if first is None:
                raise ImportFormatError(
                    f"{name}: no action column (looked for {', '.join(ACTION_COLUMNS)}; header: "
                    f"{_shown(header)}); pass --action-cols"
                )
            action = (first,)
    user = pick(opts.user_col, USER_COLUMNS, "user", "--user-col")
    # "none": the log's cases are not routine instances (a process-mining export's traces are sessions or
    # days), so there is no ground truth to score against
    no_truth = opts.instance_col is not None and opts.instance_col.lower() == NO_COLUMN
    instance = None if no_truth else pick(opts.instance_col, INSTANCE_COLUMNS, "instance", "--instance-col")
    routine = pick(opts.routine_col, (), "routine", "--routine-col")
    generic = fmt not in ("actionlogger", "bosco")
    return Columns(
        time=time,
        action=action,
        user=user,
        app=_alternatives(pick(opts.app_col, APP_COLUMNS, "app", "--app-col"), APP_COLUMNS, fmt, generic),
        value=_alternatives(
            pick(opts.value_col, VALUE_COLUMNS, "value", "--value-col"), VALUE_COLUMNS, fmt, generic
        ),
        event_id=pick(opts.id_col, (), "event id", "--id-col"),
        instance=instance if instance not in (user, time, *action) else None,
        routine=routine,
        lifecycle=LIFECYCLE_COLUMN if LIFECYCLE_COLUMN in header and generic else None,
        action_map={k.strip().casefold(): v for k, v in opts.action_map},
        zone=zone_of(opts.timezone),
        time_format=opts.time_format,
        target=_target_columns(header, {time, *action, user, instance, routine}) if generic else (),
    )


#: Names (the last part of a dotted JSON path, case and separators ignored) of a generic log's columns that
#: say where an action happened: they go to the event's target, where automations read them (an open_file
#: step needs the file, a browser step its URL), instead of its free attributes.
TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    "url": ("url", "href", "pageurl", "uri"),
    "file": ("file", "filename", "filepath", "document"),
    "workbook": ("workbook", "workbookname"),
    "sheet": ("sheet", "sheetname", "worksheet"),
    "cell": ("cell", "cellref", "celladdress"),
    "title": ("title", "windowtitle", "pagetitle"),
}


def _target_columns(header: Sequence[str], taken: set[str | None]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, names in TARGET_COLUMNS.items():
        for col in header:
            key = re.sub(r"[^a-z0-9]", "", col.rsplit(".", 1)[-1].lower())
            if key in names and col not in taken:
                out.append((name, col))
                break
    return tuple(out)


def _alternatives(found: str | None, aliases: Sequence[str], fmt: Format, generic: bool) -> tuple[str, ...]:
    """The column(s) a field is read from. XES attributes are sparse (an event has only the ones it needs,
    the first event may have none of them), so any of the known names counts there, event by event."""
    if not generic:
        return ()
    if found is not None:
        return (found,)
    return tuple(aliases) if fmt == "xes" else ()


def _first_of(row: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = clean(row.get(name))
        if value is not None:
            return value
    return None


def _shown(header: Sequence[str], limit: int = 12) -> str:
    cols = [c if len(c) <= 40 else c[:39] + "…" for c in header[:limit]]
    more = f" … (+{len(header) - limit})" if len(header) > limit else ""
    return (", ".join(cols) + more if cols else "(none)") + _one_column_hint(header)


def _one_column_hint(header: Sequence[str]) -> str:
    """A header read as one column that holds another delimiter: the delimiter is wrong (`--delimiter ';'`
    on a comma file said only "no time column 'When'", with the whole header as its one column)."""
    if len(header) != 1:
        return ""
    inside = max((",", ";", "\t", "|"), key=header[0].count)
    if header[0].count(inside) == 0:
        return ""
    name = {"\t": "tab", "|": "pipe"}.get(inside, inside)
    return f" (read as one column: is the delimiter {name!r}? pass --delimiter {name!r})"


def labels_from(row: Mapping[str, Any], cols: Columns) -> dict[str, str]:
    labels: dict[str, str] = {}
    for col, key in ((cols.instance, INSTANCE_LABEL), (cols.routine, ROUTINE_LABEL)):
        if col is None:
            continue
        value = clean(row.get(col))
        if value is not None:
            labels[key] = value
            labels[col] = value
    return labels


def skip_reason(row: Mapping[str, Any], cols: Columns) -> str | None:
    """Why a well-formed row is not an action at all (counted and reported, not dead-lettered)."""
    if cols.lifecycle is not None:
        state = (clean(row.get(cols.lifecycle)) or "complete").strip().lower()
        if state != "complete":
            return f"{LIFECYCLE_COLUMN} {state[:20]!r} (only completed events are actions)"
    return None


def user_of(row: Mapping[str, Any], cols: Columns) -> str | None:
    return clean(row.get(cols.user)) if cols.user else None


# --------------------------------------------------------------------------------------------------
# per-format row mappers: raw row -> payload dict (raise ValueError when the row cannot be mapped)
# --------------------------------------------------------------------------------------------------

_AL_MAPPED = {
    "timeStamp",
    "userID",
    "targetApp",
    "eventType",
    "url",
    "content",
    "target.workbookName",
    "target.sheetName",
    "target.id",
    "target.name",
    "target.value",
    "target.title",
}


def map_actionlogger(row: Mapping[str, Any], cols: Columns) -> dict[str, Any]:
    app = clean(row.get("targetApp"))
    action = clean(row.get("eventType"))
    if action is None:
        raise ValueError("eventType is empty")
    ts = parse_timestamp(row.get("timeStamp"), cols.zone, cols.time_format)
    tid = clean(row.get("target.id"))
    workbook = clean(row.get("target.workbookName"))
    sheet = clean(row.get("target.sheetName"))
    column, rownum = (None, None)
    cell = None
    element = tid
    if workbook is not None or sheet is not None or (app or "").lower() == "excel":
        column, rownum = _split_cell(tid)
        if column is not None or (tid is not None and ":" in tid):
            cell, element = tid, None
    content = row.get("content")
    tvalue = row.get("target.value")
    value = content if clean(content) is not None else (tvalue if tvalue not in (None, "") else None)
    target = _drop_none(
        {
            "field": clean(row.get("target.name")),
            "element": element,
            "element_type": clean(row.get("target.type")) or clean(row.get("target.tagName")),
            "workbook": workbook,
            "sheet": sheet,
            "cell": cell,
            "column": column,
            "row": rownum,
            "url": clean(row.get("url")),
            "title": clean(row.get("target.title")) or clean(_strip_ws(row.get("target.innerText"))),
        }
    )
    skip = cols.labels | ({cols.user} if cols.user else set())
    attributes = {
        k: str(v)
        for k, v in row.items()
        if k and k not in _AL_MAPPED and k not in skip and clean(v) is not None
    }
    return {
        "timestamp": iso(ts),
        "app": app or UNKNOWN_APP,
        "action_type": action,
        "target": target,
        "value": value,
        "source": "actionlogger",
        "attributes": attributes,
    }


_BOSCO_MAPPED = {
    "eventType",
    "timeStamp",
    "source",
    "Label",
    "Value",
    "Sheet",
    "FileName",
    "Url",
    "Column",
    "Row",
}


def map_bosco(row: Mapping[str, Any], cols: Columns) -> dict[str, Any]:
    action = clean(row.get("eventType"))
    if action is None:
        raise ValueError("eventType is empty")
    ts = parse_timestamp(row.get("timeStamp"), cols.zone, cols.time_format)
    column = clean(row.get("Column"))
    row_text = clean(row.get("Row"))
    rownum: int | None = None
    if row_text is not None:
        try:
            rownum = int(float(row_text))
        except (ValueError, OverflowError):  # "abc", "nan", "1e400"
            raise ValueError(f"Row {row_text[:20]!r} is not a number") from None
    cell = f"{column}{rownum}" if column is not None and rownum is not None else None
    file_name = clean(row.get("FileName"))
    path_parts = [clean(row.get(c)) for c in ("FilePath", "NameFile")]
    ext = clean(row.get("FileExtension"))
    file_path = "".join(p for p in path_parts if p) or None
    if file_path and ext:
        file_path = f"{file_path}.{ext}"
    target = _drop_none(
        {
            "field": clean(row.get("Label")),
            "workbook": file_name
            if file_name and file_name.lower().endswith((".xls", ".xlsx", ".csv"))
            else None,
            "sheet": clean(row.get("Sheet")),
            "cell": cell,
            "column": column,
            "row": rownum,
            "url": clean(row.get("Url")),
            "file": file_path or file_name,
        }
    )
    skip = cols.labels | ({cols.user} if cols.user else set())
    attributes = {
        k: str(v)
        for k, v in row.items()
        if k and k not in _BOSCO_MAPPED and k not in skip and clean(v) is not None
    }
    return {
        "timestamp": iso(ts),
        "app": clean(row.get("source")) or UNKNOWN_APP,
        "action_type": action,
        "target": target,
        "value": row.get("Value") if clean(row.get("Value")) is not None else None,
        "source": "bosco",
        "attributes": attributes,
    }


#: A sheet-qualified cell reference as a generic log's target column may hold it (`Tabelle1!A4`,
#: `'Sheet 1'!$B$12`); a bare `A4` is not taken for one (a form may have a field called so).
_SHEET_CELL = re.compile(
    r"(?P<sheet>'[^']{1,100}'|[^!'/]{1,100})!\$?(?P<col>[A-Z]{1,3})\$?(?P<row>[1-9][0-9]{0,6})"
)


def _missing(row: Mapping[str, Any], col: str) -> str:
    """`col is empty` or `col is missing`; for a dotted path of a JSON record, where the path stops (a
    record with `"event": "click"` has no `event.type`: it says so, not just that the column is missing)."""
    if col in row:
        return f"{col} is empty"
    parts = col.split(".")
    for k in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in row:
            shown = str(row[prefix])
            shown = shown if len(shown) <= 40 else shown[:40] + "…"
            return f"{col} is missing ({prefix} is {shown!r}, not an object)"
    return f"{col} is missing"


def map_generic(row: Mapping[str, Any], cols: Columns, source: str = "csv") -> dict[str, Any]:
    """Any delimited log or XES event: one action column (plus target columns) and a time column."""
    action = clean(row.get(cols.action[0]))
    if action is None:
        raise ValueError(_missing(row, cols.action[0]))
    ts = parse_timestamp(row.get(cols.time), cols.zone, cols.time_format)
    parts = [clean(row.get(c)) for c in cols.action[1:]]
    fld = "/".join(p for p in parts if p) or None
    used = {cols.time, *cols.action, *cols.app, *cols.value, cols.user, cols.event_id, cols.lifecycle}
    used |= cols.labels | {col for _, col in cols.target}
    attributes = {k: str(v) for k, v in row.items() if k and k not in used and clean(v) is not None}
    cell = _SHEET_CELL.fullmatch(fld) if fld else None
    if cell is not None:
        # `Tabelle1!A4`: a sheet's cell, not a field named so. As a field, every row was a step of its
        # own (`copy:Tabelle1!A3`, `copy:Tabelle1!A4`: a new user's invoice routine split by row); as
        # sheet, column and row it is the column's step, the row a parameter, as in the Action Logger's.
        sheet = cell["sheet"].strip("'")
        col, num = cell["col"], cell["row"]
        ref = {"sheet": sheet, "column": col, "row": int(num), "cell": col + num}
        named = {f: clean(row.get(col)) for f, col in cols.target}
        target = {**{f: v for f, v in named.items() if v is not None}, **ref}  # a blank sheet column: ref
    else:
        target = {"field": fld, **{f: clean(row.get(col)) for f, col in cols.target}}
    payload: dict[str, Any] = {
        "timestamp": iso(ts),
        "app": _first_of(row, cols.app) or UNKNOWN_APP,
        "action_type": action,
        "target": _drop_none(target),
        "value": _first_of(row, cols.value),
        "source": source,
        "attributes": attributes,
    }
    if cols.event_id and clean(row.get(cols.event_id)):
        payload["event_id"] = str(row[cols.event_id])
    return payload


def map_row(fmt: Format, row: Mapping[str, Any], cols: Columns) -> dict[str, Any]:
    if fmt == "actionlogger":
        payload = map_actionlogger(row, cols)
    elif fmt == "bosco":
        payload = map_bosco(row, cols)
    else:
        payload = map_generic(row, cols, source=fmt if fmt in ("xes", "json", "jsonl") else "csv")
    if cols.action_map:
        logged = payload.get("action_type")
        if isinstance(logged, str):
            own = logged.strip().casefold()
            mapped = cols.action_map.get(own)
            if mapped is None:
                mapped = logged  # not in the map: kept as logged (a log's own action named "ignore" too)
            elif mapped.casefold() == IGNORE_ACTION:
                raise LeftOut(logged)
            payload["action_type"] = mapped
    return payload


#: `--action-map 'Fenster aktiviert=ignore'`: rows of that action are not actions (counted as skipped)
IGNORE_ACTION = "ignore"


class LeftOut(Exception):
    """A row whose action the action map sends to `IGNORE_ACTION` (not an error: internal to the importers, a
    row the person asked to leave out, counted as skipped)."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action
