"""What an importer is told about a file: its format, its columns, its delimiter and encoding.

Everything has a default that works on the logs people actually bring: the format, delimiter and encoding are
sniffed, and the column names of the Action Logger, of Bosco et al.'s logs and of process-mining exports
(XES attribute names such as ``concept:name``) are recognised without flags. Flags (`rote run --time-col`,
``--delimiter`` ...) exist for the files that name things differently, and they always win over a guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Literal

from rote.errors import ConfigError

Format = Literal["auto", "actionlogger", "bosco", "jsonl", "json", "csv", "xes"]
#: Every format a command accepts; "auto" picks one of the others from the file (see `sniff.detect_format`).
FORMATS: tuple[str, ...] = ("auto", "actionlogger", "bosco", "jsonl", "json", "csv", "xes")

#: Standard label keys: the ground-truth routine instance and (when known) the routine/variant name.
INSTANCE_LABEL = "instance"
ROUTINE_LABEL = "routine"

# Column names understood without flags, in order of preference. The XES names (IEEE 1849 standard
# extensions: concept, time, org, lifecycle) are what process-mining tools write into CSV exports too.
TIME_COLUMNS = ("timeStamp", "time:timestamp", "timestamp", "Timestamp", "time", "datetime")
ACTION_COLUMNS = ("eventType", "concept:name", "activity", "Activity", "action", "action_type")
INSTANCE_COLUMNS = ("caseID", "case:concept:name", "case_id", "CaseID", "Case ID")
USER_COLUMNS = ("userID", "org:resource", "user_id", "user", "User", "resource")
APP_COLUMNS = ("targetApp", "app", "application", "Application")
VALUE_COLUMNS = ("value", "Value")
LIFECYCLE_COLUMN = "lifecycle:transition"

#: Delimiters tried when sniffing, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}

#: Default cap on one event's size: the broker's message limit is ~1 MiB, and no UI action needs more
#: than a small fraction of it. Bigger rows and lines are dead-lettered by the importer with their size.
DEFAULT_MAX_EVENT_BYTES = 512 * 1024


@dataclass(frozen=True, kw_only=True)
class CsvOptions:
    """How to read a delimited file (and which attributes of an XES event mean what).

    Every field left at None is found in the file: the delimiter and encoding by sniffing, the columns by
    the names above. For ``bosco`` and ``actionlogger`` only the label columns, the user column, the
    delimiter and the encoding are used (their event columns are fixed by the format). ``action_cols``: the
    first column is the action type, the others name the target (joined with ``/`` into ``target.field``),
    e.g. ``("eventType", "Label")``.
    """

    time_col: str | None = None
    action_cols: tuple[str, ...] = ()
    instance_col: str | None = None
    routine_col: str | None = None
    app_col: str | None = None
    value_col: str | None = None
    user_col: str | None = None
    id_col: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    #: (the log's action name, rote's) pairs: a log in another language (`Kopieren`, `Einfügen`) names its
    #: actions in words the automation generator does not know (`parse_action_map`)
    action_map: tuple[tuple[str, str], ...] = ()
    #: the IANA zone (`Europe/Berlin`) of timestamps written without an offset; None: UTC
    timezone: str | None = None
    #: how the log writes its times when they are not ISO-8601, DD.MM.YYYY or epoch numbers: MDY or DMY (a
    #: slashed date, optional 12-hour clock: `11/03/2026 2:05:07 PM`) or a strptime format; None: those only
    time_format: str | None = None

    def __post_init__(self) -> None:
        if self.timezone is not None:
            zone_of(self.timezone)  # an unknown zone is refused here, not at the first row
        if self.time_format is not None:
            object.__setattr__(self, "time_format", check_time_format(self.time_format))
        if self.delimiter is not None:
            object.__setattr__(self, "delimiter", parse_delimiter(self.delimiter))
        if self.encoding is not None:
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(
                    f"unknown encoding {self.encoding!r} (e.g. utf-8, cp1252, latin-1)"
                ) from None


def parse_action_map(text: str) -> tuple[tuple[str, str], ...]:
    """`--action-map`: `LOG=ROTE` pairs, comma separated (`Kopieren=copy,Einfügen=paste`), or the path of
    a file with one pair per line (blank lines and `#` comments skipped; names may hold commas there)."""
    from pathlib import Path

    path = Path(text)
    try:
        is_file = len(text) < 4096 and path.is_file()
    except OSError:  # a long inline list is not a file name ("File name too long")
        is_file = False
    if "=" not in text or is_file:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = f"not LOG=ROTE pairs, nor a file of them ({exc})"
            raise ConfigError(f"action map {text[:80]!r}: {why}") from None
        items = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    else:
        items = [item.strip() for item in text.split(",") if item.strip()]
    pairs: list[tuple[str, str]] = []
    for item in items:
        log_name, sep, rote_name = item.rpartition("=")
        if not sep or not log_name.strip() or not rote_name.strip():
            raise ConfigError(f"action map: expected LOG=ROTE, got {item[:80]!r}")
        pairs.append((log_name.strip(), rote_name.strip()))
    return tuple(pairs)


#: `--time-format` shorthands: the order of month, day and year in a slashed date
DATE_ORDERS = ("MDY", "DMY")


def check_time_format(fmt: str) -> str:
    """`--time-format`: MDY, DMY, or a strptime format with at least one `%` directive."""
    text = fmt.strip()
    if text.upper() in DATE_ORDERS:
        return text.upper()
    if "%" not in text:
        raise ConfigError(
            f"time format {fmt[:40]!r} is neither MDY, DMY nor a strptime format such as "
            "'%m/%d/%Y %I:%M:%S %p'"
        )
    if "%Z" in text:
        # strptime reads a zone name and drops it (the time is naive, then read in --tz): an hour off
        raise ConfigError(
            f"time format {fmt[:40]!r}: %Z (a zone name) is not read; use %z (an offset) or --tz"
        )
    from datetime import datetime

    try:  # a directive strptime does not know (%Q) or a stray % would refuse every row, not the flag
        sample = datetime(2026, 11, 3, 14, 5, 7).strftime(text)
        datetime.strptime(sample, text)
    except ValueError as exc:
        raise ConfigError(f"time format {fmt[:40]!r} is not a strptime format ({exc})") from None
    return text


def zone_of(name: str | None) -> tzinfo:
    """The zone naive timestamps are read in: UTC, or an IANA name such as `Europe/Berlin`."""
    if name is None or name.strip().upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        why = "an IANA name: Europe/Berlin, America/New_York, UTC"
        raise ConfigError(f"unknown time zone {name[:60]!r} ({why})") from None


def parse_delimiter(text: str) -> str:
    """A delimiter as a person types it: ``;``, ``tab`` or ``\\t``, ``comma``, ``pipe``."""
    value = _DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1 or value in '\r\n"':
        raise ConfigError(f"a delimiter is one character such as ';' or 'tab', got {text!r}")
    return value


def max_event_bytes() -> int:
    """`ROTE_MAX_EVENT_BYTES` (default 512 KiB): the largest row, line or event an importer passes on."""
    raw = os.environ.get("ROTE_MAX_EVENT_BYTES")
    if raw is None:
        return DEFAULT_MAX_EVENT_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"ROTE_MAX_EVENT_BYTES={raw!r} is not a whole number of bytes") from None
    if not 1024 <= value <= 16 * 1024 * 1024:
        raise ConfigError("ROTE_MAX_EVENT_BYTES must be between 1024 and 16777216")
    return value
