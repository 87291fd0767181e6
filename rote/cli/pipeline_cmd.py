"""`rote run`, `rote worker`, `rote produce`: running the pipeline and feeding it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rote.cli.import_options import (
    ActionColsOpt,
    ActionMapOpt,
    AppColOpt,
    DelimiterOpt,
    EncodingOpt,
    FormatOpt,
    IdColOpt,
    LogFormat,
    TimeColOpt,
    TimeFormatOpt,
    TzOpt,
    UserColOpt,
    UserIdOpt,
    ValueColOpt,
    csv_options,
    describe_import,
)
from rote.config import Settings

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
    log: Annotated[
        Path | None,
        typer.Argument(
            metavar="LOG", dir_okay=False, show_default=False, help="UI log to replay (as --replay)."
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", dir_okay=False, help="UI log to replay (default: the bundled real log)."),
    ] = None,
    fmt: FormatOpt = LogFormat.auto,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    time_col: TimeColOpt = None,
    action_cols: ActionColsOpt = None,
    user_col: UserColOpt = None,
    app_col: AppColOpt = None,
    value_col: ValueColOpt = None,
    id_col: IdColOpt = None,
    action_map: ActionMapOpt = None,
    tz: TzOpt = None,
    time_format: TimeFormatOpt = None,
    user_id: UserIdOpt = "user-1",
    speed: Annotated[
        float, typer.Option(help="Replay pace: 0 as fast as possible, 1 real time, 10 ten times faster.")
    ] = 0.0,
    once: Annotated[
        bool, typer.Option("--once", help="Stop when the replay is processed and print a summary.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    broker: Annotated[str | None, typer.Option(help=BROKER_HELP)] = None,
    store: Annotated[
        str | None, typer.Option(help="Faust table store (memory:// only). Env: ROTE_STORE.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Prometheus metrics port (default 9464, 0 disables). Env: ROTE_METRICS_PORT."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the run archive is kept (default .rote). Env: ROTE_STATE_DIR.")
    ] = None,
    inject: Annotated[
        bool | None,
        typer.Option(
            "--inject/--no-inject",
            help="Inject malformed events on user-actions (they are dead-lettered; the run goes on). "
            "Default: on for the bundled demo log, off for a log of your own.",
            show_default=False,
        ),
    ] = None,
    inject_slowdown: Annotated[
        bool,
        typer.Option(
            "--inject-slowdown",
            help="Demo of the anomaly alert: the local form replica answers 1.5 s slower after 40 "
            "submissions, so the last real runs are slow.",
        ),
    ] = False,
    linger: Annotated[
        float, typer.Option(help="With --once: keep serving metrics this many seconds after the summary.")
    ] = 0.0,
    timeout: Annotated[float, typer.Option(help="With --once: give up after this many seconds.")] = 900.0,
) -> None:
    """Run the whole pipeline: broker, all agents, sandbox runner, metrics, and a replayed UI log.

    The log is read and checked before anything starts.
    Exit status: 0 done; 1 failed or timed out (.rote/last-run is kept);
    2 bad input or setting; 3 broker unreachable.
    """
    from rote.archive import last_run_dir
    from rote.pipeline import RunOptions, run
    from rote.pipeline.run import exit_watchdog, leave

    if log is not None and replay is not None and log != replay:
        raise typer.BadParameter(f"two logs given ({log} and --replay {replay}); name one", param_hint="LOG")
    replay = replay or log

    # the archive a plain `rote report` in the caller's shell reads (before --state-dir is exported below)
    shell_archive = last_run_dir().resolve()

    def show(summary: dict[str, object]) -> None:
        summary["archive_needs_from"] = Path(str(summary.get("archive"))).resolve() != shell_archive
        if as_json:
            typer.echo(json.dumps(summary, default=str))
        else:
            print_summary(summary)
        sys.stdout.flush()

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
    )
    if state_dir is not None:
        # One state directory for every part of the run, as the flag says: the redactor's pseudonym key and
        # the runner read ROTE_STATE_DIR (with the flag alone the key went to ./.rote).
        os.environ["ROTE_STATE_DIR"] = str(state_dir)
    settings = Settings.from_env(broker=broker, store=store, metrics_port=metrics_port, state_dir=state_dir)
    if settings.broker != "embedded":
        from rote.cli.errors import require_broker

        require_broker(settings.bootstrap_servers)
    try:
        summary = run(
            settings,
            RunOptions(
                replay=replay,
                fmt=fmt.value,
                csv_options=options,
                speed=speed,
                once=once,
                # a demo's malformed events mixed into a user's own log read as their log's (a new user)
                inject=replay is None if inject is None else inject,
                inject_slowdown=inject_slowdown,
                linger_seconds=linger,
                timeout_seconds=timeout,
                user_id=user_id,
                progress=not as_json,
            ),
            on_summary=show,
        )
    except BaseException:
        exit_watchdog(1)  # the error's one line is printed as usual; a thread left running cannot hold it
        raise
    leave(1 if summary.get("timed_out") or summary.get("error") else 0)


def print_summary(s: dict[str, object]) -> None:
    from rote.cli.console import out_console
    from rote.pipeline.summary import render

    render(s, out_console())


def worker_cmd(
    broker: Annotated[
        str, typer.Option(help="kafka://HOST:PORT of the cluster. Env: ROTE_BROKER.", envvar="ROTE_BROKER")
    ],
    store: Annotated[
        str | None, typer.Option(help="Faust table store (memory:// only). Env: ROTE_STORE.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus metrics port (default 9464). Env: ROTE_METRICS_PORT.")
    ] = None,
    web_port: Annotated[
        int | None, typer.Option(help="Port of the registry HTTP views (0 disables). Env: ROTE_WEB_PORT.")
    ] = None,
) -> None:
    """Run the agents only, as one worker of a cluster (scale by starting more).

    Exit status 3, with one line, when the broker cannot be reached. On SIGTERM it stops cleanly, or after
    ROTE_SHUTDOWN_GRACE_SECONDS (25) exits with status 1 and one line (a broker that went away).
    """
    from rote.agents import AgentOptions, build_app
    from rote.agents.app import internal_topics
    from rote.brokers import create_topics
    from rote.cli.errors import require_broker
    from rote.pipeline import make_worker, serve_metrics
    from rote.streams.topics import CATALOGUE

    settings = Settings.from_env(broker=broker, store=store, metrics_port=metrics_port, web_port=web_port)
    require_broker(settings.bootstrap_servers)
    create_topics(settings.bootstrap_servers, CATALOGUE, replication=settings.replication)
    serve_metrics(settings)
    app, _ = build_app(
        settings,
        bootstrap=settings.bootstrap_servers,
        options=AgentOptions(report_interval_seconds=settings.report_interval_seconds),
    )
    create_topics(settings.bootstrap_servers, internal_topics(app), replication=settings.replication)
    worker = make_worker(app, shutdown_grace_seconds=settings.shutdown_grace_seconds)
    worker.execute_from_commandline()


def produce_cmd(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="UI log to send.")],
    broker: Annotated[str, typer.Option(help="kafka://HOST:PORT. Env: ROTE_BROKER.", envvar="ROTE_BROKER")],
    fmt: FormatOpt = LogFormat.auto,
    delimiter: DelimiterOpt = None,
    encoding: EncodingOpt = None,
    time_col: TimeColOpt = None,
    action_cols: ActionColsOpt = None,
    user_col: UserColOpt = None,
    app_col: AppColOpt = None,
    value_col: ValueColOpt = None,
    id_col: IdColOpt = None,
    action_map: ActionMapOpt = None,
    tz: TzOpt = None,
    time_format: TimeFormatOpt = None,
    user_id: UserIdOpt = "user-1",
    validate: Annotated[
        bool,
        typer.Option(
            "--validate/--no-validate",
            help="Dead-letter invalid rows here with the importer's reason (default), or send them as they "
            "are for the pipeline's ingress to dead-letter.",
        ),
    ] = True,
) -> None:
    """Replay a UI log into a cluster's user-actions topic, keyed by user.

    The file is read and checked before anything is sent. What became of its
    rows goes to stderr, one JSON line {"sent", "rejected", "failed"} to stdout.
    Rejected rows go to the dead-letters topic with their line and cause.
    Exit status: 1 an event was not delivered; 2 the file cannot be used;
    3 broker unreachable.
    """
    from kafka import KafkaProducer
    from rich.progress import track

    from rote.brokers import create_topics
    from rote.brokers.security import kafka_python_kwargs
    from rote.cli.errors import require_broker
    from rote.importers import dead_letter, read_log
    from rote.pipeline.replay import BATCH_ACTIONS
    from rote.streams.fast import encode_batch
    from rote.streams.schemas import encode
    from rote.streams.topics import DEAD_LETTERS, USER_ACTIONS

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
    )
    settings = Settings.from_env(broker=broker)
    imported = read_log(file, fmt=fmt.value, user_id=user_id, csv_options=options, validate=validate)
    require_broker(settings.bootstrap_servers)
    for line in describe_import(imported.stats):
        typer.echo(line, err=True)
    create_topics(settings.bootstrap_servers, [USER_ACTIONS, DEAD_LETTERS], replication=settings.replication)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        linger_ms=5,
        acks="all",
        max_request_size=4 * 1024 * 1024,
        **kafka_python_kwargs(),
    )
    rejected = 0
    futures: list[tuple[int, Any]] = []  # (actions in the message, delivery future)
    batch: list[dict[str, Any]] = []
    batch_user = ""

    def send_batch() -> None:
        # Consecutive rows of one user go as one UserActionBatch (as the producer API sends them).
        if not batch:
            return
        value = json.dumps(batch[0]).encode() if len(batch) == 1 else encode_batch(batch_user, batch)
        futures.append((len(batch), producer.send(USER_ACTIONS.name, key=batch_user.encode(), value=value)))
        batch.clear()

    for rec in track(imported.records, description="producing", disable=not sys.stderr.isatty()):
        if rec.error is not None and validate:
            letter = dead_letter(rec, imported.path)
            future = producer.send(DEAD_LETTERS.name, key=USER_ACTIONS.name.encode(), value=encode(letter))
            futures.append((0, future))
            rejected += 1
            continue
        user = str(rec.payload.get("user_id") or user_id)
        if batch and (user != batch_user or len(batch) >= BATCH_ACTIONS or not validate):
            send_batch()
        batch_user = user
        batch.append(rec.payload)
    send_batch()
    producer.flush()
    sent = failed = 0
    first_failure = ""
    for actions, future in futures:  # kafka-python's flush returns even when deliveries failed
        try:
            future.get(timeout=30)
            sent += actions
        except Exception as exc:
            failed += max(1, actions)
            first_failure = first_failure or f"{type(exc).__name__}: {exc}"
    producer.close()
    if failed:
        typer.echo(f"rote produce: {failed} events not delivered (first: {first_failure})", err=True)
    typer.echo(json.dumps({"sent": sent, "rejected": rejected, "failed": failed}))
    if failed:
        raise typer.Exit(1)
