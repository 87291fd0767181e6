"""`rote bench`: every feature's benchmark in one run, as tables or one JSON object.

Each section is a feature module's `run_benchmark(*, quick)`, which measures its own comparisons side by
side; this command only runs them one after another, times them, and reports. A section that fails is
reported with its error and the others still run, so one broken prerequisite (no bubblewrap, no broker)
does not hide the other numbers; the exit status says something failed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

#: Section name -> module with `run_benchmark(*, quick: bool) -> dict`, in the order they run.
SECTIONS: dict[str, str] = {
    "discovery": "rote.discovery.bench",
    "anomaly": "rote.anomaly.bench",
    "sandbox": "rote.sandbox_runner.bench",
    "pipeline": "rote.pipeline_bench",
    "redaction": "rote.privacy.bench",
}


def parse_only(only: str | None) -> list[str]:
    """Section names from `--only a,b`, in the canonical order; all of them when not given."""
    if not only:
        return list(SECTIONS)
    wanted = [part.strip().lower() for part in only.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in SECTIONS]
    if unknown or not wanted:
        raise typer.BadParameter(
            f"unknown section(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SECTIONS)}",
            param_hint="--only",
        )
    return [name for name in SECTIONS if name in wanted]


def run_section(name: str, *, quick: bool, broker: str | None = None) -> dict[str, Any]:
    """One section's outcome: `ok`, wall `seconds`, and `result` or `error` (with the traceback's tail)."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(SECTIONS[name])
        if broker is not None and "broker" in inspect.signature(module.run_benchmark).parameters:
            result = module.run_benchmark(quick=quick, broker=broker)
        else:
            result = module.run_benchmark(quick=quick)
        if not isinstance(result, dict):
            raise TypeError(f"{SECTIONS[name]}.run_benchmark returned {type(result).__name__}, not a dict")
        outcome: dict[str, Any] = {"ok": True, "result": result}
    except Exception as exc:  # one broken section must not hide the others' numbers
        tail = traceback.format_exc().strip().splitlines()[-6:]
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": tail}
    outcome["seconds"] = round(time.perf_counter() - started, 1)
    return outcome


def machine() -> dict[str, Any]:
    """What the numbers were measured on; load average because the machine is shared."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "load_average_1m": round(load[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested result dicts as dotted keys, so every section fits one two-column table."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = report["machine"]
    console.print(
        f"rote bench ({'quick' if report['quick'] else 'full'}) on {m['cpus']} CPUs, "
        f"load {m['load_average_1m']} -> {report['load_average_1m_end']}, Python {m['python']}"
    )
    for name, outcome in report["sections"].items():
        status = "ok" if outcome["ok"] else "FAILED"
        table = Table(title=f"{name} ({status}, {outcome['seconds']} s)", title_justify="left")
        if outcome["ok"]:
            table.add_column("measure")
            table.add_column("value", justify="right")
            for key, value in flatten(outcome["result"]):
                table.add_row(key, _fmt(value))
        else:
            table.add_column("error", style="red")
            table.add_row(outcome["error"])
            for line in outcome["traceback"]:
                table.add_row(line)
        console.print(table)


def _progress(names: list[str]) -> tuple[Callable[[str], None], Callable[[], None]]:
    """A rich spinner per section on stderr when it is a terminal; plain lines on stderr otherwise."""
    if not sys.stderr.isatty():
        return (lambda name: typer.echo(f"bench: {name} ...", err=True)), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("rote bench", total=len(names))
    progress.start()
    done: list[str] = []

    def start(name: str) -> None:
        if done:
            progress.advance(task)
        done.append(name)
        progress.update(task, description=f"rote bench: {name}")

    def stop() -> None:
        progress.advance(task)
        progress.stop()

    return start, stop


def register(app: typer.Typer) -> None:
    """Add `rote bench` to `app`."""

    @app.command("bench")
    def bench(
        quick: bool = typer.Option(
            False, "--quick", help="Smaller inputs and fewer repeats (about 30 s instead of 2-3 min)."
        ),
        only: str | None = typer.Option(
            None, "--only", help=f"Comma-separated sections to run: {','.join(SECTIONS)} (default: all)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
        out: Path | None = typer.Option(None, "--out", help="Also write the JSON report to this file."),
        broker: str | None = typer.Option(
            None,
            "--broker",
            help="kafka://HOST:PORT for the pipeline section (default: embedded Tansu). Its catalogue "
            "topics are deleted and recreated: never a cluster in use.",
        ),
    ) -> None:
        """Run rote's benchmarks (discovery, anomaly detectors, sandbox, pipeline) and report the numbers.

        Each section measures its comparisons side by side in one run and reports medians and ratios.
        Exits 1 if any section failed; the others still run and are reported.
        """
        names = parse_only(only)
        report: dict[str, Any] = {
            "quick": quick,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "sections": {},
        }
        start, stop = _progress(names)
        try:
            for name in names:
                start(name)
                report["sections"][name] = run_section(
                    name, quick=quick, broker=broker.removeprefix("kafka://") if broker else None
                )
        finally:
            stop()
        report["load_average_1m_end"] = machine()["load_average_1m"]
        pipeline = report["sections"].get("pipeline", {})
        if pipeline.get("ok"):  # the throughput issue's keys, at the top for scripts
            result = pipeline["result"]
            report["pipeline"] = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
        report["ok"] = all(o["ok"] for o in report["sections"].values())
        text = json.dumps(report, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        if as_json:
            typer.echo(text)
        else:
            print_tables(report)
        if not report["ok"]:
            failed = [n for n, o in report["sections"].items() if not o["ok"]]
            typer.echo(f"bench: failed section(s): {', '.join(failed)}", err=True)
            raise typer.Exit(1)
