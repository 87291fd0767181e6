"""Production adapters: the action API bound to real things instead of the simulator.

The adapter contract (see `rote.generator.runtime` for the full description) is one method,

    perform(op, target, value) -> str | None

raising `Unsupported` for operations the adapter does not handle (so `Composite` tries the next one)
and `ActionError` when the action fails. The adapters live in the runtime module because they must
also work where only the standard library exists (the script's own folder, a user's machine without
rote installed); this module is their documented, typed home for callers inside rote.

Shipped adapters:
- `Files(root)`: file-system operations confined to `root` (no `..`, no escaping symlinks).
- `HttpForms()`: fields filled locally; clicking a submit element POSTs them form-encoded with urllib;
  link clicks and open_url GET the page; wait_for polls until the page answers.
- `CsvSheets(root)`: spreadsheet cells read from CSV exports (`Book.xlsx` is read as `Book.csv`).
- `Composite([...])`: first adapter that handles an operation wins; `production_driver(root)` is the
  binding a generated script gets with `--driver prod`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from rote.generator.runtime import (
    ActionError,
    Api,
    Composite,
    CsvSheets,
    Files,
    HttpForms,
    Simulator,
    Unsupported,
    make_driver,
)


class Driver(Protocol):
    def perform(self, op: str, target: dict[str, str], value: str | None) -> str | None: ...


def production_driver(root: Path) -> Any:
    return make_driver("prod", root=root, world=None)


__all__ = [
    "ActionError",
    "Api",
    "Composite",
    "CsvSheets",
    "Driver",
    "Files",
    "HttpForms",
    "Simulator",
    "Unsupported",
    "production_driver",
]
