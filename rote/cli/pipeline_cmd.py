"""`rote run`, `rote worker`, `rote produce`: running the pipeline and feeding it."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from rote.config import Settings
from rote.errors import RoteError


class Format(StrEnum):
    actionlogger = "actionlogger"
    bosco = "bosco"
    jsonl = "jsonl"
    csv = "csv"


BROKER_HELP = "'embedded' (start the bundled Tansu broker) or kafka://HOST:PORT. Env: ROTE_BROKER."


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("worker")(worker_cmd)
    app.command("produce")(produce_cmd)
    app.command("schemas")(schemas_cmd)


def schemas_cmd(
    action: str = typer.Argument("check", help="'build' writes streams/jsonschema/; 'check' fails if stale."),
) -> None:
    """Generate or check the JSON Schema files derived from the event models."""
    from rote.streams import jsonschema

    if action == "build":
        for path in jsonschema.write():
            typer.echo(str(path))
    elif action == "check":
        problems = jsonschema.stale()
        if problems:
            typer.echo(f"stale JSON Schema files (run `rote schemas build`): {', '.join(problems)}", err=True)
            raise typer.Exit(1)
        typer.echo("JSON Schema files are fresh")
    else:
        raise typer.BadParameter("expected 'build' or 'check'")


def run_cmd(
    replay: Path | None = typer.Option(
        None, "--replay", exists=True, dir_okay=False, help="UI log to replay; default: the bundled real log."
    ),
    fmt: Format = typer.Option(Format.actionlogger, "--format", help="Format of the --replay file."),
    speed: float = typer.Option(
        0.0, help="Replay pace: 0 as fast as possible, 1 real time, 10 ten times faster."
    ),
    once: bool = typer.Option(False, "--once", help="Stop when the replay is processed and print a summary."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    broker: str | None = typer.Option(None, help=BROKER_HELP),
    store: str | None = typer.Option(
        None, help="Faust table store (memory:// only). Env: ROTE_STORE."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Prometheus metrics port (default 9464, 0 disables). Env: ROTE_METRICS_PORT."
    ),
    state_dir: Path | None = typer.Option(
        None, help="Where the run archive is kept (default .rote). Env: ROTE_STATE_DIR."
    ),
    inject: bool = typer.Option(
        True,
        "--inject/--no-inject",
        help="Inject demo faults: malformed events, and simulated production runs ending in a slowdown.",
    ),
    linger: float = typer.Option(
        0.0, help="With --once: keep serving metrics this many seconds after the summary."
    ),
    timeout: float = typer.Option(900.0, help="With --once: give up after this many seconds."),
    user_id: str = typer.Option("user-1", help="User id for log rows that carry none."),
) -> None:
    """Run the whole pipeline: broker, all agents, sandbox runner, metrics, and a replayed UI log."""
    from rote.pipeline import RunOptions, run

    def show(summary: dict[str, object]) -> None:
        if as_json:
            typer.echo(json.dumps(summary, default=str))
        else:
            print_summary(summary)
        sys.stdout.flush()

    try:
        settings = Settings.from_env(
            broker=broker, store=store, metrics_port=metrics_port, state_dir=state_dir
        )
        summary = run(
            settings,
            RunOptions(
                replay=replay,
                fmt=fmt.value,
                speed=speed,
                once=once,
                inject=inject,
                linger_seconds=linger,
                timeout_seconds=timeout,
                user_id=user_id,
                progress=not as_json,
            ),
            on_summary=show,
        )
    except RoteError as exc:
        typer.echo(f"rote run: {exc}", err=True)
        raise typer.Exit(2) from None
    if summary.get("timed_out") or summary.get("error"):
        raise typer.Exit(1)


def print_summary(s: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]rote run[/] on {s['broker']} — replayed {s['replay']} in {s['seconds']} s")
    table = Table("what", "count", show_header=False)
    rows = [
        ("events in", s["events_in"]),
        ("  of which injected invalid", s["injected_invalid_events"]),
        ("dead letters", s["dead_letters"]),
        ("candidates", s["candidates"]),
        ("automations by state", s["automations"]),
        ("test results (passed)", f"{s['test_results']} ({s['tests_passed']})"),
        ("simulated production runs", s["simulated_production_runs"]),
        ("anomalies", s["anomalies"]),
        ("optimization reports", s["reports"]),
        ("estimated hours saved / year", s["estimated_hours_saved_per_year"]),
        ("time saved by runs (s)", s["time_saved_seconds"]),
        ("ROI", s["roi"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    topics = Table("topic", "events")
    for name, n in dict(s["topics"]).items():  # type: ignore[call-overload]
        topics.add_row(name, str(n))
    console.print(topics)
    if s.get("timed_out"):
        console.print("[red]timed out before the pipeline went quiet[/]")
    if s.get("error"):
        console.print(f"[red]{s['error']}[/]")
    console.print(f"archive: {s['archive']}  (rote report --html report.html; rote automations list)")


def worker_cmd(
    broker: str = typer.Option(
        ..., help="kafka://HOST:PORT of the cluster. Env: ROTE_BROKER.", envvar="ROTE_BROKER"
    ),
    store: str | None = typer.Option(None, help="Faust table store (memory:// only). Env: ROTE_STORE."),
    metrics_port: int | None = typer.Option(
        None, help="Prometheus metrics port (default 9464). Env: ROTE_METRICS_PORT."
    ),
    web_port: int | None = typer.Option(
        None, help="Port of the registry HTTP views (0 disables). Env: ROTE_WEB_PORT."
    ),
) -> None:
    """Run the agents only, as one worker of a cluster (scale by starting more)."""
    from rote.agents import AgentOptions, build_app
    from rote.brokers import create_topics
    from rote.pipeline import make_worker, serve_metrics
    from rote.streams.topics import CATALOGUE

    settings = Settings.from_env(broker=broker, store=store, metrics_port=metrics_port, web_port=web_port)
    create_topics(settings.bootstrap_servers, CATALOGUE, replication=settings.replication)
    serve_metrics(settings)
    app, _ = build_app(
        settings,
        bootstrap=settings.bootstrap_servers,
        options=AgentOptions(report_interval_seconds=settings.report_interval_seconds),
    )
    worker = make_worker(app)
    worker.execute_from_commandline()


def produce_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="UI log to send."),
    fmt: Format = typer.Option(Format.actionlogger, "--format", help="Format of FILE."),
    broker: str = typer.Option(..., help="kafka://HOST:PORT. Env: ROTE_BROKER.", envvar="ROTE_BROKER"),
    user_id: str = typer.Option("user-1", help="User id for rows that carry none."),
    validate: bool = typer.Option(
        True,
        "--validate/--no-validate",
        help="Reject invalid rows here (default), or send them as they are for the pipeline to dead-letter.",
    ),
) -> None:
    """Replay a UI log into a cluster's user-actions topic, keyed by user."""
    from kafka import KafkaProducer
    from rich.progress import track

    from rote.brokers import create_topics
    from rote.errors import ValidationError
    from rote.importers import iter_records
    from rote.streams.schemas import UserAction, decode, encode
    from rote.streams.topics import USER_ACTIONS

    settings = Settings.from_env(broker=broker)
    create_topics(settings.bootstrap_servers, [USER_ACTIONS], replication=settings.replication)
    records = list(iter_records(file, fmt=fmt.value, user_id=user_id))
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers.split(","), linger_ms=5, acks="all")
    sent = rejected = 0
    futures = []
    for rec in track(records, description="producing", disable=not sys.stderr.isatty()):
        key = str(rec.payload.get("user_id") or user_id).encode()
        if validate:
            try:
                value = encode(decode(UserAction, rec.payload))
            except ValidationError as exc:
                typer.echo(f"line {rec.line}: {exc.reason}", err=True)
                rejected += 1
                continue
        else:
            value = json.dumps(rec.payload).encode()
        futures.append(producer.send(USER_ACTIONS.name, key=key, value=value))
    producer.flush()
    failed = 0
    for future in futures:  # kafka-python's flush returns even when deliveries failed
        try:
            future.get(timeout=30)
            sent += 1
        except Exception as exc:
            failed += 1
            typer.echo(f"not delivered: {exc!r}", err=True)
    producer.close()
    typer.echo(json.dumps({"sent": sent, "rejected": rejected, "failed": failed}))
    if failed:
        raise typer.Exit(1)
