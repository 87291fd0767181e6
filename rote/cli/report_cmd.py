"""`rote report`: the optimization report of a run, for people (HTML, terminal) and machines (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from rote.errors import ConfigError, RoteError

#: Archive topics the report reads, in the order the builder wants them (candidates before runs).
TOPICS = ("candidates", "automations", "test-results", "metrics", "anomalies")

_err = Console(stderr=True)


def read_archive(run_dir: Path, *, progress: bool = True) -> dict[str, list[Any]]:
    """Every event the report needs from a run archive, validated; a progress bar per topic on stderr."""
    from rote.archive import read_events, topic_file

    if not run_dir.is_dir():
        raise ConfigError(f"no run archive at {run_dir}: run `rote run --once` first, or pass --from DIR")
    if not any(topic_file(run_dir, t).exists() for t in TOPICS):
        raise ConfigError(f"{run_dir} holds none of {', '.join(t + '.jsonl' for t in TOPICS)}")
    out: dict[str, list[Any]] = {}
    files = {t: topic_file(run_dir, t) for t in TOPICS}
    sizes = {t: f.stat().st_size if f.exists() else 0 for t, f in files.items()}
    with Progress(console=_err, transient=True, disable=not progress) as bar:
        task = bar.add_task("reading the run archive", total=sum(sizes.values()) or 1)
        for t in TOPICS:
            out[t] = []
            out[t].extend(read_events(run_dir, t))
            bar.advance(task, sizes[t])
    return out


def _print_summary(report: Any, html: Path | None) -> None:
    from rote.cli.console import add_row, fit, out_console, table
    from rote.report import units
    from rote.report.html import fmt_span

    out = out_console()
    eff = report.efficiency
    cur = str(eff.get("currency", ""))
    observed = eff.get("observed_period") or {}
    out.print(f"[bold]{report.report_id}[/bold]", highlight=False)
    if report.period_start is not None:
        what = "automations tested and run" if observed.get("start") else "period"
        out.print(f"{what}: {fmt_span(report.period_start, report.period_end)}", highlight=False)
    if observed.get("start"):
        out.print(f"routines observed: {fmt_span(observed['start'], observed['end'])}", highlight=False)
    score = report.optimization_score
    out.print(
        f"time saved {units.duration(eff.get('time_saved_seconds'))} by "
        f"{units.plural(int(eff.get('successful_runs', 0)), 'successful production run')}"
        f" · value {units.money(eff.get('value_saved'), cur)}"
        f" · cost {units.money((eff.get('cost') or {}).get('total'), cur)}"
        f" · optimization score {'–' if score is None else f'{score:.0f}/100'}",
        highlight=False,
    )
    if eff.get("roi_explained"):
        out.print(f"ROI {eff['roi_explained']}", highlight=False)
    c = table("#", "routine", "seen", "saveable per year", "score", "automation", title="Routines")
    for i, row in enumerate(report.top_candidates, start=1):
        name = row["name"] + (f"\n{row['variant_note']}" if row.get("variant_note") else "")
        add_row(
            c,
            str(i),
            name,
            f"{row['occurrences']}×",
            units.hours(row.get("estimated_hours_saved_per_year")),
            f"{row['score']:.0f}",
            str(row.get("automation_state") or "–"),
        )
    out.print(fit(c, out.width))
    t = table(
        "automation",
        "state",
        "tests (current version)",
        "runs",
        "saved/run",
        "time saved",
        "ROI",
        title="Automations",
    )
    for a in report.automations:
        per_run = units.duration(a["time_saved_per_run_seconds"]) + (" (projected)" if a["projected"] else "")
        add_row(
            t,
            a["name"],
            str(a["state"]),
            a.get("current_tests_text") or "–",
            units.count(a["production_runs"]),
            per_run,
            units.duration(a["time_saved_seconds"]),
            units.percent(a["roi"], signed=True),
        )
    out.print(fit(t, out.width))
    b = table("#", "where", "step", "share", "why", title="Top bottlenecks")
    for x in report.bottlenecks[:8]:
        add_row(
            b,
            str(x["rank"]),
            f"{x['scope']}: {x['scope_name']}",
            x["label"],
            units.percent(x["share"]),
            "; ".join(x["reasons"]),
        )
    out.print(fit(b, out.width))
    if html is not None:
        out.print(f"HTML report: {html}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `rote report` to `app`."""

    @app.command("report")
    def report_cmd(
        from_dir: Annotated[
            Path | None,
            typer.Option("--from", help="Run archive directory (default: the last run, .rote/last-run)."),
        ] = None,
        html: Annotated[
            Path | None, typer.Option("--html", help="Write the report as a self-contained HTML page here.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print exactly one JSON object (the report).")
        ] = False,
        hourly_rate: Annotated[
            float | None, typer.Option(help="Value of one person-hour (env ROTE_HOURLY_RATE, default 50).")
        ] = None,
        build_cost_hours: Annotated[
            float | None,
            typer.Option(help="Person-hours to review and deploy one automation, once (default 1)."),
        ] = None,
        test_cost_per_run_seconds: Annotated[
            float | None, typer.Option(help="Cost of one second of sandbox test run (default 0.0001).")
        ] = None,
        run_cost_per_second: Annotated[
            float | None, typer.Option(help="Cost of one second of production run (default 0.0001).")
        ] = None,
        currency: Annotated[str | None, typer.Option(help="Currency label (default USD).")] = None,
        top: Annotated[int, typer.Option(min=1, help="How many candidates, plans and hints to list.")] = 10,
        now: Annotated[
            str | None,
            typer.Option(help="Report time, ISO-8601 (default: the current time); fixes the report id."),
        ] = None,
    ) -> None:
        """Compose the optimization report (bottlenecks, ROI, trends, candidates, anomalies) from a run."""
        from rote.archive import last_run_dir
        from rote.efficiency import CostModel
        from rote.report import compose_report, render_html

        try:
            cost = CostModel.from_env(
                hourly_rate=hourly_rate,
                build_cost_hours=build_cost_hours,
                test_cost_per_run_seconds=test_cost_per_run_seconds,
                run_cost_per_second=run_cost_per_second,
                currency=currency,
            )
            when = datetime.fromisoformat(now) if now else datetime.now(UTC)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            events = read_archive(from_dir or last_run_dir(), progress=not as_json)
            report = compose_report(
                candidates=events["candidates"],
                automations=events["automations"],
                test_results=events["test-results"],
                runs=events["metrics"],
                anomalies=events["anomalies"],
                cost=cost,
                now=when,
                top_n=top,
            )
        except (RoteError, ValueError) as exc:
            if as_json:
                typer.echo(json.dumps({"error": str(exc)}))
            else:
                _err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        if html is not None:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_html(report), encoding="utf-8")
        if as_json:
            typer.echo(report.model_dump_json())
        else:
            _print_summary(report, html)
