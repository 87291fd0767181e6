"""Importers: turn the UI logs that real loggers write into `UserAction` events.

Formats (``--format``; ``auto``, the default of `rote run` and `rote produce`, picks one from the file):

* ``actionlogger`` -- the Action Logger browser/Excel plug-in CSV (Leno et al.): ``timeStamp, userID,
  targetApp, eventType, url, content, target.*``.
* ``bosco`` -- the simulated Excel-to-Web logs of Bosco et al.: ``caseID, eventType, timeStamp, source,
  lifecycle:transition`` and per-log attribute columns (``Label, Value, Sheet, FileName, Url ...``).
* ``jsonl`` -- one JSON object per line: a `UserAction` (our own schema; a ``labels`` object is kept aside),
  or another tool's record, read by its columns (``jsondoc``).
* ``json`` -- a JSON array of records (another tool's export, or `UserAction` objects), same rules.
* ``csv`` -- any other delimited log. Process-mining exports (``concept:name``, ``time:timestamp``,
  ``case:concept:name``, ``org:resource``) and common names (``timestamp``, ``activity`` ...) are understood
  as they are; `CsvOptions` names other columns.
* ``xes`` -- IEEE 1849 XES event logs (also gzipped), streamed.

The seams: `sniff` looks at the file (compression, encoding, binary, delimiter, format), `formats` maps one
row, `xes` streams XES events into rows, `jsondoc` reads JSON lines and arrays (nested records flattened into
dotted columns), `rows` holds the row and record types and caps they share, `readers` turns rows into
validated records with the importer's own error reasons, `stats` counts what became of every row,
`options` holds what a person can tell an importer.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rote.errors import ImportFormatError
from rote.importers.formats import event_id_for, parse_timestamp
from rote.importers.jsondoc import document_hint, not_events_hint
from rote.importers.options import (
    FORMATS,
    INSTANCE_LABEL,
    ROUTINE_LABEL,
    CsvOptions,
    Format,
    max_event_bytes,
    parse_action_map,
    parse_delimiter,
)
from rote.importers.readers import ImportedRecord, iter_records, resolve_format
from rote.importers.stats import INVALID_KINDS, ImportStats
from rote.privacy import redact_bytes
from rote.streams.schemas import DeadLetter, UserAction, decode
from rote.streams.topics import USER_ACTIONS

#: The `agent` of dead letters written for rows an importer rejected.
IMPORTER_AGENT = "importer"

__all__ = [
    "FORMATS",
    "IMPORTER_AGENT",
    "INSTANCE_LABEL",
    "INVALID_KINDS",
    "ROUTINE_LABEL",
    "CsvOptions",
    "Format",
    "ImportStats",
    "ImportedLog",
    "ImportedRecord",
    "bundled_log",
    "dead_letter",
    "event_id_for",
    "iter_records",
    "load_actions",
    "max_event_bytes",
    "metric_reason",
    "parse_action_map",
    "parse_delimiter",
    "parse_timestamp",
    "read_log",
    "resolve_format",
]


@dataclass(frozen=True, kw_only=True)
class ImportedLog:
    """A whole file read for the pipeline: its records in replay order and what became of every row."""

    path: Path
    records: list[ImportedRecord]
    stats: ImportStats

    @property
    def valid(self) -> int:
        return self.stats.valid

    @property
    def invalid(self) -> int:
        return self.stats.invalid_total


def read_log(
    path: Path,
    *,
    fmt: Format = "auto",
    user_id: str = "user-1",
    csv_options: CsvOptions | None = None,
    validate: bool = True,
) -> ImportedLog:
    """Read all of `path` before anything is sent, so a file that cannot be used fails before a broker starts.

    Raises `ImportFormatError` (one line, naming the file) when the file is unreadable, has no rows, or
    holds no valid event at all; a file with some invalid rows is returned with them as error records.
    """
    stats = ImportStats()
    records = list(
        iter_records(path, fmt=fmt, user_id=user_id, csv_options=csv_options, stats=stats, validate=validate)
    )
    name = Path(path).name
    if stats.rows == 0:
        raise ImportFormatError(f"{name} has no rows (only a header or blank lines)")
    if validate and stats.valid == 0:
        first = min(stats.invalid, key=lambda k: -stats.invalid[k]) if stats.invalid else None
        detail = f"; first: {stats.first[first]}" if first else ""
        why = ", ".join(f"{n} {k}" for k, n in sorted(stats.invalid.items(), key=lambda kv: -kv[1]))
        hint = not_events_hint(stats)
        if stats.format == "jsonl" and set(stats.invalid) == {"not JSON"}:
            hint += document_hint(Path(path), stats.encoding or "utf-8")
        raise ImportFormatError(
            f"{name} has no valid event: {stats.rows} rows ({why or 'all skipped'}){detail}{hint}"
        )
    # the same record again (an export written twice): same user, id and time, which discovery takes once
    seen: set[Any] = set()
    for rec in records:
        if rec.error is None:
            p = rec.payload
            key = (p.get("user_id"), p.get("event_id"), p.get("timestamp"))
            if key in seen:
                stats.repeated_ids += 1
            else:
                seen.add(key)
    return ImportedLog(path=Path(path), records=records, stats=stats)


def load_actions(
    path: Path,
    *,
    fmt: Format = "auto",
    user_id: str = "user-1",
    csv_options: CsvOptions | None = None,
    strict: bool = False,
    stats: ImportStats | None = None,
) -> list[UserAction]:
    """Validated `UserAction`s of a file, for in-process use.

    Invalid rows are left out unless `strict` (then the first raises), and counted in `stats` when given:
    a caller that shows results from these actions should also show `stats.describe()`.
    """
    out: list[UserAction] = []
    for rec in iter_records(path, fmt=fmt, user_id=user_id, csv_options=csv_options, stats=stats):
        if rec.error is not None:
            if strict:
                raise ImportFormatError(rec.error)
            continue
        out.append(rec.action if rec.action is not None else decode(UserAction, rec.payload))
    return out


def dead_letter(rec: ImportedRecord, source: Path, *, now: datetime | None = None) -> DeadLetter:
    """The dead letter of a row an importer rejected, with the importer's reason (file, line, cause).

    The row is kept as read, cut to its first 64 KB when larger (`payload_bytes` then holds its size), so
    a 30 MB line cannot in turn be too large for the dead-letter topic.
    """
    if rec.error is None:
        raise ValueError("only a rejected record has a dead letter")
    raw = rec.raw or repr(rec.payload).encode()[:65536]
    size = rec.raw_size or len(raw)
    raw = redact_bytes(raw)  # the row as read may hold what a person typed (rote.privacy)
    return DeadLetter(
        source_topic=USER_ACTIONS.name,
        reason=f"{source.name} {rec.error}"[:4000],
        field="timestamp" if rec.kind in ("bad timestamp", "implausible time") else None,
        payload_b64=base64.b64encode(raw).decode(),
        payload_bytes=size if size > len(raw) else None,
        key_b64=None,
        received_at=now or datetime.now(UTC),
        agent=IMPORTER_AGENT,
    )


_METRIC_REASONS = {
    "encoding": "encoding",
    "not JSON": "json",
    "not an object": "shape",
    "missing value": "missing_field",
    "columns": "shape",
    "unreadable row": "shape",
    "broken XML": "shape",
    "too large": "other",
}


def metric_reason(kind: str | None) -> str:
    """The `rote_dead_letters_total` reason label (a closed set) of an importer error kind."""
    return _METRIC_REASONS.get(kind or "", "invalid_field")


def bundled_log() -> tuple[Path, Format]:
    """The real UI log shipped in the package (Leno et al.'s StudentRecord, Action Logger format)."""
    path = Path(__file__).resolve().parent.parent / "data" / "StudentRecord.csv"
    if not path.is_file():
        raise ImportFormatError(f"bundled log missing: {path}")
    return path, "actionlogger"
