"""`rote runner`: the executor as its own process (like `rote sandbox serve`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from rote.errors import RoteError


def register(app: typer.Typer) -> None:
    app.command("runner")(runner_cmd)


def runner_cmd(
    broker: Annotated[
        str, typer.Option(help="kafka://HOST:PORT of the cluster. Env: ROTE_BROKER.", envvar="ROTE_BROKER")
    ],
    root: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the automations' files and workbooks. Env: ROTE_RUNNER_ROOT (default .)."
        ),
    ] = None,
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site",
            help="RECORDED=NOW: serve a recorded origin from another place, e.g. "
            "https://forms.zoho.com=http://127.0.0.1:8123 (repeatable). Env: ROTE_RUNNER_SITES (comma list).",
        ),
    ] = None,
    run_timeout: Annotated[
        float | None, typer.Option(help="Wall seconds per run (default 120). Env: ROTE_RUNNER_RUN_TIMEOUT.")
    ] = None,
    step_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds one action waits for its page/element (default 10). Env: ROTE_RUNNER_STEP_TIMEOUT."
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(help="Retries of runs that changed nothing (default 2). Env: ROTE_RUNNER_RETRIES."),
    ] = None,
    uid: Annotated[
        int | None,
        typer.Option(help="uid the runs get when started as root (default 60999). Env: ROTE_RUNNER_UID."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where the done log is kept (default .rote/runner). Env: ROTE_RUNNER_STATE_DIR."),
    ] = None,
    group: Annotated[str, typer.Option(help="Consumer group of run-requests.")] = "rote-runner",
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus port (default 9464, 0 disables). Env: ROTE_METRICS_PORT.")
    ] = None,
) -> None:
    """Run verified automations on request: consume run-requests, publish one metrics event per run.

    Needs the sandbox runners' result key (ROTE_RESULT_KEY or ROTE_RESULT_KEY_FILE): only signed test
    results make an automation verified for the executor.
    """
    from rote.brokers import create_topics
    from rote.config import Settings
    from rote.pipeline import serve_metrics
    from rote.runner.executor import RunnerConfig
    from rote.runner.service import RunnerService
    from rote.streams.topics import CATALOGUE

    try:
        settings = Settings.from_env(broker=broker, metrics_port=metrics_port)
        config = RunnerConfig.from_env(
            root=root,
            sites=",".join(site) if site else None,
            run_timeout=run_timeout,
            step_timeout=step_timeout,
            retries=retries,
            uid=uid,
            gid=uid,
            state_dir=state_dir,
        )
        service = RunnerService(bootstrap_servers=settings.bootstrap_servers, config=config, group_id=group)
        create_topics(settings.bootstrap_servers, CATALOGUE, replication=settings.replication)
    except RoteError as exc:
        typer.echo(f"rote runner: {exc}", err=True)
        raise typer.Exit(2) from None
    serve_metrics(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.run(stop=stop)

    asyncio.run(main())
