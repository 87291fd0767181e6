"""`rote eval discovery`: replay a labelled UI log through routine discovery and score it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rote.cli.console import out_console
from rote.cli.import_options import (
    ActionColsOpt,
    ActionMapOpt,
    AppColOpt,
    DelimiterOpt,
    EncodingOpt,
    IdColOpt,
    TimeColOpt,
    TimeFormatOpt,
    TzOpt,
    UserColOpt,
    ValueColOpt,
    csv_options,
    describe_import,
)
from rote.discovery import DiscoveryConfig
from rote.discovery.evaluate import SCORE_METRICS, evaluate_file, log_options
from rote.discovery.interleaved import evaluate_log, iter_folder, read_models, read_reference, setting_k
from rote.errors import ImportFormatError, RoteError
from rote.importers import FORMATS, ImportStats, load_actions
from rote.privacy.default import no_new_key_unless_done
from rote.report.units import visible


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def register(app: typer.Typer) -> None:
    """Add `discovery` to the `rote eval` group."""

    @app.command("discovery")
    def discovery(
        file: Annotated[
            Path,
            typer.Argument(
                exists=True,
                help="The UI log to replay, or a folder of interleaved logs (scores each, with a table).",
            ),
        ],
        fmt: Annotated[str, typer.Option("--format", help=" | ".join(FORMATS))] = "bosco",
        time_col: TimeColOpt = None,
        action_cols: ActionColsOpt = None,
        delimiter: DelimiterOpt = None,
        encoding: EncodingOpt = None,
        user_col: UserColOpt = None,
        app_col: AppColOpt = None,
        value_col: ValueColOpt = None,
        id_col: IdColOpt = None,
        action_map: ActionMapOpt = None,
        tz: TzOpt = None,
        time_format: TimeFormatOpt = None,
        instance_col: Annotated[
            str | None,
            typer.Option(
                "--instance-col",
                help="Ground-truth instance column (default caseID for bosco/actionlogger, "
                "case:concept:name for XES); 'none' when the log's cases are not routine instances.",
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
        gt_models: Annotated[
            Path | None,
            typer.Option(
                "--gt-models",
                exists=True,
                file_okay=False,
                help="Folder of PNML ground-truth routine models: the published best-match metric (top K).",
            ),
        ] = None,
        k: Annotated[
            int | None,
            typer.Option(
                "--k",
                min=1,
                help="Routines scored (default: the number of routine types, e.g. 3 for '*-3r').",
            ),
        ] = None,
        reference: Annotated[
            Path | None,
            typer.Option(
                "--reference",
                exists=True,
                dir_okay=False,
                help="Reference scores CSV (setting,log,authors_mean_jc) shown beside a folder's table "
                "(default: reference_scores.csv next to the folder, if there).",
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print exactly one JSON object to stdout.")
        ] = False,
    ) -> None:
        """Replay FILE through the task identifier's streaming discovery, in process, and score it.

        Metrics as in the UI-log benchmark (docs/discovery.md): mean best-match Jaccard of routine variants,
        share matched at >= 0.8, occurrence and event precision/recall/F1 (null when the ground truth cannot
        give them). `routines` lists the discovered routines, ranked, with their occurrences' event ids.
        """
        if file.is_dir() or gt_models is not None:
            unused = {
                "--format": fmt != "bosco",
                "--user-col": user_col,
                "--app-col": app_col,
                "--value-col": value_col,
                "--id-col": id_col,
                "--instance-col": instance_col,
                "--truth": truth,
                "--patterns": patterns,
            }
            actions = [c.strip() for c in action_cols.split(",")] if action_cols else []
            if len(actions) > 1:
                unused["--action-cols beyond the first (one label column here)"] = True
            if given := [flag for flag, value in unused.items() if value]:
                Console(stderr=True).print(
                    f"[red]error:[/] {', '.join(given)}: not used with --gt-models or a folder "
                    "(those take --action-cols, --time-col, --delimiter, --encoding)",
                    soft_wrap=True,
                )
                raise typer.Exit(2)
            columns = {"label_col": actions[0]} if actions else {}
            columns |= {"time_col": time_col} if time_col else {}
            checked = csv_options(delimiter=delimiter, encoding=encoding)  # `tab`, codec names: as importers
            columns |= {"delimiter": checked.delimiter} if checked.delimiter else {}
            columns |= {"encoding": checked.encoding} if checked.encoding else {}
            _interleaved(file, gt_models, k, reference, routine_col, min_support, as_json, columns)
            return
        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
        options = csv_options(
            delimiter=delimiter,
            encoding=encoding,
            time_col=time_col,
            action_cols=action_cols,
            user_col=user_col,
            app_col=app_col,
            value_col=value_col,
            id_col=id_col,
            action_map=action_map,
            tz=tz,
            time_format=time_format,
            instance_col=instance_col,
            routine_col=routine_col,
        )
        err = Console(stderr=True)
        imported = ImportStats()  # what became of every row: scored runs must not hide dropped ones
        try:
            # a refused file leaves no key behind (evaluate_file reads and redacts it again)
            with no_new_key_unless_done():
                read_as = log_options(options, truth)
                load_actions(file, fmt=fmt, csv_options=read_as, stats=imported)  # type: ignore[arg-type]
                if imported.invalid or imported.skipped or imported.stray_quotes or imported.cut_short:
                    for line in describe_import(imported):
                        err.print(line, highlight=False, markup=False)
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
            _refuse(err, exc)
            raise typer.Exit(2) from None
        out["import"] = imported.to_dict()
        if as_json:
            typer.echo(json.dumps(out))
            return
        con = out_console()  # the terminal's width, else COLUMNS or 120: not cut to 80 when piped
        table = Table(title=f"discovery on {file.name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for metric in (*SCORE_METRICS, "events", "duplicate_events", "seconds", "events_per_second"):
            table.add_row(metric, _fmt(out.get(metric)))
        con.print(table)
        for p in out.get("patterns", []):
            con.print(
                f"known pattern of {p['pattern_length']} steps: "
                f"best Jaccard {p['best_jaccard']:.3f} (rank {p['best_rank']})"
            )
        # in the order the metrics take them (events explained: the top K), numbered so; the candidate's
        # own rank by score is in --json (as a column it read 1, 5, 2, 3, 4 to a new user)
        routines = Table(title="routines (by events explained)")
        for c in ("#", "occurrences", "score", "steps", "routine"):
            routines.add_column(c)
        for n, r in enumerate(out["routines"][:20], 1):
            text = " > ".join(r["routine"])
            routines.add_row(
                str(n),
                str(r["occurrences"]),
                f"{r['score']:.1f}",
                str(len(r["routine"])),
                Text(visible(text if len(text) < 120 else text[:117] + "...")),  # the log's labels: text
            )
        con.print(routines)


def _interleaved(
    path: Path,
    gt_models: Path | None,
    k: int | None,
    reference: Path | None,
    routine_col: str | None,
    min_support: int,
    as_json: bool,
    columns: dict[str, str] | None = None,
) -> None:
    """Interleaved logs (process-mining CSV: concept:name, time:timestamp unless `columns` say otherwise):
    one log or a whole setting."""
    err = Console(stderr=True)
    cfg = DiscoveryConfig(min_support=min_support)
    try:
        models = read_models(gt_models) if gt_models is not None else None
        if path.is_file():
            out = evaluate_log(
                path,
                models,
                k or setting_k(path.parent.name),
                config=cfg,
                routine_col=routine_col,
                columns=columns,
            )
            if as_json:
                typer.echo(json.dumps(out))
                return
            con = out_console()  # the terminal's width, else COLUMNS or 120: not cut to 80 when piped
            for key in ("events", "k", "routines_found", "true_routines", "mean_jc", "distinct_matched",
                        "true_routine_best_match"):  # fmt: skip
                con.print(f"{key:>24}: {_fmt(out.get(key))}")
            for i, labels in enumerate(out["top_k"]):
                jc = out.get("per_routine_jc", [None] * len(out["top_k"]))[i]
                con.print(Text(visible(f"routine {i + 1} (JC {_fmt(jc)}): {', '.join(labels)}")))
            return
        setting = path.name
        kk = k or setting_k(setting)
        ref_path = reference or (path.parent / "reference_scores.csv")
        ref = read_reference(ref_path) if ref_path.is_file() else {}
        rows = []
        logs = list(iter_folder(path))
        if not logs:
            raise ImportFormatError(f"{path}: no .csv logs")
        for p in logs:
            row = evaluate_log(p, models, kk, config=cfg, routine_col=routine_col, columns=columns)
            r = ref.get((setting, p.stem))
            row["published_mean_jc"] = float(r["authors_mean_jc"]) if r else None
            rows.append(row)
            if not as_json:
                err.print(f"{p.name}: {_fmt(row.get('mean_jc'))}", end="\r")
    except RoteError as exc:
        _refuse(err, exc)
        raise typer.Exit(2) from None

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    summary = {
        "setting": setting,
        "logs": len(rows),
        "k": kk,
        "mean_jc": mean("mean_jc"),
        "published_mean_jc": mean("published_mean_jc"),
        "distinct_matched": mean("distinct_matched"),
        "routines_found": mean("routines_found"),
        "true_routine_best_match": mean("true_routine_best_match"),
        "wins": sum(
            1
            for r in rows
            if r.get("mean_jc") is not None
            and r.get("published_mean_jc") is not None
            and r["mean_jc"] >= r["published_mean_jc"]
        ),
    }
    if as_json:
        typer.echo(json.dumps({"summary": summary, "logs": rows}))
        return
    table = Table(title=f"{setting}: top-{kk} routines, best Jaccard against every ground-truth model")
    for c in ("log", "events", "found", "rote", f"matched>=0.8 (of {kk})", "published"):
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(
            r["log"],
            str(r["events"]),
            str(r["routines_found"]),
            _fmt(r.get("mean_jc")),
            _fmt(r.get("distinct_matched")),
            _fmt(r.get("published_mean_jc")),
        )
    table.add_row(
        "mean",
        "",
        _fmt(summary["routines_found"]),
        _fmt(summary["mean_jc"]),
        _fmt(summary["distinct_matched"]),
        _fmt(summary["published_mean_jc"]),
    )
    con = out_console()  # the terminal's width, else COLUMNS or 120: not cut to 80 when piped
    con.print(table)
    con.print(f"rote >= published on {summary['wins']} of {len(rows)} logs")


def _refuse(err: Console, exc: Exception) -> None:
    """The refusal on one line: not wrapped at the terminal's width, and the file's text (in the message)
    shown as text, never read as markup."""
    err.print(Text.assemble(("error:", "red"), " ", visible(" ".join(str(exc).split()))), soft_wrap=True)
