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
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from rote import metrics
from rote.archive import ArchiveWriter
from rote.config import Settings
from rote.pipeline.options import Progress, RunOptions
from rote.pipeline.recorder import end_offsets, recorder
from rote.pipeline.replay import replay_log
from rote.pipeline.summary import summarize
from rote.pipeline.watch import watch_until_done
from rote.streams.topics import CATALOGUE

log = logging.getLogger("rote.run")


def run(
    settings: Settings, options: RunOptions, *, on_summary: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the pipeline; with `once`, return the summary when the replay has been processed.

    `on_summary` sees the summary before `linger_seconds` of further metrics serving, so a person (or a
    test) has the result while Prometheus can still scrape the final values.
    """
    from rote.agents import AgentOptions, build_app
    from rote.brokers import create_topics, start_broker
    from rote.demo.run import DemoRuns
    from rote.importers import bundled_log
    from rote.security.verdicts import ephemeral_result_key

    replay, fmt = (options.replay, options.fmt) if options.replay else bundled_log()
    run_dir = settings.state_dir / "last-run"
    state = Progress()
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
            ),
        )
        archive = ArchiveWriter(run_dir)
        stop = asyncio.Event()
        worker_box: dict[str, Any] = {}
        demo = DemoRuns(settings, options, bootstrap, state) if options.demo else None
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
                await service.run(stop=stop)
            except Exception as exc:  # the run must say why it cannot finish, not hang
                state.error = f"sandbox service failed: {exc!r}"
                log.exception("sandbox service failed")

        start_offsets = end_offsets(bootstrap)

        @app.task
        async def _record() -> None:
            await recorder(bootstrap, archive, state, stop, start_offsets)

        @app.task
        async def _replay() -> None:
            await replay_log(bootstrap, replay, fmt, options, state)

        @app.task
        async def _demo_runs() -> None:
            try:
                if demo is not None:
                    await demo.request_runs()
            finally:
                state.production_done = True

        if options.once:
            report_status = _parts["efficiency_tracker"]["status"]

            @app.task
            async def _watch() -> None:
                await watch_until_done(options, state, started, stop, report_status)
                await asyncio.sleep(0.5)
                await worker_box["worker"].stop()

        worker = make_worker(app)
        worker_box["worker"] = worker
        try:
            with contextlib.suppress(SystemExit):
                worker.execute_from_commandline()
        finally:
            if demo is not None:
                state.demo_form = demo.close()
        archive.close()
    summary = summarize(
        run_dir, state, seconds=time.monotonic() - started, replay=replay, broker_kind=broker.kind
    )
    if on_summary is not None:
        on_summary(summary)
    if server is not None:
        if options.linger_seconds > 0:
            time.sleep(options.linger_seconds)
        server.close()
    return summary


def make_worker(app: Any) -> Any:
    import faust

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Faust's start/stop spinner and banner go to stderr: stdout is kept for the summary (`--json`).
    return faust.Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        stdout=sys.stderr,
    )


def serve_metrics(settings: Settings) -> Any:
    metrics.init_known_series()
    if settings.metrics_port <= 0:
        return None
    return metrics.serve(settings.metrics_port, settings.metrics_addr)
