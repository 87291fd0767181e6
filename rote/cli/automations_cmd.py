"""`rote automations list|show|run`: the registry rebuilt from a run archive, and running an automation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text

from rote.archive import last_run_dir
from rote.generator.registry import AutomationRecord, Registry, from_archive
from rote.report.units import visible

_LEXERS = {"python": "python", "bash": "bash", "applescript": "applescript"}

FROM_HELP = "Run archive to read (default: the last `rote run`, $ROTE_STATE_DIR/last-run)."
JSON_HELP = "Print exactly one JSON object to stdout."
FromOpt = Annotated[Path | None, typer.Option("--from", help=FROM_HELP)]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _load(from_dir: Path | None, as_json: bool) -> Registry:
    run_dir = from_dir or last_run_dir()
    if not run_dir.is_dir():
        msg = f"no run archive at {run_dir} (run `rote run --once` first, or pass --from DIR)"
        if as_json:
            typer.echo(json.dumps({"error": msg}))
        else:
            Console(stderr=True).print(f"[red]{msg}[/red]")
        raise typer.Exit(1)
    if as_json:
        return from_archive(run_dir)
    with Console(stderr=True).status(f"rebuilding the registry from {run_dir} …"):
        return from_archive(run_dir)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def _secs(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}s"


def _summary_row(r: AutomationRecord) -> list[str]:
    from rote.report.tally import current_version_verdicts, tally

    s = r.stats
    # per language, current version, "unsupported" apart from failed: the tally every view uses
    tests = tally(current_version_verdicts(r.test_results)).short()
    return [
        r.automation_id,
        f"v{r.version}",
        r.state,
        r.state_reason or "",
        ", ".join(r.languages) or "–",
        tests,
        str(s.runs),
        _pct(s.success_rate),
        _secs(s.duration_p50_seconds),
    ]


_COLUMNS = ("id", "ver", "state", "reason", "runs in", "tests", "runs", "success", "p50")
#: Narrower than this, `automations list` prints one block per automation instead of a table: nine columns
#: beside a 24-character id do not fit 80 columns (the table lost its right-hand columns there, and the
#: reason was cut at 70 characters).
WIDE_LISTING = 120


def _print_blocks(console: Console, rows: list[list[str]]) -> None:
    """Each automation as a block: id, version and state on the first line, then the reason and the
    figures, wrapped at the terminal's width and indented under it."""
    import textwrap

    width = max(20, console.width - 2)
    for aid, ver, state, reason, langs, tests, runs, success, p50 in rows:
        lines = textwrap.wrap(f"{aid}  {ver}  {state}", width=width + 2, break_on_hyphens=False)
        figures = f"runs in: {langs} · tests: {tests} · runs: {runs} · success: {success} · p50: {p50}"
        for text in ([f"reason: {reason}"] if reason else []) + [figures]:
            lines += ["  " + part for part in textwrap.wrap(text, width=width, break_on_hyphens=False)]
        for line in lines:
            console.print(Text(visible(line)), overflow="fold")


