"""The action API generated Python automations run against, and the drivers it binds to.

This module is shipped verbatim next to a generated script (as `rote_runtime.py`) into the sandbox,
which has nothing but the Python standard library, so it imports nothing outside the stdlib. The same
code serves production: the API is bound either to the simulator (a world of spreadsheet cells, form
fields, a clipboard and a real but confined file tree, built from a test case's `environment`) or to
real drivers (files, HTTP forms, CSV workbooks). Every action is recorded with its step index and
duration; the verdict is computed from that recording by `rote.generator.verify` *outside* the jail.

Driver interface (the adapter contract): a driver is any object with

    def perform(self, op: str, target: dict[str, str], value: str | None) -> str | None

that raises `Unsupported` for operations it does not handle and `ActionError` when the action fails.
`op` is one of the action-API operations (copy_cell, read_cell, paste, fill_field, copy, click, open_url,
open_file, read_file, write_file, copy_file, move_file, make_dir, delete_file, wait_for); `target` holds
the identifying fields (workbook, sheet, cell, field, element, element_type, url, file, title); the
return value is what the action produced (the cell read, the clipboard pasted, the file's text).
`Composite` tries drivers in order, so a production binding is e.g. Composite([CsvSheets(root),
HttpForms(), Files(root)]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

RUNTIME_VERSION = "1"


class ActionError(Exception):
    """An action could not be done (missing file, form rejected, ...): the run fails here.

    The API stamps the failing step's index, operation and target on the exception as it passes (a
    driver does not know which step it is serving), so the error a person reads names the step and the
    target, and the executor can report `failed_step`.
    """

    step: int | None = None
    op: str | None = None
    target: dict[str, str] | None = None

    def where(self) -> str:
        """'step 12 (fill_field field=date)' or '' when not stamped."""
        if self.step is None:
            return ""
        shown = " ".join(f"{k}={v!r}" for k, v in sorted((self.target or {}).items()) if k != "url")
        return f"step {self.step} ({self.op}{' ' + shown if shown else ''})"

    def __str__(self) -> str:
        msg = super().__str__()
        where = self.where()
        return f"{where}: {msg}" if where else msg


class Unsupported(ActionError):
    """The bound driver cannot do this kind of action."""


# --------------------------------------------------------------------------------------------------
# value helpers used by generated code (same semantics as rote.generator.exprs)
# --------------------------------------------------------------------------------------------------


def split(value: str, sep: str, idx: int) -> str:
    pieces = value.split(sep)
    if not sep or not -len(pieces) <= idx < len(pieces):
        raise ActionError(f"no piece {idx} when splitting {len(value)} chars on {sep!r}")
    return pieces[idx]


def concat(*parts: str) -> str:
    return "".join(parts)


def strip(value: str) -> str:
    return value.strip()


def lower(value: str) -> str:
    return value.lower()


def upper(value: str) -> str:
    return value.upper()


def cellref(col: str, row: str, offset: int) -> str:
    try:
        n = int(row.strip())
    except ValueError:
        raise ActionError(f"row {row!r} is not a number") from None
    if n + offset < 1:
        raise ActionError(f"row {n}{offset:+d} is before the first row")
    return f"{col}{n + offset}"


def flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "y", "on"):
        return True
    if v in ("0", "false", "no", "n", "off", ""):
        return False
    raise ActionError(f"not a yes/no value: {value!r}")


# --------------------------------------------------------------------------------------------------
# drivers
# --------------------------------------------------------------------------------------------------


def relative_parts(path: str) -> list[str]:
    """An automation's path as components below its root (drive letters and leading / dropped)."""
    p = path.replace("\\", "/")
    if len(p) >= 2 and p[1] == ":":  # a Windows drive letter from the log
        p = p[2:]
    parts = [part for part in PurePosixPath(p).parts if part not in ("/", "", ".")]
    if not parts or ".." in parts or "\x00" in p:
        raise ActionError(f"refusing path {path!r}")
    return parts


