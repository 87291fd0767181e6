"""Consoles for command output that fits any width, on a terminal or not.

`rich` lays out for 80 columns when stdout is not a terminal, so a table piped to a file or a CI log was cut
to 80 columns. Here the width is the terminal's, else `COLUMNS`, else 120, and tables are built to fold
long cells onto more lines rather than cut them (`rote.cli.console.table`), so no character is lost at
any width.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from rote.report.units import visible

#: Width when the output is not a terminal and `COLUMNS` is not set.
DEFAULT_WIDTH = 120


def _width(stream: Any) -> int | None:
    if stream.isatty():
        return None  # rich asks the terminal
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and int(raw) >= 20 else DEFAULT_WIDTH


def out_console() -> Console:
    """A console on stdout for results (summaries, tables)."""
    return Console(width=_width(sys.stdout), soft_wrap=False)


def err_console() -> Console:
    """A console on stderr for progress and errors."""
    return Console(stderr=True, width=_width(sys.stderr))


#: Widest a column kept on one line may claim (the others still need room at 80 columns).
MAX_WHOLE_WIDTH = 48


def table(
    *columns: str,
    title: str | None = None,
    numeric: tuple[str, ...] = (),
    whole: dict[str, int] | None = None,
) -> Table:
    """A table whose every column folds (wraps inside words when it must) instead of being cut short.

    `whole` maps columns to the width of their longest cell: ids a reader copies into the next command
    (`rote automations show ID`) stay on one line up to `MAX_WHOLE_WIDTH`, and the other columns fold.
    """
    t = Table(title=title)
    for name in columns:
        width = min((whole or {}).get(name, 0), MAX_WHOLE_WIDTH)
        t.add_column(
            name,
            overflow="fold",
            justify="right" if name in numeric else "left",
            min_width=width or None,
        )
    return t


def fit(t: Table, width: int) -> Table:
    """Fix the columns' widths so the table fits `width`: the widest columns give up characters first
    (their cells fold), a `whole` column (`min_width`) and a header never shrink. Rich measures a column's
    minimum as its longest word and, when that cannot fit, cuts the table's right-hand columns off: one URL
    in a reason made `automations list` lose its `p50` column at 120 columns (a new user's listing)."""
    from rich.cells import cell_len

    columns = t.columns
    natural = []
    floor = []
    for col in columns:
        cells = [str(c) for c in col.cells]
        longest = max((cell_len(line) for c in cells for line in c.splitlines()), default=0)
        head = cell_len(str(col.header))
        natural.append(max(longest, head, col.min_width or 0))
        floor.append(max(head, col.min_width or 0))
    room = width - (len(columns) + 1) - 2 * len(columns)  # borders, and one space each side of a cell
    widths = list(natural)
    while sum(widths) > room:
        k = max(range(len(widths)), key=lambda i: (widths[i] - floor[i] > 0, widths[i]))
        if widths[k] <= floor[k]:
            break  # nothing left to give: as narrow as it can be
        widths[k] -= 1
    for col, w in zip(columns, widths, strict=True):
        col.width = w
    return t


def add_row(t: Table, *cells: str) -> None:
    """Add a row of plain text: names, reasons and values come from users' logs, so a ``[first]`` in a
    field name is text, not rich markup to be swallowed, and control characters are shown, not obeyed."""
    from rich.text import Text

    t.add_row(*(Text(visible(c)) for c in cells))
