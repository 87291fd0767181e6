"""The one command-line entry point, `rote`. Each command group lives in its own module here.

Failures end the same way in every command (`rote.cli.errors`): one line on stderr naming the command and
the cause, and an exit status by kind (1 failed, 2 bad input or setting, 3 broker unreachable); a traceback
only with `ROTE_DEBUG=1`.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import typer
import typer.core

from rote import __version__
from rote.cli import (
    acls_cmd,
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
    kafka_security_protocol: str | None = typer.Option(
        None,
        "--kafka-security-protocol",
        help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env ROTE_KAFKA_SECURITY_PROTOCOL; "
        "default PLAINTEXT)",
        show_default=False,
    ),
    kafka_sasl_mechanism: str | None = typer.Option(
        None,
        "--kafka-sasl-mechanism",
        help="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (env ROTE_KAFKA_SASL_MECHANISM; default SCRAM-SHA-512)",
        show_default=False,
    ),
    kafka_username: str | None = typer.Option(
        None,
        "--kafka-username",
        help="SASL principal; its password only from ROTE_KAFKA_PASSWORD or ROTE_KAFKA_PASSWORD_FILE "
        "(env ROTE_KAFKA_USERNAME)",
        show_default=False,
    ),
    kafka_ca_file: str | None = typer.Option(
        None,
        "--kafka-ca-file",
        help="PEM CA bundle for the brokers' certificates (env ROTE_KAFKA_CA_FILE; default system CAs)",
        show_default=False,
    ),
) -> None:
    """rote: an event-stream pipeline on Kafka that finds repetitive routines and automates them."""
    from pathlib import Path

    from rote.brokers import security
    from rote.errors import ConfigError

    try:
        security.configure(
            security.KafkaSecurity.from_env(
                security_protocol=kafka_security_protocol,
                sasl_mechanism=kafka_sasl_mechanism,
                username=kafka_username,
                ca_file=Path(kafka_ca_file) if kafka_ca_file else None,
            )
        )
    except ConfigError as exc:
        typer.echo(f"rote: {exc}", err=True)
        raise typer.Exit(2) from None


pipeline_cmd.register(app)
acls_cmd.register(app)
discovery_cmd.register(eval_app)
anomaly_cmd.register(eval_app)
sandbox_cmd.register(app)
automations_cmd.register(app)
report_cmd.register(app)
dashboards_cmd.register(app)
bench_cmd.register(app)
runner_cmd.register(app)


def _hide_flag_types() -> None:
    """Flags take no value, so help must not show a type after them (typer >= 0.16 prints ``<bool>``).

    Typer renders an option's type with `display_type_rich`, whose first rule is "the metavar when set";
    this makes flags (``--once``, ``--json``, ``--help``) render none, in every command at once.
    """
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "_rote_hides_flags", False):
        return

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        return original(self, ctx)

    display_type_rich._rote_hides_flags = True  # type: ignore[attr-defined]
    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


def reflow(doc: str) -> str:
    """A docstring as help text: each paragraph one line, for the terminal to wrap.

    Typer (0.29) keeps the single line breaks of every paragraph after the first, so a docstring wrapped
    at 110 characters printed at 80 columns as a line and a stray word ("stops cleanly, or after" / "ROTE_…").
    Paragraphs that are lists (a line starting with "- ", "* " or "1.") keep their lines.
    """
    out = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines = para.splitlines()
        listed = any(re.match(r"\s*(?:[-*] |\d+\. )", line) for line in lines)
        out.append(para if listed else " ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def _reflow_help(typer_app: typer.Typer) -> None:
    """Every command's docstring reflowed (`reflow`), in this app and the apps added to it."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = reflow(info.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def main() -> None:
    """`rote`: run the command; a failure is one line and an exit status (`rote.cli.errors`)."""
    from rote.cli.errors import command_name, debugging, fail

    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:
        if debugging() and not isinstance(exc, KeyboardInterrupt):
            raise
        fail(command_name(sys.argv), exc)
