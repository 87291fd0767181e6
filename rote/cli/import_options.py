"""The options every command that reads a UI log shares: `rote run`, `rote produce`, `rote eval discovery`.

One definition, so the same flag means the same thing (and has the same help) wherever a log is read, and a
person who learnt `--delimiter` on one command can use it on the others.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from rote.errors import ConfigError
from rote.importers import CsvOptions, ImportStats


class LogFormat(StrEnum):
    auto = "auto"
    actionlogger = "actionlogger"
    bosco = "bosco"
    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    xes = "xes"


FORMAT_HELP = (
    "Format of the log: auto (from the file), actionlogger, bosco, jsonl (JSON lines), json (a JSON array "
    "of records), csv (any delimited log; the process-mining names concept:name, time:timestamp, "
    "case:concept:name, org:resource are understood), xes (IEEE 1849, also .xes.gz). JSON records that "
    "are not rote events are read by their columns: nested keys as dotted paths (--time-col ts "
    "--action-cols event.type,event.label)."
)

FormatOpt = Annotated[LogFormat, typer.Option("--format", help=FORMAT_HELP)]
DelimiterOpt = Annotated[
    str | None,
    typer.Option("--delimiter", help="Column delimiter, e.g. ';' or tab (default: sniffed from the file)."),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        "--encoding", help="Text encoding, e.g. cp1252 (default: sniffed; UTF-8 with or without BOM)."
    ),
]
TimeColOpt = Annotated[
    str | None,
    typer.Option("--time-col", help="Timestamp column (default: timeStamp, time:timestamp, timestamp, ...)."),
]
ActionColsOpt = Annotated[
    str | None,
    typer.Option(
        "--action-cols",
        help="Action column, then target columns, comma separated (default: eventType, concept:name, ...).",
    ),
]
UserColOpt = Annotated[
    str | None,
    typer.Option("--user-col", help="User column (default: userID, org:resource, user_id, user)."),
]
AppColOpt = Annotated[
    str | None, typer.Option("--app-col", help="Application column (csv/xes; default: targetApp, app).")
]
ValueColOpt = Annotated[
    str | None, typer.Option("--value-col", help="Typed/copied value column (csv/xes; default: value).")
]
IdColOpt = Annotated[
    str | None,
    typer.Option(
        "--id-col",
        help="The log's own event-id column (csv/xes/JSON records; default: none, ids from file and line). "
        "Repeated ids are one event: a record exported twice is counted once.",
    ),
]
ActionMapOpt = Annotated[
    str | None,
    typer.Option(
        "--action-map",
        help="The log's action names as rote's, when they are in another language or a logger's own words: "
        "LOG=ROTE pairs, comma separated (Kopieren=copy,Einfügen=paste,Klicken=click), or a file of one "
        "pair per line. rote's names: copy, paste, click, type, openUrl, waitFor, copyCell, readCell, "
        "editCell, openFile, readFile, writeFile, copyFile, moveFile, createFolder, deleteFile; "
        "LOG=ignore leaves that action's rows out (counted as skipped: 'Fenster aktiviert=ignore').",
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="The time zone of timestamps written without an offset, as an IANA name (Europe/Berlin, "
        "America/New_York). Default: UTC. Timestamps with an offset or Z, and epoch numbers, are read as "
        "they say.",
    ),
]
TimeFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--time-format",
        help="How the log writes times that are not ISO-8601, DD.MM.YYYY hh:mm:ss or epoch numbers: MDY "
        "(11/03/2026 2:05:07 PM, month first) or DMY (03/11/2026 14:05, day first), slashes, dashes or dots, "
        "a 12-hour clock with AM/PM read as such; or a strptime format ('%d %b %Y %H:%M'). Default: none.",
    ),
]
UserIdOpt = Annotated[
    str, typer.Option("--user-id", help="User of the rows when the log has no user column of its own.")
]


def csv_options(
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    time_col: str | None = None,
    action_cols: str | None = None,
    user_col: str | None = None,
    app_col: str | None = None,
    value_col: str | None = None,
    id_col: str | None = None,
    instance_col: str | None = None,
    routine_col: str | None = None,
    action_map: str | None = None,
    tz: str | None = None,
    time_format: str | None = None,
) -> CsvOptions:
    """`CsvOptions` from the shared flags; a bad value is a `ConfigError` naming the flag."""
    cols = tuple(c.strip() for c in (action_cols or "").split(",") if c.strip())
    pairs = _action_map(action_map) if action_map else ()
    try:
        return CsvOptions(
            time_col=time_col,
            action_cols=cols,
            user_col=user_col,
            app_col=app_col,
            value_col=value_col,
            id_col=id_col,
            instance_col=instance_col,
            routine_col=routine_col,
            delimiter=delimiter,
            encoding=encoding,
            action_map=pairs,
            timezone=tz,
            time_format=time_format,
        )
    except ConfigError as exc:
        text = str(exc)
        hint = (
            "--delimiter"
            if "delimiter" in text
            else "--tz"
            if "time zone" in text
            else "--time-format"
            if "time format" in text
            else "--encoding"
        )
        # one line and exit 2, as every bad input (typer's usage box took eight lines for a zone's name)
        raise ConfigError(f"{hint}: {text}") from None


def describe_import(stats: ImportStats, *, limit: int = 6) -> list[str]:
    """What became of the file's rows, for stderr: the headline and one line per kind of invalid row."""
    lines = [f"{stats.path}: {stats.headline()}"]
    details = stats.describe()
    lines += [f"  {d}" for d in details[:limit]]
    if len(details) > limit:
        lines.append(f"  … and {len(details) - limit} more kinds (see the dead-letters topic)")
    return lines


def _action_map(text: str) -> tuple[tuple[str, str], ...]:
    """`--action-map`, each target checked against the names the automation generator knows (a misspelt
    one would only show up later, as every automation rejected)."""
    from rote.generator.plan import UNKNOWN_OP, op_for
    from rote.importers import parse_action_map
    from rote.importers.formats import IGNORE_ACTION

    try:
        pairs = parse_action_map(text)
    except ConfigError as exc:
        raise ConfigError(f"--action-map: {exc}") from None
    unknown = sorted(
        {rote for _, rote in pairs if op_for(rote) == UNKNOWN_OP and rote.casefold() != IGNORE_ACTION}
    )
    if unknown:
        raise ConfigError(
            f"--action-map: {', '.join(map(repr, unknown))} is not an action rote knows "
            "(see --help for its names)"
        )
    return pairs
