"""Importers: turn the UI logs that real loggers write into `UserAction` events.

Three recorders' formats plus our own are read:

* ``actionlogger`` -- the Action Logger browser/Excel plug-in CSV (Leno et al.): ``timeStamp, userID,
  targetApp, eventType, url, content, target.*``.
* ``bosco`` -- the simulated Excel-to-Web logs of Bosco et al.: ``caseID, eventType, timeStamp, source,
  lifecycle:transition`` and per-log attribute columns (``Label, Value, Sheet, FileName, Url ...``).
* ``jsonl`` -- one `UserAction` JSON object per line (our own schema); a ``labels`` object is kept aside.
* ``csv`` -- any other CSV, described by `CsvOptions` (which columns are the time, the action, the instance).

Each row becomes an `ImportedRecord` whose payload is *not yet validated*: the pipeline validates at ingress
and dead-letters what fails, so a file with a few broken rows still replays and the broken rows are visible
instead of silently dropped. Ground-truth columns (``caseID`` ...) go to ``labels`` and never into the
payload, so a discoverer cannot cheat by reading them.

Event ids are a hash of the file name and line number: replaying the same file twice produces the same ids,
which makes the replay idempotent downstream (agents de-duplicate by event id). Records are sorted stably by
timestamp because loggers flush events out of order (the Action Logger writes a ``getCell`` after the
``copy`` it caused); ties keep file order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rote.errors import ImportFormatError, ValidationError
from rote.streams.schemas import UserAction, decode

Format = Literal["actionlogger", "bosco", "jsonl", "csv"]
FORMATS: tuple[str, ...] = ("actionlogger", "bosco", "jsonl", "csv")

#: Standard label keys: the ground-truth routine instance and (when known) the routine/variant name.
INSTANCE_LABEL = "instance"
ROUTINE_LABEL = "routine"

_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")


@dataclass(frozen=True, kw_only=True)
class CsvOptions:
    """How to read a CSV whose columns are not one of the known loggers'.

    For ``bosco`` and ``actionlogger`` only the label columns and the delimiter are used (their event
    columns are fixed by the format). ``action_cols``: the first column is the action type, the others
    name the target (joined with ``/`` into ``target.field``), e.g. ``("eventType", "Label")``.
    """

    time_col: str = "timeStamp"
    action_cols: tuple[str, ...] = ("eventType",)
    instance_col: str | None = None
    routine_col: str | None = None
    app_col: str | None = None
    value_col: str | None = None
    user_col: str | None = None
    id_col: str | None = None
    delimiter: str = ","


@dataclass(frozen=True, kw_only=True)
class ImportedRecord:
    """One input row: the mapped event (unvalidated), its ground-truth labels, or why it cannot be mapped."""

    line: int
    payload: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() != "" else None


def parse_timestamp(raw: str | None) -> datetime:
    """ISO-8601 (``Z`` or offset; naive means UTC) or epoch seconds/milliseconds."""
    text = _clean(raw)
    if text is None:
        raise ValueError("timestamp is empty")
    text = text.strip()
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
        raise ValueError(f"timestamp {text!r} is not ISO-8601 or epoch seconds") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-05:00 is past datetime.max in UTC
        raise ValueError(f"timestamp {text!r} is out of range in UTC") from None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_id_for(path: Path, line: int) -> str:
    """Deterministic id of a file row, so that replaying a file is idempotent."""
    digest = hashlib.sha1(f"{path.name}:{line}".encode()).hexdigest()[:10]
    return f"{path.stem}-{line}-{digest}"


def _split_cell(ref: str | None) -> tuple[str | None, int | None]:
    if ref is None:
        return None, None
    m = _CELL_RE.match(ref.strip())
    if not m:
        return None, None
    return m.group(1).upper(), int(m.group(2))


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _labels_from(
    row: Mapping[str, Any], options: CsvOptions | None, default_instance: str | None
) -> dict[str, str]:
    labels: dict[str, str] = {}
    instance_col = (options.instance_col if options else None) or default_instance
    routine_col = options.routine_col if options else None
    for col, key in ((instance_col, INSTANCE_LABEL), (routine_col, ROUTINE_LABEL)):
        if col is None:
            continue
        value = _clean(row.get(col))
        if value is not None:
            labels[key] = value
            labels[col] = value
    return labels


def _label_cols(options: CsvOptions | None, default_instance: str | None) -> set[str]:
    cols = {c for c in ((options.instance_col if options else None) or default_instance,) if c}
    if options and options.routine_col:
        cols.add(options.routine_col)
    return cols


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


def _map_actionlogger(row: Mapping[str, Any], skip: set[str]) -> dict[str, Any]:
    app = _clean(row.get("targetApp"))
    action = _clean(row.get("eventType"))
    if action is None:
        raise ValueError("eventType is empty")
    ts = parse_timestamp(row.get("timeStamp"))
    tid = _clean(row.get("target.id"))
    workbook = _clean(row.get("target.workbookName"))
    sheet = _clean(row.get("target.sheetName"))
    column, rownum = (None, None)
    cell = None
    element = tid
    if workbook is not None or sheet is not None or (app or "").lower() == "excel":
        column, rownum = _split_cell(tid)
        if column is not None or (tid is not None and ":" in tid):
            cell, element = tid, None
    content = row.get("content")
    tvalue = row.get("target.value")
    value = content if _clean(content) is not None else (tvalue if tvalue not in (None, "") else None)
    target = _drop_none(
        {
            "field": _clean(row.get("target.name")),
            "element": element,
            "element_type": _clean(row.get("target.type")) or _clean(row.get("target.tagName")),
            "workbook": workbook,
            "sheet": sheet,
            "cell": cell,
            "column": column,
            "row": rownum,
            "url": _clean(row.get("url")),
            "title": _clean(row.get("target.title")) or _clean(_strip_ws(row.get("target.innerText"))),
        }
    )
    attributes = {
        k: str(v)
        for k, v in row.items()
        if k and k not in _AL_MAPPED and k not in skip and _clean(v) is not None
    }
    if _clean(row.get("userID")) is not None:
        attributes["userID"] = str(row["userID"])
    return {
        "timestamp": _iso(ts),
        "app": app or "unknown",
        "action_type": action,
        "target": target,
        "value": value,
        "source": "actionlogger",
        "attributes": attributes,
    }


def _strip_ws(v: Any) -> str | None:
    text = _clean(v)
    return " ".join(text.split()) if text is not None else None


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


def _map_bosco(row: Mapping[str, Any], skip: set[str]) -> dict[str, Any]:
    action = _clean(row.get("eventType"))
    if action is None:
        raise ValueError("eventType is empty")
    ts = parse_timestamp(row.get("timeStamp"))
    column = _clean(row.get("Column"))
    row_text = _clean(row.get("Row"))
    rownum: int | None = None
    if row_text is not None:
        try:
            rownum = int(float(row_text))
        except (ValueError, OverflowError):  # "abc", "nan", "1e400"
            raise ValueError(f"Row {row_text!r} is not a number") from None
    cell = f"{column}{rownum}" if column is not None and rownum is not None else None
    file_name = _clean(row.get("FileName"))
    path_parts = [_clean(row.get(c)) for c in ("FilePath", "NameFile")]
    ext = _clean(row.get("FileExtension"))
    file_path = "".join(p for p in path_parts if p) or None
    if file_path and ext:
        file_path = f"{file_path}.{ext}"
    target = _drop_none(
        {
            "field": _clean(row.get("Label")),
            "workbook": file_name
            if file_name and file_name.lower().endswith((".xls", ".xlsx", ".csv"))
            else None,
            "sheet": _clean(row.get("Sheet")),
            "cell": cell,
            "column": column,
            "row": rownum,
            "url": _clean(row.get("Url")),
            "file": file_path or file_name,
        }
    )
    attributes = {
        k: str(v)
        for k, v in row.items()
        if k and k not in _BOSCO_MAPPED and k not in skip and _clean(v) is not None
    }
    return {
        "timestamp": _iso(ts),
        "app": _clean(row.get("source")) or "unknown",
        "action_type": action,
        "target": target,
        "value": row.get("Value") if _clean(row.get("Value")) is not None else None,
        "source": "bosco",
        "attributes": attributes,
    }


def _map_generic(row: Mapping[str, Any], skip: set[str], options: CsvOptions) -> dict[str, Any]:
    if not options.action_cols:
        raise ImportFormatError("csv import needs at least one action column")
    action = _clean(row.get(options.action_cols[0]))
    if action is None:
        raise ValueError(f"{options.action_cols[0]} is empty")
    ts = parse_timestamp(row.get(options.time_col))
    parts = [_clean(row.get(c)) for c in options.action_cols[1:]]
    fld = "/".join(p for p in parts if p) or None
    used = {options.time_col, *options.action_cols, options.app_col, options.value_col, options.user_col}
    used.add(options.id_col)
    attributes = {
        k: str(v) for k, v in row.items() if k and k not in used and k not in skip and _clean(v) is not None
    }
    payload: dict[str, Any] = {
        "timestamp": _iso(ts),
        "app": (_clean(row.get(options.app_col)) if options.app_col else None) or "unknown",
        "action_type": action,
        "target": _drop_none({"field": fld}),
        "value": _clean(row.get(options.value_col)) if options.value_col else None,
        "source": "csv",
        "attributes": attributes,
    }
    if options.user_col and _clean(row.get(options.user_col)):
        payload["user_id"] = str(row[options.user_col])
    if options.id_col and _clean(row.get(options.id_col)):
        payload["event_id"] = str(row[options.id_col])
    return payload


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


def _read_csv(
    path: Path, fmt: Format, user_id: str, options: CsvOptions | None
) -> Iterator[tuple[datetime | None, ImportedRecord]]:
    delimiter = options.delimiter if options else ","
    default_instance = "caseID" if fmt in ("bosco", "actionlogger") else None
    skip = _label_cols(options, default_instance)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            reader = csv.DictReader(handle, delimiter=delimiter, restkey="__extra__")
            header = reader.fieldnames or []
        except (TypeError, csv.Error) as exc:  # a bad delimiter, an unreadable header
            raise ImportFormatError(f"{path.name}: unreadable CSV header: {exc}") from None
        except UnicodeDecodeError as exc:  # the first read decodes a whole buffer, not just the header
            raise ImportFormatError(f"{path.name}: not UTF-8 ({exc.reason})") from None
        required = {
            "bosco": ("eventType", "timeStamp"),
            "actionlogger": ("eventType", "timeStamp", "targetApp"),
            "csv": ((options or CsvOptions()).time_col, *(options or CsvOptions()).action_cols),
        }[fmt]
        missing = [c for c in required if c not in header]
        if missing:
            raise ImportFormatError(
                f"{path.name} is not a {fmt} log: missing column(s) {', '.join(missing)} "
                f"(header: {', '.join(header)})"
            )
        try:
            for row in reader:
                line = reader.line_num
                raw = {k: v for k, v in row.items() if k is not None}
                labels = _labels_from(row, options, default_instance)
                if "__extra__" in row or any(v is None for k, v in row.items() if k != "__extra__"):
                    yield (
                        None,
                        ImportedRecord(
                            line=line,
                            payload={
                                k: (v if not isinstance(v, list) else "|".join(v)) for k, v in raw.items()
                            },
                            labels=labels,
                            error=f"line {line}: expected {len(header)} columns",
                        ),
                    )
                    continue
                try:
                    if fmt == "bosco":
                        payload = _map_bosco(row, skip)
                    elif fmt == "actionlogger":
                        payload = _map_actionlogger(row, skip)
                    else:
                        payload = _map_generic(row, skip, options or CsvOptions())
                except ValueError as exc:
                    yield (
                        None,
                        ImportedRecord(line=line, payload=raw, labels=labels, error=f"line {line}: {exc}"),
                    )
                    continue
                payload.setdefault("event_id", event_id_for(path, line))
                payload.setdefault("user_id", user_id)
                payload["schema_version"] = 1
                yield (
                    parse_timestamp(payload["timestamp"]),
                    ImportedRecord(line=line, payload=payload, labels=labels),
                )
        except csv.Error as exc:
            raise ImportFormatError(f"{path.name}: unreadable CSV at line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{path.name}: not UTF-8 ({exc.reason})") from None


def _read_jsonl(path: Path, user_id: str) -> Iterator[tuple[datetime | None, ImportedRecord]]:
    # surrogateescape: one undecodable line becomes an error record instead of aborting the whole file;
    # utf-8-sig: a BOM written by Windows tools is not part of the first line's JSON.
    try:
        handle = path.open(encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            error: str | None = None
            try:
                text.encode("utf-8")  # only escaped (undecodable) bytes are surrogates here
                obj = json.loads(text)
            except UnicodeEncodeError:
                error = f"line {line}: not UTF-8"
            except json.JSONDecodeError as exc:
                error = f"line {line}: not JSON: {exc.msg}"
            except RecursionError:
                error = f"line {line}: JSON nested too deeply"
            if error is not None:
                raw = text.rstrip("\r\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield None, ImportedRecord(line=line, payload={"raw": raw}, error=error)
                continue
            if not isinstance(obj, dict):
                yield (
                    None,
                    ImportedRecord(
                        line=line,
                        payload={"raw": obj},
                        error=f"line {line}: a JSON {type(obj).__name__}, not an object",
                    ),
                )
                continue
            raw_labels = obj.pop("labels", None)
            labels = {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
            obj.setdefault("event_id", event_id_for(path, line))
            obj.setdefault("user_id", user_id)
            obj.setdefault("source", "jsonl")
            try:
                ts: datetime | None = parse_timestamp(obj.get("timestamp"))
            except (ValueError, TypeError):
                ts = None  # kept in place; validation at ingress gives the reason
            yield ts, ImportedRecord(line=line, payload=obj, labels=labels)


def iter_records(
    path: Path,
    *,
    fmt: Format,
    user_id: str = "user-1",
    csv_options: CsvOptions | None = None,
) -> Iterator[ImportedRecord]:
    """Read a log file into records sorted stably by timestamp.

    Rows whose timestamp cannot be read keep their place after the previous readable row, so a replay
    still shows them (as dead letters) near where they happened.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    rows = _read_jsonl(path, user_id) if fmt == "jsonl" else _read_csv(path, fmt, user_id, csv_options)
    keyed: list[tuple[datetime, int, ImportedRecord]] = []
    last = datetime.min.replace(tzinfo=UTC)
    for order, (ts, rec) in enumerate(rows):
        if ts is not None:
            last = ts
        keyed.append((ts if ts is not None else last, order, rec))
    keyed.sort(key=lambda t: (t[0], t[1]))
    for _, _, rec in keyed:
        yield rec


def load_actions(
    path: Path,
    *,
    fmt: Format,
    user_id: str = "user-1",
    csv_options: CsvOptions | None = None,
    strict: bool = False,
) -> list[UserAction]:
    """Validated `UserAction`s of a file, for in-process use; bad rows are skipped unless `strict`."""
    out: list[UserAction] = []
    for rec in iter_records(path, fmt=fmt, user_id=user_id, csv_options=csv_options):
        if rec.error is not None:
            if strict:
                raise ImportFormatError(rec.error)
            continue
        try:
            out.append(decode(UserAction, rec.payload))
        except ValidationError as exc:
            if strict:
                raise ImportFormatError(f"line {rec.line}: {exc.reason}") from None
    return out


def bundled_log() -> tuple[Path, Format]:
    """The real UI log shipped in the package (Leno et al.'s StudentRecord, Action Logger format)."""
    path = Path(__file__).resolve().parent / "data" / "StudentRecord.csv"
    if not path.is_file():
        raise ImportFormatError(f"bundled log missing: {path}")
    return path, "actionlogger"
