"""`rote eval discovery`: replay a labelled UI log through routine discovery and score it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rote.discovery import DiscoveryConfig
from rote.discovery.evaluate import SCORE_METRICS, evaluate_file
from rote.errors import RoteError
from rote.importers import FORMATS, CsvOptions


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def register(app: typer.Typer) -> None:
    """Add `discovery` to the `rote eval` group."""

    @app.command("discovery")
    def discovery(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The UI log to replay.")],
        fmt: Annotated[str, typer.Option("--format", help="bosco | actionlogger | csv | jsonl")] = "bosco",
        time_col: Annotated[str, typer.Option("--time-col", help="csv: the timestamp column.")] = "timeStamp",
        action_cols: Annotated[
            str,
            typer.Option(
                "--action-cols", help="csv: action type column, then target columns (comma separated)."
            ),
        ] = "eventType",
        instance_col: Annotated[
            str | None,
            typer.Option(
                "--instance-col", help="Ground-truth instance column (default caseID for bosco/actionlogger)."
            ),
        ] = None,
        routine_col: Annotated[
            str | None, typer.Option("--routine-col", help="Ground-truth routine/variant column.")
        ] = None,
        truth: Annotated[
            Path | None,
            typer.Option(
                "--truth",
                exists=True,
                dir_okay=False,
                help="Score against this segmented log instead of the file's own columns (Leno raw logs).",
            ),
        ] = None,
        patterns: Annotated[
            Path | None,
            typer.Option(
                "--patterns",
                exists=True,
                dir_okay=False,
                help="Known routine patterns (SPMF, Leno labels): report how well each is found.",
            ),
        ] = None,
        min_support: Annotated[
            int, typer.Option("--min-support", min=2, help="Occurrences before a routine counts.")
        ] = 3,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print exactly one JSON object to stdout.")
        ] = False,
    ) -> None:
        """Replay FILE through the task identifier's streaming discovery, in process, and score it.

        Metrics as in ../shared/data/uilogs/README.md: mean best-match Jaccard of routine variants, share
        matched at >= 0.8, occurrence and event precision/recall/F1 (null when the ground truth cannot give
        them). `routines` lists the discovered routines, ranked, with their occurrences' event ids.
        """
        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
        options = CsvOptions(
            time_col=time_col,
            action_cols=tuple(c.strip() for c in action_cols.split(",") if c.strip()),
            instance_col=instance_col,
            routine_col=routine_col,
        )
        err = Console(stderr=True)
        try:
            with Progress(
                TextColumn("discovering"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=as_json and not err.is_terminal,
            ) as bar:
                task = bar.add_task("replay", total=None)

                def tick(n: int, total: int) -> None:
                    bar.update(task, completed=n, total=total)

                out = evaluate_file(
                    file,
                    fmt=fmt,  # type: ignore[arg-type]
                    csv_options=options,
                    truth_path=truth,
                    patterns_path=patterns,
                    config=DiscoveryConfig(min_support=min_support),
                    progress=tick,
                )
        except RoteError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(out))
            return
        con = Console()
        table = Table(title=f"discovery on {file.name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k in (*SCORE_METRICS, "events", "seconds", "events_per_second"):
            table.add_row(k, _fmt(out.get(k)))
        con.print(table)
        for p in out.get("patterns", []):
            con.print(
                f"known pattern of {p['pattern_length']} steps: "
                f"best Jaccard {p['best_jaccard']:.3f} (rank {p['best_rank']})"
            )
        routines = Table(title="routines")
        for c in ("rank", "occurrences", "score", "steps", "routine"):
            routines.add_column(c)
        for r in out["routines"][:20]:
            text = " > ".join(r["routine"])
            routines.add_row(
                str(r["rank"]),
                str(r["occurrences"]),
                f"{r['score']:.1f}",
                str(len(r["routine"])),
                text if len(text) < 120 else text[:117] + "...",
            )
        con.print(routines)
