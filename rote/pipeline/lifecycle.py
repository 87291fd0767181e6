"""What happens around a run: reading the input first, a staging archive, a run log, and how a run ends.

A run can fail in many ways (a file that is not a log, a dead broker, a crashed task) and every one of them
must end the same way: one line saying why, a non-zero exit, and the previous `last-run` archive untouched.
So the input is read and checked before anything starts, the run records into a staging folder that is
swapped in only when the run finished (`rote.archive.publish`), every task reports its failure into the run
state instead of a traceback, and library diagnostics (Faust, aiokafka, kafka-python warnings and
tracebacks) go to the run's log file, leaving the terminal to the progress bars and the summary.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rote.archive import keep_failed, new_run_dir, publish
from rote.config import Settings
from rote.errors import RoteError
from rote.importers import ImportedLog, bundled_log, read_log
from rote.pipeline.options import Progress, RunOptions

log = logging.getLogger("rote.run")
RUN_LOG = "run.log"


@dataclass(frozen=True, kw_only=True)
class RunInput:
    """The replay file read whole, and the staging folder this run records into."""

    replay: Path
    imported: ImportedLog
    run_dir: Path


def prepare(settings: Settings, options: RunOptions) -> RunInput:
    """Read the replay file (the bundled log by default) before any broker or agent starts.

    Raises `ImportFormatError` with one line when the file cannot be a log or holds no valid event, so a bad
    input costs a second, not a broker start-up, and leaves no trace in the state folder.
    """
    from rote.privacy.default import no_new_key_unless_done

    replay, fmt = (options.replay, options.fmt) if options.replay else bundled_log()
    with no_new_key_unless_done():
        imported = read_log(replay, fmt=fmt, user_id=options.user_id, csv_options=options.csv_options)  # type: ignore[arg-type]
    return RunInput(replay=replay, imported=imported, run_dir=new_run_dir(settings.state_dir))


def failed(state: Progress) -> bool:
    return bool(state.error) or state.timed_out


def finish(run_input: RunInput, state: Progress, settings: Settings) -> Path:
    """Swap a finished run's archive in as `last-run`; keep a failed one aside as `failed-run`."""
    if failed(state):
        return keep_failed(run_input.run_dir, settings.state_dir)
    return publish(run_input.run_dir, settings.state_dir)


def abandon(run_input: RunInput, settings: Settings) -> None:
    """The run raised before it could finish: keep what it recorded aside, never over `last-run`."""
    if run_input.run_dir.exists():
        keep_failed(run_input.run_dir, settings.state_dir)


async def guarded(state: Progress, what: str, work: Awaitable[None]) -> None:
    """Await a run task's `work`, recording its failure in `state.error` (one line; the traceback goes to the
    run log) instead of crashing into Faust's logs, so the watcher ends the run and the CLI exits non-zero."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except RoteError as exc:
        state.error = state.error or f"{what}: {exc}"
        log.warning("%s failed", what, exc_info=True)
    except Exception as exc:
        state.error = state.error or f"{what} failed: {type(exc).__name__}: {exc}"
        log.warning("%s failed", what, exc_info=True)


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class _OneLine(logging.Formatter):
    """rote's own errors on the terminal: the message only, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"rote: {record.getMessage()}"


@dataclass
class RunLog:
    path: Path
    counter: _Counter

    @property
    def warnings(self) -> int:
        return self.counter.count


@contextmanager
def run_logging(path: Path) -> Iterator[RunLog]:
    """Send every log record of the run (WARNING and up, with tracebacks) to `path`; on the terminal show
    only rote's own errors, one line each. Python warnings are logged too (they would otherwise print).

    The run's own progress (`rote.run` at INFO: what a run that does not end is waiting for, and when it
    is done) goes to the file too, without counting as a warning.
    """
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    run_logger = logging.getLogger("rote.run")
    saved_run_level = run_logger.level
    run_logger.setLevel(logging.INFO)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setLevel(logging.INFO)
    file_handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == "rote.run")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.ERROR)
    console.addFilter(lambda r: r.name == "rote" or r.name.startswith("rote."))
    console.setFormatter(_OneLine())
    counter = _Counter()
    for h in saved_handlers:
        root.removeHandler(h)
    for h in (file_handler, console, counter):
        root.addHandler(h)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield RunLog(path=path, counter=counter)
    finally:
        logging.captureWarnings(False)
        run_logger.setLevel(saved_run_level)
        for h in (file_handler, console, counter):
            root.removeHandler(h)
        file_handler.close()
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)


def worker_exit(state: Progress, code: Any, run_log: Path) -> None:
    """The Faust worker returned with `code` (its SystemExit status): a non-zero one fails the run."""
    if code not in (0, None) and not state.error:
        state.error = f"the agents' worker stopped with status {code} (details in {run_log})"