def _confine(root: Path, path: str) -> Path:
    """Map an automation's path into `root`; refuse anything that would leave it (.., symlinks).

    No part of the path may be a symbolic link, the last one included: checking only where the parent
    resolves let `read_file`/`write_file` follow a link planted as the file itself to anywhere (an
    attacker's sweep). The Bash runtime's `rote_path` refuses the same paths."""
    parts = relative_parts(path)
    full = root.joinpath(*parts)
    real_root = root.resolve()
    parent = full.parent.resolve()
    if parent != real_root and real_root not in parent.parents:
        raise ActionError(f"path {path!r} leaves the automation's root")
    cur = root
    for part in parts:
        cur = cur / part
        if cur.is_symlink():
            raise ActionError(f"path {path!r} goes through a symbolic link ({part!r})")
    return full


class Files:
    """Real file-system operations, confined to `root` (the user's chosen folder, or the jail's world)."""

    OPS = ("read_file", "write_file", "copy_file", "move_file", "make_dir", "delete_file", "open_file")

    def __init__(self, root: Path) -> None:
        self.root = root

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        if op not in self.OPS:
            raise Unsupported(op)
        if "file" not in target:
            raise ActionError(f"{op} needs a file target")
        path = _confine(self.root, target["file"])
        try:
            if op == "read_file":
                return path.read_bytes().decode("utf-8", errors="surrogateescape")  # bytes: keep \r\n as is
            if op == "write_file":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes((value or "").encode("utf-8", errors="surrogateescape"))
                return value
            if op in ("copy_file", "move_file"):
                if not value:
                    raise ActionError(f"{op} needs a destination")
                dest = _confine(self.root, value)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if op == "copy_file":
                    shutil.copyfile(path, dest)
                else:
                    os.replace(path, dest)
                return value
            if op == "make_dir":
                path.mkdir(parents=True, exist_ok=True)
                return None
            if op == "delete_file":
                path.unlink()
                return None
            if not path.exists():  # open_file: the file must be there; showing it is the desktop's job
                raise ActionError(f"no such file {target['file']!r}")
            return None
        except OSError as exc:
            raise ActionError(f"{op} {target['file']!r}: {exc.strerror or exc}") from None


class CsvSheets:
    """Spreadsheet cells read from CSV exports: workbook "X.xlsx" is looked up as X.csv under root."""

    def __init__(self, root: Path, clipboard: list[str] | None = None) -> None:
        self.root = root
        self.clipboard = clipboard if clipboard is not None else [""]
        self._cache: dict[str, list[list[str]]] = {}

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        if op not in ("copy_cell", "read_cell"):
            raise Unsupported(op)
        import csv

        wb = target.get("workbook", "")
        stem = wb.rsplit(".", 1)[0] if "." in wb else wb
        if stem not in self._cache:
            path = _confine(self.root, stem + ".csv")
            try:
                with path.open(newline="", encoding="utf-8") as fh:
                    self._cache[stem] = list(csv.reader(fh))
            except OSError as exc:
                raise ActionError(f"workbook {wb!r}: {exc.strerror or exc}") from None
        col, row = _split_cell(target.get("cell", ""))
        rows = self._cache[stem]
        got = rows[row - 1][col] if row - 1 < len(rows) and col < len(rows[row - 1]) else ""
        if op == "copy_cell":
            self.clipboard[0] = got
        return got


def _split_cell(cell: str) -> tuple[int, int]:
    letters = "".join(ch for ch in cell if ch.isalpha())
    digits = "".join(ch for ch in cell if ch.isdigit())
    if not letters or not digits or letters + digits != cell.replace("$", ""):
        raise ActionError(f"not a cell address: {cell!r}")
    col = 0
    for ch in letters.upper():
        col = col * 26 + (ord(ch) - 64)
    return col - 1, int(digits)