def _say(text: str, as_json: bool) -> None:
    """JSON answers on stdout (one object); a person's message on stderr as one line."""
    typer.echo(text, err=not as_json)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    group = typer.Typer(
        help="Generated automations: versions, lifecycle (verified/rejected and why) and run statistics.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="automations")

    @group.command("list")
    def list_automations(
        from_dir: FromOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List every automation with its state, reason, test tally and success rate."""
        reg = _load(from_dir, as_json)
        if as_json:
            typer.echo(json.dumps(reg.to_json()))
            return
        from rote.cli.console import add_row, fit, out_console
        from rote.cli.console import table as folding_table

        rows = [_summary_row(r) for r in reg.records()]
        console = out_console()
        if console.width >= WIDE_LISTING:
            # every column folds rather than cuts: an id or a reason is whole, on a terminal or not
            table = folding_table(
                *_COLUMNS, title="automations", whole={"id": max((len(row[0]) for row in rows), default=0)}
            )
            for row in rows:
                add_row(table, *row)
            console.print(fit(table, console.width))
        else:
            _print_blocks(console, rows)
        counts = reg.counts_by_state()
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no automations")

    @group.command("show")
    def show_automation(
        automation_id: Annotated[str, typer.Argument(help="The automation id (`rote automations list`).")],
        from_dir: FromOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show one automation: lifecycle history, statistics, plan, and each target's generated source."""
        reg = _load(from_dir, as_json)
        rec = reg.get(automation_id)
        if rec is None:
            msg = f"no automation {automation_id!r} in the archive"
            if as_json:
                typer.echo(json.dumps({"error": msg}))
            else:
                Console(stderr=True).print(f"[red]{msg}[/red]")
            raise typer.Exit(1)
        data: dict[str, Any] = rec.to_json(include_sources=True)
        if as_json:
            typer.echo(json.dumps(data))
            return
        from rote.cli.console import out_console
        from rote.report.routine import describe, latest_candidate

        console = out_console()

        # everything below comes from the archive (users' logs, topics): plain text, controls shown
        def say(text: str) -> None:
            console.print(Text(visible(text)), overflow="fold")

        say(f"{rec.automation_id} v{rec.version} — {rec.name}")
        routine = latest_candidate(from_dir or last_run_dir(), rec.candidate_id)
        for line in describe(routine) if routine is not None else []:
            say(line)
        say(f"state: {rec.state}  {rec.state_reason or ''}")
        say(
            f"candidate {rec.candidate_id}, generator {rec.generator_version}, "
            f"template {rec.template_version}"
        )
        say(f"parameters: {', '.join(rec.automation.parameters) or '(none)'}")
        s = rec.stats
        from rote.report.tally import current_version_verdicts, tally

        # the tally `list` and `report` show (current version, unsupported apart from failed), not the
        # registry's all-time pass/fail counters, which counted an unsupported test as failed
        tests = tally(current_version_verdicts(rec.test_results)).text()
        console.print(
            f"runs {s.runs} (sandbox {s.sandbox_runs}, production {s.production_runs}), "
            f"success {_pct(s.success_rate)}, p50 {_secs(s.duration_p50_seconds)}, "
            f"p90 {_secs(s.duration_p90_seconds)}, p99 {_secs(s.duration_p99_seconds)}"
        )
        say(f"tests (current version): {tests}")
        for t in rec.history:
            say(f"  {t.at.isoformat()}  v{t.version}  {t.state:<9} {t.reason or ''}")
        for lang, src in rec.automation.sources.items():
            missing = "; ".join(src.unsupported_steps[:3])
            status = "supported" if src.supported else f"NOT supported: {missing}"
            console.rule(Text(visible(f"{lang} — {status} — static check: {src.static_check}")))
            shown = visible(src.source)
            console.print(Syntax(shown, _LEXERS.get(lang, "text"), line_numbers=False, word_wrap=True))
            if shown != src.source:
                say("(control characters in this source are shown as \\x.. escapes: --json has it as it is)")

    @group.command("run")
    def run_automation(
        automation_id: Annotated[str, typer.Argument(help="The automation id (`rote automations list`).")],
        param: Annotated[
            list[str] | None, typer.Option("--param", help="NAME=VALUE for a parameter (repeatable).")
        ] = None,
        broker: Annotated[
            str | None,
            typer.Option(
                help="kafka://HOST:PORT: send a run request to the executor (`rote runner`) there and wait "
                "for its metrics event. Without it the run happens here, from the archive, unpublished. "
                "Env: ROTE_BROKER (kafka:// only).",
            ),
        ] = None,
        wait: Annotated[float, typer.Option(help="Seconds to wait for the executor's answer.")] = 300.0,
        allow_degraded: Annotated[
            bool, typer.Option("--allow-degraded", help="Run even if the automation is degraded.")
        ] = False,
        root: Annotated[
            Path | None,
            typer.Option(
                help="Local run: folder of its files and workbooks. Env: ROTE_RUNNER_ROOT (default .)."
            ),
        ] = None,
        site: Annotated[
            list[str] | None,
            typer.Option(
                "--site",
                help="Local run: RECORDED=NOW origin mapping, e.g. "
                "https://forms.zoho.com=http://127.0.0.1:8123 (repeatable). Env: ROTE_RUNNER_SITES.",
            ),
        ] = None,
        from_dir: FromOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Run an automation once with the production drivers and print its run report (timings, outcome).

        Exit status: 0 the run succeeded; 1 it failed or was refused; 2 no answer in time or bad input.
        """
        import asyncio
        import os

        from rote.errors import RoteError
        from rote.runner.request import new_request, parse_params, request_and_wait

        try:
            params = parse_params(param or [])
        except RoteError as exc:
            typer.echo(f"rote automations run: {exc}", err=True)
            raise typer.Exit(2) from None
        url = broker or (
            os.environ.get("ROTE_BROKER", "")
            if os.environ.get("ROTE_BROKER", "").startswith("kafka://")
            else None
        )
        request = new_request(automation_id, params, by="cli", allow_degraded=allow_degraded)
        if url:
            if not url.startswith("kafka://"):
                typer.echo("rote automations run: --broker must be kafka://HOST:PORT", err=True)
                raise typer.Exit(2)
            metric = asyncio.run(request_and_wait(url.removeprefix("kafka://"), request, wait_seconds=wait))
            if metric is None:
                msg = (
                    f"no answer for run {request.run_id} within {wait:g} s "
                    "(is `rote runner` running? was it refused? see its log)"
                )
                _say(json.dumps({"run_id": request.run_id, "error": msg}) if as_json else msg, as_json)
                raise typer.Exit(2)
            refused = None
        else:
            from rote.runner.executor import Executor, RunnerConfig

            reg = _load(from_dir, as_json)
            found = reg.state_of(automation_id)
            automation, state = found if found is not None else (None, None)
            try:
                config = RunnerConfig.from_env(root=root, sites=",".join(site) if site else None)
            except RoteError as exc:
                typer.echo(f"rote automations run: {exc}", err=True)
                raise typer.Exit(2) from None
            executor = Executor(config)
            try:
                execution = executor.execute(request, automation, state)
            finally:
                executor.close()
            metric, refused = execution.metric, execution.refused
        if refused is not None or metric is None:
            msg = refused or "not run"
            _say(
                json.dumps({"run_id": request.run_id, "refused": msg}) if as_json else f"refused: {msg}",
                as_json,
            )
            raise typer.Exit(1)
        if as_json:
            typer.echo(metric.model_dump_json())
        else:
            console = Console()
            where = "published on metrics" if url else "local run, not published"
            console.print(
                f"run {metric.run_id} ({where}): [bold]{metric.outcome}[/bold] in "
                f"{metric.duration_seconds:.2f} s, {len(metric.steps)} steps, {metric.attempts} attempt(s)"
            )
            # the error quotes what the page said and the labels come from the log: text, controls shown
            if metric.error:
                console.print(Text(visible(metric.error), style="red"))
            for s in sorted(metric.steps, key=lambda s: -s.duration_seconds)[:5]:
                line = f"  slowest: step {s.step} {s.label}  {s.duration_seconds:.3f} s"
                console.print(Text(visible(line)))
        raise typer.Exit(0 if metric.success else 1)
