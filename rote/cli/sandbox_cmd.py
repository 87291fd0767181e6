"""`rote sandbox ...`: run one script in the jail, serve the runner on Kafka, run the hostile suite."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rote.errors import ConfigError, RoteError
from rote.sandbox_runner.terminal import neutralise

LANGS = ("python", "bash", "applescript")


def _copy_output(data: bytes, stream: TextIO, *, raw: bool) -> None:
    """The payload's output on our stdout/stderr: neutralised for a terminal (docs/sandbox.md), byte for
    byte into a pipe or file, and always ending in a newline so our status line starts on a line of its
    own, where the payload cannot have written it."""
    if not data:
        return
    if stream.isatty() and not raw:
        text = neutralise(data)
        stream.write(text if text.endswith("\n") else text + "\n")
    else:
        stream.flush()
        stream.buffer.write(data if data.endswith(b"\n") or not stream.isatty() else data + b"\n")
    stream.flush()


def _metrics_endpoint(port: int | None, addr: str | None, default_addr: str) -> tuple[int, str]:
    """Port and address of `rote sandbox serve`'s metrics: flags, then ROTE_SANDBOX_METRICS_PORT and
    ROTE_METRICS_ADDR, then 9465 on 127.0.0.1 (reachable from this host only unless configured)."""
    from rote import metrics

    if port is None:
        raw = os.environ.get("ROTE_SANDBOX_METRICS_PORT")
        try:
            port = int(raw) if raw is not None else metrics.DEFAULT_SANDBOX_METRICS_PORT
        except ValueError:
            raise ConfigError(f"ROTE_SANDBOX_METRICS_PORT={raw!r} is not a valid int") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"ROTE_SANDBOX_METRICS_PORT={raw!r} is not a port number")
    return port, addr or default_addr or "127.0.0.1"


def _result_json(res: Any, *, language: str) -> dict[str, Any]:
    out = {k: v for k, v in asdict(res).items() if k not in ("stdout", "stderr", "collected")}
    out["language"] = language
    out["passed"] = res.ok
    out["verdict"] = "passed" if res.ok else "failed"
    out["stdout"] = res.stdout.decode(errors="replace")
    out["stderr"] = res.stderr.decode(errors="replace")
    return out


def register(app: typer.Typer) -> None:
    """Add the `sandbox` group to `app`."""
    group = typer.Typer(
        help="The sandbox runner: bubblewrap jails for untrusted automations.", no_args_is_help=True
    )
    app.add_typer(group, name="sandbox")

    @group.command("run")
    def run(
        script: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The script to run.")],
        lang: Annotated[str, typer.Option("--lang", help="python | bash | applescript")] = "python",
        timeout: Annotated[float, typer.Option("--timeout", min=0.01, help="Wall-time limit, s.")] = 10.0,
        cpu: Annotated[
            float, typer.Option("--cpu", min=0.01, help="CPU-time limit of all its processes together, s.")
        ] = 5.0,
        cpu_cores: Annotated[
            float, typer.Option("--cpu-cores", min=0.01, help="Cores it may use at once (CFS quota).")
        ] = 1.0,
        memory: Annotated[int, typer.Option("--memory", min=16, help="Memory limit, MiB.")] = 256,
        pids: Annotated[int, typer.Option("--pids", min=1, help="Processes and threads at once.")] = 64,
        output_bytes: Annotated[
            int, typer.Option("--output-bytes", min=0, help="stdout+stderr cap; past it the jail is killed.")
        ] = 1 << 20,
        network: Annotated[
            bool, typer.Option("--network", help="Share the host's network (off by default).")
        ] = False,
        collect: Annotated[
            list[str] | None,
            typer.Option(
                "--collect", help="A workspace file to bring back (repeatable); printed with --json."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        raw: Annotated[
            bool,
            typer.Option(
                "--raw",
                help="Copy the script's output byte for byte even to a terminal (default: control "
                "characters and escape sequences are shown, not obeyed, when printing to a terminal).",
            ),
        ] = False,
    ) -> None:
        """Run SCRIPT in the jail and report why it stopped and what it used. Exit status 0 when it exited
        0; 1 when it failed or was stopped; 2 when the jail could not be set up (nothing was run)."""
        from rote.sandbox_runner.jail import Jail, JobSpec, Limits

        err = Console(stderr=True)
        if lang not in LANGS:
            raise typer.BadParameter(f"choose one of {', '.join(LANGS)}", param_hint="--lang")
        if lang == "applescript":
            detail = "AppleScript is unsupported on this platform"
            if shutil.which("osascript"):
                detail = "AppleScript cannot be jailed by bubblewrap; not run"
            out = {
                "language": lang,
                "verdict": "unsupported",
                "passed": False,
                "stop_reason": "unsupported",
                "detail": detail,
                "exit_code": None,
                "signal": None,
            }
            typer.echo(json.dumps(out)) if as_json else err.print(f"[yellow]unsupported:[/yellow] {detail}")
            raise typer.Exit(code=1)
        try:
            limits = Limits(
                wall_seconds=timeout,
                cpu_seconds=cpu,
                cpu_cores=cpu_cores,
                memory_bytes=memory << 20,
                pids=pids,
                output_bytes=output_bytes,
                network=network,
            )
            name = "script.py" if lang == "python" else "script.sh"
            argv = ["python3", name] if lang == "python" else ["bash", name]
            job = JobSpec(
                files={name: script.read_bytes()}, argv=argv, collect=tuple(collect or ()), limits=limits
            )
            with Jail(max_concurrency=1) as jail:
                res = jail.run(job)
        except RoteError as exc:
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "language": lang,
                            "verdict": "error",
                            "passed": False,
                            "stop_reason": "setup",
                            "detail": str(exc),
                        }
                    )
                )
            else:
                err.print(f"[red]refused:[/red] {escape(str(exc))}")
            raise typer.Exit(code=2) from None
        if as_json:
            out = _result_json(res, language=lang)
            out["collected"] = {k: v.decode(errors="replace") for k, v in res.collected.items()}
            typer.echo(json.dumps(out))
        else:
            _copy_output(res.stdout, sys.stdout, raw=raw)
            _copy_output(res.stderr, sys.stderr, raw=raw)
            colour = "green" if res.ok else "red"
            err.print(
                f"[{colour}]{res.stop_reason}[/{colour}]: {escape(res.detail)}"
                f" | exit {res.exit_code} signal {res.signal}"
                f" | wall {res.wall_seconds:.3f}s cpu {res.cpu_seconds:.3f}s"
                f" peak {res.peak_memory_bytes / 2**20:.1f} MiB output {res.output_bytes} B uid {res.uid}"
            )
        raise typer.Exit(code=0 if res.ok else 1)

    @group.command("serve")
    def serve(
        bootstrap: Annotated[
            str | None,
            typer.Option(
                "--bootstrap", help="Kafka host:port[,host:port]; default from ROTE_BROKER=kafka://..."
            ),
        ] = None,
        group_id: Annotated[
            str, typer.Option("--group", help="Consumer group shared by all runners.")
        ] = "rote-sandbox",
        concurrency: Annotated[
            int | None,
            typer.Option(
                "--concurrency", min=1, help="Jails at once (default ROTE_SANDBOX_CONCURRENCY or 2)."
            ),
        ] = None,
        timeout: Annotated[
            float, typer.Option("--timeout", min=0.01, help="Wall-time limit per test, s.")
        ] = 10.0,
        memory: Annotated[int, typer.Option("--memory", min=16, help="Memory limit per test, MiB.")] = 256,
        cpu: Annotated[
            float, typer.Option("--cpu", min=0.01, help="CPU-time limit per test (all processes), s.")
        ] = 5.0,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port",
                min=0,
                help="Prometheus port (default ROTE_SANDBOX_METRICS_PORT or 9465; 0 disables).",
            ),
        ] = None,
        metrics_addr: Annotated[
            str | None,
            typer.Option(
                "--metrics-addr",
                help="Address the metrics endpoint binds (default ROTE_METRICS_ADDR or 127.0.0.1).",
            ),
        ] = None,
        session_timeout: Annotated[
            float,
            typer.Option(
                "--session-timeout",
                min=6.0,
                max=300.0,
                help="Seconds without a heartbeat before the group hands a dead runner's partitions to "
                "the others (Kafka's group.min.session.timeout.ms is 6 s by default).",
            ),
        ] = 10.0,
    ) -> None:
        """Consume `automations`, test every generated automation in the jail and publish signed
        `test-results` and `metrics` until interrupted. Run several for more throughput: they share the
        group. Needs the result key (ROTE_RESULT_KEY or ROTE_RESULT_KEY_FILE) the registry verifies with."""
        from rote import metrics
        from rote.config import Settings
        from rote.sandbox_runner.jail import Limits
        from rote.sandbox_runner.service import SandboxService

        err = Console(stderr=True)
        try:
            settings = Settings.from_env(sandbox_concurrency=concurrency)
            servers = bootstrap or settings.bootstrap_servers
            port, addr = _metrics_endpoint(metrics_port, metrics_addr, settings.metrics_addr)
            service = SandboxService(
                bootstrap_servers=servers,
                group_id=group_id,
                concurrency=settings.sandbox_concurrency,
                limits=Limits(wall_seconds=timeout, cpu_seconds=cpu, memory_bytes=memory << 20),
                session_timeout_ms=int(session_timeout * 1000),
            )
        except RoteError as exc:
            hint = " (pass --bootstrap host:port)" if "broker" in str(exc) else ""
            err.print(f"[red]error:[/red] {escape(str(exc))}{hint}")
            raise typer.Exit(code=2) from None
        from rote.cli.errors import require_broker

        require_broker(servers)  # broker down: one line, exit 3 (rote.cli.errors), before any client starts
        server = metrics.serve(port, addr, registry=metrics.SANDBOX_REGISTRY) if port else None
        metrics.init_known_series(ingress_topics=("automations",))

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            err.print(
                f"sandbox runner: group {group_id} on {servers}, {settings.sandbox_concurrency} jails"
                + (f", metrics on {server.addr}:{server.port}" if server else "")
            )
            await service.run(stop=stop)

        try:
            asyncio.run(main())
        except RoteError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(code=2) from None
        finally:
            if server is not None:
                server.close()
        err.print(f"stopped: {service.processed} automations tested, {service.dead_letters} dead letters")

    @group.command("hostile")
    def hostile(
        suite: Annotated[
            Path | None,
            typer.Argument(help="Folder of hostile programs (default: the checkout's tests/hostile)."),
        ] = None,
        markdown: Annotated[bool, typer.Option("--markdown", help="Print the docs table.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Run the hostile suite: each program must be contained with the stop reason its header expects.
        Exit status 1 if any is not."""
        from rote.sandbox_runner.hostile import (
            iter_default_suite,
            load_suite,
            markdown_table,
            outcome_row,
            run_suite,
        )
        from rote.sandbox_runner.jail import Jail

        err = Console(stderr=True)
        folder = suite or next(iter_default_suite(), None)
        if folder is None:
            raise typer.BadParameter("no tests/hostile folder here; pass one", param_hint="SUITE")
        try:
            cases = load_suite(folder)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=as_json,
            ) as bar:
                task = bar.add_task("hostile suite", total=len(cases))
                with Jail(max_concurrency=1) as jail:
                    outcomes = run_suite(jail, cases, progress=lambda _o: bar.advance(task))
        except RoteError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(code=2) from None
        failed = [o for o in outcomes if not o.contained]
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "programs": len(outcomes),
                        "contained": len(outcomes) - len(failed),
                        "outcomes": [outcome_row(o) for o in outcomes],
                    }
                )
            )
        elif markdown:
            typer.echo(markdown_table(outcomes))
        else:
            for o in outcomes:
                mark = "[green]contained[/green]" if o.contained else "[red]NOT CONTAINED[/red]"
                # Problems quote the program's own output: shown, never obeyed, never read as markup.
                problems = escape(neutralise(repr(o.problems).encode())) if o.problems else ""
                err.print(
                    f"{mark} {escape(o.case.path.name)}: {o.result.stop_reason} ({escape(o.result.detail)})"
                    + (f" {problems}" if problems else "")
                )
            err.print(f"{len(outcomes) - len(failed)}/{len(outcomes)} contained")
        raise typer.Exit(code=1 if failed else 0)

    @group.command("info")
    def info(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
        """Show what isolation this host gives the jail (cgroup controllers, uids, interpreter, seccomp)."""
        from rote.sandbox_runner.jail import Jail

        try:
            with Jail(max_concurrency=1) as jail:
                desc = jail.describe()
        except RoteError as exc:
            Console(stderr=True).print(f"[red]the jail cannot be set up here:[/red] {escape(str(exc))}")
            raise typer.Exit(code=2) from None
        typer.echo(json.dumps(desc, indent=None if as_json else 2))