class HttpForms:
    """Web forms over plain HTTP: fields are filled locally, a click on a submit element POSTs them
    (application/x-www-form-urlencoded) to the form's URL, a link click or open_url GETs the page."""

    def __init__(self, *, timeout: float = 10.0, clipboard: list[str] | None = None) -> None:
        self.timeout = timeout
        self.clipboard = clipboard if clipboard is not None else [""]
        self.forms: dict[str, dict[str, str]] = {}
        self.last_url: str | None = None
        self.responses: list[tuple[str, int]] = []

    def _request(self, url: str, data: bytes | None = None) -> int:
        if not url.startswith(("http://", "https://")):
            raise ActionError(f"not an http(s) URL: {url!r}")
        req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            raise ActionError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ActionError(f"{url}: {exc}") from None
        self.responses.append((url, status))
        return status

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        url = target.get("url") or self.last_url or ""
        name = target.get("field") or target.get("element")
        if op == "open_url":
            self.last_url = url
            self._request(url)
            return None
        if op == "wait_for":
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    self._request(url)
                    return None
                except ActionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        if op in ("fill_field", "paste"):
            if not name:
                raise ActionError(f"{op} needs a field")
            form = self.forms.setdefault(url, {})
            text = value if op == "fill_field" else self.clipboard[0]
            form[name] = (form.get(name, "") + (text or "")) if op == "paste" else (text or "")
            self.last_url = url
            return text
        if op == "copy":
            self.clipboard[0] = value or ""
            return value
        if op == "click":
            kind = (target.get("element_type") or "").lower()
            if kind == "submit":
                body = urllib.parse.urlencode(self.forms.pop(url, {})).encode()
                self._request(url, body)
            elif kind in ("checkbox", "radio"):
                self.forms.setdefault(url, {})[name or "on"] = "on"
            elif kind == "link":
                self._request(url)
            else:
                raise Unsupported(f"click on a {kind or 'plain'} element over HTTP")
            return None
        raise Unsupported(op)


class Simulator:
    """The sandbox world: spreadsheet cells and a clipboard in memory, form fields per URL, and a real
    file tree under `root` (so Python and Bash automations act on the same files)."""

    def __init__(self, environment: Mapping[str, Any], root: Path) -> None:
        self.sheets: dict[str, dict[str, dict[str, str]]] = {
            str(wb): {str(sh): {str(c): str(v) for c, v in cells.items()} for sh, cells in sheets.items()}
            for wb, sheets in dict(environment.get("sheets", {})).items()
        }
        self.clipboard = str(environment.get("clipboard", ""))
        self.forms: dict[str, dict[str, str]] = {}
        self.submitted: list[tuple[str, dict[str, str]]] = []
        self.opened: list[str] = []
        self.files = Files(root)

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        if op in ("copy_cell", "read_cell"):
            sheet = self.sheets.get(target.get("workbook", ""), {}).get(target.get("sheet", ""), {})
            got = sheet.get(target.get("cell", ""), "")
            if op == "copy_cell":
                self.clipboard = got
            return got
        if op == "copy":
            self.clipboard = value or ""
            return self.clipboard
        url = target.get("url", "")
        name = target.get("field") or target.get("element") or ""
        if op == "paste":
            form = self.forms.setdefault(url, {})
            form[name] = form.get(name, "") + self.clipboard
            return self.clipboard
        if op == "fill_field":
            self.forms.setdefault(url, {})[name] = value or ""
            return value
        if op == "click":
            if (target.get("element_type") or "").lower() == "submit":
                self.submitted.append((url, self.forms.pop(url, {})))
            return None
        if op == "open_url":
            self.opened.append(url)
            return None
        if op == "wait_for":
            return None
        if op in Files.OPS:
            return self.files.perform(op, target, value)
        raise Unsupported(op)


class Composite:
    def __init__(self, drivers: Sequence[Any]) -> None:
        self.drivers = list(drivers)

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        for d in self.drivers:
            try:
                return d.perform(op, target, value)
            except Unsupported:
                continue
        raise Unsupported(f"no driver handles {op}")


# --------------------------------------------------------------------------------------------------
# the API and its recorder
# --------------------------------------------------------------------------------------------------


