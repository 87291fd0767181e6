"""Production drivers: the action API bound to real applications (issue 12).

- `BrowserDriver` (Playwright on the system Chromium): click, paste, fill_field (type, tick, select),
  open_url, wait_for, copy.
- `Sheets` (openpyxl for .xlsx/.xlsm, csv for exports): copy_cell, read_cell, fill_field/paste into a cell.
- `Files` (the standard library): read/write/copy/move/delete files, make_dir, open_file.

`production_driver(...)` binds them, with one clipboard shared by all, behind the runtime's `Composite`
(the first driver that handles an operation does it). The generated script's runtime
(`rote.generator.runtime`) stays standard-library only so the sandbox can run it; these drivers live here,
outside the jail, and the executor (`rote runner`) binds them when it runs a verified automation.
The simulator is for the sandbox's tests only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rote.drivers.browser import CHROMIUM, BrowserDriver
from rote.drivers.files import Files
from rote.drivers.sheets import Sheets
from rote.drivers.targets import SiteMap
from rote.generator.runtime import ActionError, Composite, Unsupported


class Clipboard:
    """The run's clipboard as a driver: `copy` puts a value on it (the other drivers read it)."""

    def __init__(self, box: list[str]) -> None:
        self.box = box

    def perform(self, op: str, target: dict[str, str], value: str | None) -> str | None:
        if op != "copy":
            raise Unsupported(op)
        self.box[0] = value or ""
        return value


@dataclass
class Production:
    """The bound drivers of one run host; `driver` is what the action API calls."""

    driver: Composite
    browser: BrowserDriver
    sheets: Sheets
    files: Files
    clipboard: list[str]

    def begin_run(self) -> None:
        self.clipboard[0] = ""
        if self.browser.started:  # a host without web steps never starts Chromium
            self.browser.begin_run()

    def end_run(self) -> None:
        try:
            self.sheets.close()
        finally:
            self.browser.end_run()

    def close(self) -> None:
        try:
            self.sheets.close()
        finally:
            self.browser.close()


def production_driver(
    *,
    root: Path,
    sites: SiteMap | None = None,
    allowed: Iterable[tuple[str, int]] | None = None,
    step_timeout: float = 10.0,
    executable: str = CHROMIUM,
    profile_root: Path | None = None,
) -> Production:
    clipboard = [""]
    browser = BrowserDriver(
        sites=sites,
        allowed=allowed,
        step_timeout=step_timeout,
        clipboard=clipboard,
        executable=executable,
        profile_root=profile_root,
    )
    sheets = Sheets(root, clipboard)
    files = Files(root)
    driver = Composite([Clipboard(clipboard), sheets, browser, files])
    return Production(driver=driver, browser=browser, sheets=sheets, files=files, clipboard=clipboard)


def bind(driver: Any) -> Any:
    """The object the action API calls (a `Production` or any adapter)."""
    return driver.driver if isinstance(driver, Production) else driver


__all__ = [
    "CHROMIUM",
    "ActionError",
    "BrowserDriver",
    "Clipboard",
    "Files",
    "Production",
    "Sheets",
    "SiteMap",
    "Unsupported",
    "production_driver",
]
