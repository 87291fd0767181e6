"""The one command-line entry point, `rote`. Each command group lives in its own module here."""

from __future__ import annotations

import typer

from rote import __version__
from rote.cli import (
    anomaly_cmd,
    automations_cmd,
    bench_cmd,
    dashboards_cmd,
    discovery_cmd,
    pipeline_cmd,
    report_cmd,
    runner_cmd,
    sandbox_cmd,
)

app = typer.Typer(
    name="rote",
    help="Find the rote work in people's computer use and take it off their hands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(
    help="Score rote's discovery and anomaly detection against labelled data.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rote {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """rote: an event-stream pipeline on Kafka that finds repetitive routines and automates them."""


pipeline_cmd.register(app)
discovery_cmd.register(eval_app)
anomaly_cmd.register(eval_app)
sandbox_cmd.register(app)
automations_cmd.register(app)
report_cmd.register(app)
dashboards_cmd.register(app)
bench_cmd.register(app)
runner_cmd.register(app)


def main() -> None:
    app()
