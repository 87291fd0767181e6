"""`rote run`: the whole pipeline in one process on one broker, fed by a replayed UI log.

One asyncio loop (owned by the Faust worker) runs the agents, the sandbox service, the replay, a recorder
that archives every topic for `rote report`/`rote automations`, and, with `--once`, a watcher that stops
everything when the replay has been fully processed and the pipeline has gone quiet.

Malformed events are injected on `user-actions` unless `--no-inject` is given (reported as such in the
summary), to show the dead-letter path on real broker traffic. The demo (`rote.demo`, on unless
`demo=False`) serves a local replica of the recorded web form and the recorded workbook, runs the executor
(`rote runner`'s service) in this process, and, once an automation that fills the form is verified, asks
for one real run per workbook row: Chromium fills the replica, the replica checks every submission
against the workbook, every run is reported on `metrics` with `source="production"`. No run is made up.
`--inject-slowdown` makes the replica answer slowly after 40 submissions: real slow runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rote import metrics
from rote.archive import ArchiveWriter
from rote.config import Settings
from rote.pipeline import lifecycle
from rote.pipeline.lifecycle import RUN_LOG, RunInput, guarded
from rote.pipeline.options import Progress, RunOptions
from rote.pipeline.recorder import end_offsets, recorder
from rote.pipeline.replay import replay_log
from rote.pipeline.summary import summarize
from rote.pipeline.watch import Bars, replay_consumed, watch_until_done
from rote.streams.topics import CATALOGUE

log = logging.getLogger("rote.run")


def run(
    settings: Settings, options: RunOptions, *, on_summary: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the pipeline; with `once`, return the summary when the replay has been processed.

    `on_summary` sees the summary before `linger_seconds` of further metrics serving, so a person (or a
    test) has the result while Prometheus can still scrape the final values. The replay file is read
    before anything starts (a bad one raises `ImportFormatError`); the archive becomes `last-run` only if
    the run finished, and a run that raises leaves `last-run` as it was (`rote.pipeline.lifecycle`).
    """
    run_input = lifecycle.prepare(settings, options)
    state = Progress(bars=Bars.for_run(options))
    with lifecycle.run_logging(run_input.run_dir / RUN_LOG) as run_log:
        try:
            return _run(settings, options, run_input, state, run_log.path, on_summary=on_summary)
        except BaseException:
            lifecycle.abandon(run_input, settings)
            raise
        finally:
            if state.bars is not None:
                state.bars.stop()


def _run(
    settings: Settings,
    options: RunOptions,
    run_input: RunInput,
    state: Progress,
    run_log: Path,
    *,
    on_summary: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    from rote.agents import AgentOptions, build_app
    from rote.agents.app import internal_topics
    from rote.agents.optimizer_feed import feed_topic_name
    from rote.brokers import create_topics, start_broker
    from rote.demo.run import DemoRuns
    from rote.security.verdicts import ephemeral_result_key

    replay, run_dir = run_input.replay, run_input.run_dir
    started = time.monotonic()
    broker_url = None if settings.broker == "embedded" else settings.broker
    with start_broker(broker_url) as broker:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, CATALOGUE, replication=settings.replication)
        server = serve_metrics(settings)
        # One ephemeral key per run: the in-process sandbox runner signs test results with it and the
        # registry verifies them with it (rote.security.verdicts); it never leaves this process.
        result_key = ephemeral_result_key()
        app, _parts = build_app(
            settings,
            bootstrap=bootstrap,
            options=AgentOptions(
                idle_flush_seconds=3.0 if options.once else 300.0,
                report_interval_seconds=4.0 if options.once else settings.report_interval_seconds,
                result_key=result_key,
            ),
        )
        create_topics(bootstrap, internal_topics(app), replication=settings.replication)
        archive = ArchiveWriter(run_dir)
        stop = asyncio.Event()
        worker_box: dict[str, Any] = {}
        sandbox_box: dict[str, Any] = {}
        demo = DemoRuns(settings, options, bootstrap, state, result_key=result_key) if options.demo else None
        if demo is not None:

            @app.task
            async def _runner() -> None:
                try:
                    await demo.service.run(stop=stop)
                except Exception as exc:  # the run must say why it cannot finish, not hang
                    state.error = f"executor failed: {exc!r}"
                    log.exception("executor failed")

        @app.task
        async def _sandbox() -> None:
            from rote.sandbox_runner.service import SandboxService

            try:
                service = SandboxService(
                    bootstrap_servers=bootstrap,
                    group_id=f"{settings.app_id}-sandbox",
                    concurrency=settings.sandbox_concurrency,
                    result_key=result_key,
                )
                sandbox_box["service"] = service
                await service.run(stop=stop)
            except Exception as exc:  # the run must say why it cannot finish, not hang
                state.error = f"sandbox service failed: {exc!r}"
                log.exception("sandbox service failed")

        start_offsets = end_offsets(bootstrap)

        @app.task
        async def _record() -> None:
            await guarded(
                state, "recorder", recorder(bootstrap, archive, state, stop, start_offsets, result_key)
            )

        @app.task
        async def _replay() -> None:
            await guarded(state, "replay", replay_log(bootstrap, run_input.imported, options, state))

        @app.task
        async def _demo_runs() -> None:
            try:
                if demo is not None:
                    await demo.request_runs()
            finally:
                state.production_done = True

        if options.once:
            report_status = _parts["efficiency_tracker"]["status"]
            flush_all = _parts["task_identifier"]["flush_all"]

            @app.task
            async def _flush_at_end() -> None:
                # The replay is the whole input: once it is consumed, close every user's open segment
                # (a short log would otherwise wait for the idle timer, or never yield its routines).
                while not stop.is_set():
                    if replay_consumed(state):
                        await flush_all()
                        return
                    await asyncio.sleep(0.2)

            @app.task
            async def _watch() -> None:
                await watch_until_done(
                    options,
                    state,
                    started,
                    stop,
                    report_status,
                    busy=lambda: bool(getattr(sandbox_box.get("service"), "testing", 0)),
                    feed_topic=feed_topic_name(settings.app_id),
                )
                await asyncio.sleep(0.5)
                await worker_box["worker"].stop()

        # (no shutdown watchdog here, unlike `rote worker`: a run writes its summary and archive after the
        # worker stops, and a run stopped during its own start can take longer than the grace to wind down)
        worker = make_worker(app)
        worker_box["worker"] = worker
        try:
            try:
                worker.execute_from_commandline()
            except SystemExit as exc:
                lifecycle.worker_exit(state, exc.code, run_log)
        finally:
            if demo is not None:
                state.demo_form = demo.close()
        archive.close()
    summary = summarize(
        run_dir,
        state,
        seconds=time.monotonic() - started,
        replay=replay,
        broker_kind=broker.kind,
        imported=run_input.imported.stats,
    )
    archive_dir = lifecycle.finish(run_input, state, settings)  # last-run only if the run finished
    summary.update(archive=str(archive_dir), run_log=str(archive_dir / RUN_LOG))
    if state.bars is not None:
        state.bars.stop()  # the bars leave the screen before the summary is printed
    if on_summary is not None:
        on_summary(summary)
    if server is not None:
        if options.linger_seconds > 0:
            time.sleep(options.linger_seconds)
        server.close()
    return summary


