"""`rote eval anomalies`: run the performance monitor's detector over a labelled corpus and NAB-score it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rote.anomaly import nab
from rote.anomaly.evaluate import evaluate
from rote.cli.console import out_console
from rote.errors import RoteError

PROFILE_NAMES = tuple(nab.PROFILES)


def register(app: typer.Typer) -> None:
    """Add `anomalies` to the `eval` group."""

    @app.command("anomalies")
    def anomalies(
        data_dir: Annotated[
            Path,
            typer.Argument(
                exists=True,
                file_okay=False,
                help="Folder searched recursively for timestamp,value CSV files (e.g. NAB's data/ folder).",
            ),
        ],
        labels: Annotated[
            Path,
            typer.Option(
                "--labels",
                exists=True,
                dir_okay=False,
                help="NAB windows JSON mapping each dir/file.csv to its list of (start, end) windows.",
            ),
        ],
        profile: Annotated[
            str,
            typer.Option("--profile", help="Profile shown first in the table: " + " | ".join(PROFILE_NAMES)),
        ] = "standard",
        workers: Annotated[
            int, typer.Option("--workers", min=1, help="Files scored in parallel processes.")
        ] = min(2, os.cpu_count() or 1),
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON object with every profile's score.")
        ] = False,
    ) -> None:
        """Run the detector online over every CSV (one configuration for all files) and score it with
        NAB's rules: one threshold for the whole set, optimised per profile, normalised so that a
        perfect detector scores 100 and a silent one 0. Files are scored as published: rows that repeat
        or step back in time are scored under the detector's out-of-order policy, and counted."""
        if profile not in nab.PROFILES:
            raise typer.BadParameter(
                f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}",
                param_hint="--profile",
            )
        err = Console(stderr=True)
        try:
            labels_map = nab.load_windows(labels)
            total = len(nab.discover(data_dir, labels_map))
            with Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=as_json,
            ) as bar:
                task = bar.add_task("detecting", total=total)
                ev = evaluate(data_dir, labels, workers=workers, on_file=lambda _key: bar.advance(task))
        except RoteError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from None

        out: dict[str, Any] = ev.as_dict()
        if as_json:
            typer.echo(json.dumps(out))
            return
        table = Table(title=f"NAB scores: {ev.files} files, {ev.windows} windows")
        for col in ("profile", "score", "threshold", "detected windows", "false positives"):
            table.add_column(col, justify="right" if col != "profile" else "left")
        order = [profile, *(p for p in PROFILE_NAMES if p != profile)]
        for name in order:
            r = ev.results[name]
            table.add_row(
                name,
                f"{r.score:.1f}",
                f"{r.threshold:.4f}",
                f"{r.true_positives}/{r.windows}",
                str(r.false_positives),
            )
        con = out_console()
        con.print(table)
        con.print(f"{ev.events:,} events, {ev.events_per_second:,.0f} events/s per worker", highlight=False)
        counts = ev.out_of_order
        if any(counts.values()):
            con.print(
                f"time order (policy {ev.policy}): {counts['duplicates']:,} rows repeated a timestamp, "
                f"{counts['late']:,} came after a later one ({counts['skipped']:,} skipped) in "
                f"{len(ev.out_of_order_files)} of {ev.files} files",
                highlight=False,
            )
