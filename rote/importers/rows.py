"""What every reader produces: a row as read (`Row`), the record it becomes (`ImportedRecord`), and the
caps and cuts that keep one bad or huge row from costing more than itself.

Split from `readers.py` so the delimited and XES readers there and the JSON readers (`jsondoc.py`) share
them without importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rote.importers.formats import Columns, LeftOut, labels_from, map_row, skip_reason, user_of
from rote.importers.options import Format
from rote.importers.sniff import UNDECODABLE
from rote.importers.stats import kind_of
from rote.streams.schemas import UserAction

#: How much of an invalid row a dead letter keeps (the rest is counted in `raw_size`).
RAW_KEEP_BYTES = 64 * 1024


#: How a row that does not decode in the file's encoding ends its error (a lone surrogate escape in JSON
#: is an `encoding` row too, but says nothing about the file's encoding).
UNDECODED_HINT = "(pass --encoding)"


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
class Row:
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
    #: the tally's kind of a skipped row
    skip_kind: str = "not a completed event"
    #: one of rote's own events (JSON with `timestamp` and `action_type`), taken as it is, not mapped
    own_event: bool = False


def capped(text: str) -> tuple[bytes, int]:
    data = text.encode("utf-8", UNDECODABLE)  # a line's undecodable bytes as they were (`open_text`)
    return data[:RAW_KEEP_BYTES], len(data)


def human_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} B"


def too_large(line: int, size: int, cap: int) -> str:
    return (
        f"line {line}: {human_bytes(size)}, over the {human_bytes(cap)} per-event cap (ROTE_MAX_EVENT_BYTES)"
    )


def bounded_lines(fh: IO[str], cap: int, oversized: dict[int, tuple[int, str]]) -> Iterator[str]:
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


#: Cells up to this long are read as field labels when looking for a password field in a rejected row.
_LABEL_CHARS = 64


def without_passwords(row: Sequence[str], header: Sequence[str], cols: Columns) -> list[str]:
    """A rejected CSV row's cells with what was typed into a password field replaced by `<password>`.

    A row that failed to map never becomes an event, so the redactor's field-aware rule (a value typed
    into a field labelled "Password" is a password) never sees it; its raw cells go to the dead letters.
    Here the same rule is applied to the cells: a column whose name is a password field's is redacted, and
    when a short cell of the row names a password field (the logger's label or element column), the row's
    value columns are, or, when the file has none, every cell but the time, action, application, user
    and label cells (a dead letter then says less, and keeps no password); in a row of another width than
    the header, every cell from the first value column on but the label.
    """
    from rote.privacy import PASSWORD_MARKER, default_redactor
    from rote.privacy.labels import label_kinds

    config = default_redactor().config
    if not (config.redact and config.redact_password):
        return list(row)
    names = [*header, *[""] * max(0, len(row) - len(header))]
    context = [i for i, v in enumerate(row) if 0 < len(v) <= _LABEL_CHARS and "password" in label_kinds(v)]
    keep = {cols.time, *cols.action, *cols.app, cols.user}
    # A row wider than its header most often holds a value with the delimiter in it (`Herbst;Kennw0rt`
    # typed into a password field): which cells the value spans is unknown, so every cell from the first
    # value column on is taken (every cell but the label, without value columns).
    shifted = len(row) != len(header)
    first_value = min((i for i, n in enumerate(header) if n in cols.value), default=0) if cols.value else 0
    # ... and from a password column on, when the file has one: its value may have split too
    first_secret = min((i for i, n in enumerate(header) if "password" in label_kinds(n)), default=len(row))
    out = list(row)
    for i, (name, v) in enumerate(zip(names, row, strict=False)):
        if not v.strip() or i in context:
            continue
        typed = name in cols.value if cols.value else name not in keep
        if shifted and i >= first_value:
            typed = True
        if "password" in label_kinds(name) or (context and typed) or (shifted and i >= first_secret):
            out[i] = PASSWORD_MARKER
    return out


def mapped_row(
    line: int,
    values: dict[str, str],
    cols: Columns,
    fmt: Format,
    cap: int,
    *,
    size: int | None = None,
    kept: Callable[[], tuple[bytes, int]] | None = None,
) -> Row:
    """One row of named text cells (a delimited row, an XES event, a flattened JSON record) mapped to an
    event's payload, or the reason it cannot be. Its dead letter keeps the cells, a password field's value
    taken out: `kept` gives those bytes and the row's full size (default: the cells as JSON); `size` is
    what the cap is held against (default: keys and cells)."""

    def as_json() -> tuple[bytes, int]:
        data, _ = capped(json.dumps(_guarded(values, cols), ensure_ascii=False)[:RAW_KEEP_BYTES])
        return data, len(data)

    dead = kept or as_json
    size = sum(len(k) + len(v) for k, v in values.items()) if size is None else size
    if size > cap:
        data, _ = dead()
        return Row(line=line, error=too_large(line, size, cap), kind="too large", raw=data, raw_size=size)
    reason = skip_reason(values, cols)
    if reason is not None:
        return Row(line=line, skipped=reason)
    labels = labels_from(values, cols)
    try:
        payload = map_row(fmt, values, cols)
    except LeftOut as out:
        return Row(line=line, skipped=f"{out.action[:60]!r} (--action-map …=ignore)", skip_kind="ignored")
    except ValueError as exc:
        data, full = dead()
        return Row(
            line=line,
            error=f"line {line}: {exc}",
            kind=kind_of(str(exc)),
            raw=data,
            raw_size=full,
            labels=labels,
            payload=_guarded(values, cols),
        )
    return Row(line=line, payload=payload, labels=labels, user=user_of(values, cols))


def _guarded(values: dict[str, str], cols: Columns) -> dict[str, str]:
    names = list(values)
    return dict(zip(names, without_passwords(list(values.values()), names, cols), strict=True))