class Api:
    """What generated code calls: one method per operation, each recorded with its step and duration."""

    def __init__(self, driver: Any, record: IO[str] | None = None) -> None:
        self.driver = driver
        self.record = record

    def _do(self, step: int, op: str, target: Mapping[str, str], value: str | None = None) -> str | None:
        t0 = time.perf_counter()
        try:
            got = self.driver.perform(op, dict(target), value)
        except ActionError as exc:
            if exc.step is None:
                exc.step, exc.op, exc.target = step, op, dict(target)
            raise
        dt = time.perf_counter() - t0
        if self.record is not None:
            shown = got if op in ("copy_cell", "read_cell", "paste", "read_file") else value
            row = {"step": step, "op": op, "target": dict(target), "value": shown, "duration_seconds": dt}
            self.record.write(json.dumps(row, ensure_ascii=True) + "\n")
            self.record.flush()
        return got

    def copy_cell(self, step: int, **target: str) -> str:
        return self._do(step, "copy_cell", target) or ""

    def read_cell(self, step: int, **target: str) -> str:
        return self._do(step, "read_cell", target) or ""

    def paste(self, step: int, **target: str) -> str:
        return self._do(step, "paste", target) or ""

    def read_file(self, step: int, **target: str) -> str:
        return self._do(step, "read_file", target) or ""

    def fill_field(self, step: int, value: str, **target: str) -> str:
        self._do(step, "fill_field", target, value)
        return value

    def copy(self, step: int, value: str, **target: str) -> str:
        self._do(step, "copy", target, value)
        return value

    def write_file(self, step: int, value: str, **target: str) -> str:
        self._do(step, "write_file", target, value)
        return value

    def copy_file(self, step: int, value: str, **target: str) -> str:
        self._do(step, "copy_file", target, value)
        return value

    def move_file(self, step: int, value: str, **target: str) -> str:
        self._do(step, "move_file", target, value)
        return value

    def click(self, step: int, **target: str) -> None:
        self._do(step, "click", target)

    def open_url(self, step: int, **target: str) -> None:
        self._do(step, "open_url", target)

    def open_file(self, step: int, **target: str) -> None:
        self._do(step, "open_file", target)

    def make_dir(self, step: int, **target: str) -> None:
        self._do(step, "make_dir", target)

    def delete_file(self, step: int, **target: str) -> None:
        self._do(step, "delete_file", target)

    def wait_for(self, step: int, **target: str) -> None:
        self._do(step, "wait_for", target)


def _load_params(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}
    if args.params:
        with open(args.params, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ActionError("--params must hold a JSON object of strings")
        params.update(data)
    for item in args.set or ():
        name, sep, val = item.partition("=")
        if not sep:
            raise ActionError(f"--set needs NAME=VALUE, got {item!r}")
        params[name] = val
    return params


def make_driver(kind: str, *, root: Path, world: Mapping[str, Any] | None) -> Any:
    if kind == "sim":
        return Simulator(world or {}, root)
    if kind == "prod":
        clipboard = [""]
        return Composite([CsvSheets(root, clipboard), HttpForms(clipboard=clipboard), Files(root)])
    raise ActionError(f"unknown driver {kind!r}")


def main(
    run: Callable[[Api, Mapping[str, str]], None], parameters: Sequence[str], argv: Sequence[str]
) -> int:
    """Entry point of every generated script: parse inputs, bind the API, run, report."""
    ap = argparse.ArgumentParser(description="Run a rote automation.")
    ap.add_argument("--params", help="JSON object of parameter values")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE", help="one parameter value")
    ap.add_argument("--driver", default="prod", choices=("sim", "prod"))
    ap.add_argument("--world", help="simulated world (a test case's environment as JSON), for --driver sim")
    ap.add_argument("--root", default=".", help="folder the automation's files live in")
    ap.add_argument("--record", help="append a JSON line per action here")
    args = ap.parse_args(list(argv))
    record: IO[str] | None = None
    try:
        params = _load_params(args)
        missing = [p for p in parameters if p not in params]
        if missing:
            raise ActionError(f"missing parameters: {', '.join(missing)}")
        world = None
        if args.world:
            with open(args.world, encoding="utf-8") as fh:
                world = json.load(fh)
        driver = make_driver(args.driver, root=Path(args.root), world=world)
        record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
        run(Api(driver, record), params)
    except (ActionError, OSError, ValueError) as exc:
        msg = f"{type(exc).__name__}: {exc}"
        if record is not None:
            record.write(json.dumps({"error": msg}, ensure_ascii=True) + "\n")
        print(f"automation failed: {msg}", file=sys.stderr)
        return 3
    finally:
        if record is not None:
            record.close()
    return 0