def make_worker(app: Any, *, shutdown_grace_seconds: float | None = None) -> Any:
    """A Faust worker for `app`; with `shutdown_grace_seconds`, a shutdown that takes longer (a broker that
    went away: Faust waits for it without limit) ends the process with status 1 and one log line."""
    import faust

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Faust's banner goes to stderr: stdout is kept for the summary (`--json`). Its spinner is off: it
    # writes cursor escapes even when stderr is not a terminal, and the run has its own progress bars.
    armed = threading.Event()

    def arm() -> None:
        if shutdown_grace_seconds is not None and not armed.is_set():
            armed.set()
            grace = shutdown_grace_seconds
            message = (
                f"shutdown still waiting after {grace:.0f} s (is the broker gone?): exiting; the state and "
                "offsets on the broker stand at the last commit, and what came after it is processed again"
            )
            _exit_later(grace, 1, lambda: message, name="rote-shutdown-watchdog", level=logging.ERROR)

    class Worker(faust.Worker):
        """Faust's worker, with the grace watchdog armed the moment a signal asks it to stop: before Faust
        stops its consumer, whose wait for in-flight events and last commit can hang on a gone broker."""

        def _schedule_shutdown(self, signal: Any) -> None:
            arm()
            super()._schedule_shutdown(signal)

    worker = Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        stdout=sys.stderr,
    )
    worker.spinner = None
    if shutdown_grace_seconds is not None:

        async def watchdog(sender: Any = None, **kwargs: Any) -> None:
            arm()  # a stop without a signal (the app crashed: agents/app.py)

        app.on_before_shutdown.connect(watchdog)
    return worker


def _exit_later(seconds: float, code: int, message: Callable[[], str], *, name: str, level: int) -> None:
    """A daemon thread that, `seconds` from now, logs `message()` and ends the process with `code` (both
    watchdogs: `rote worker`'s shutdown grace and `rote run`'s exit)."""

    def run() -> None:
        time.sleep(seconds)
        log.log(level, "%s", message())
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)

    threading.Thread(target=run, name=name, daemon=True).start()


def leave(code: int, *, wait_seconds: float = 30.0) -> None:
    """End `rote run` with `code` once its summary and archive are written.

    Why not just return: a run stopped while Faust was still starting (`--timeout` during start-up, a
    broker that went away) can leave the Kafka client's non-daemon thread looping on a broker that is gone,
    and the interpreter would wait for it forever after everything was written. So the interpreter's own
    shutdown runs as usual (it ends the generator's worker process first, which holds this process's
    stdout), and a daemon thread ends the process with `code` if that shutdown is still waiting
    `wait_seconds` later (`exit_watchdog`).
    """
    exit_watchdog(code, wait_seconds=wait_seconds)
    if code:
        raise SystemExit(code)


def exit_watchdog(code: int, *, wait_seconds: float = 30.0) -> None:
    """Exit with `code` in `wait_seconds` if the process is still there then, naming in one log line the
    threads its shutdown waited for. Also armed when a run fails with an error (its one-line message is
    printed by the CLI first)."""

    def message() -> str:
        main = threading.main_thread()
        stuck = [t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]
        return f"the run ended {wait_seconds:.0f} s ago; not waiting for threads: {', '.join(stuck)}"

    _exit_later(wait_seconds, code, message, name="rote-exit", level=logging.WARNING)


def serve_metrics(settings: Settings) -> Any:
    metrics.init_known_series()
    if settings.metrics_port <= 0:
        return None
    return metrics.serve(settings.metrics_port, settings.metrics_addr)
