"""The demo inside `rote run`: the form replica, the workbook, and the 50 real runs through the executor.

`DemoSite.start(state_dir)` writes `StudentRecords.xlsx` (the 50 students of the bundled log) into
`<state_dir>/demo/`, starts the form replica on 127.0.0.1, and says how the executor reaches it (its
files root and the site mapping `https://forms.zoho.com=http://127.0.0.1:PORT`).

`request_demo_runs(...)` waits until the pipeline has verified an automation that fills the form from the
workbook, then asks the executor, on `run-requests`, to run it once per workbook row (2..51), and waits
for the 50 answers on `metrics`. Nothing here measures or fabricates a run: the executor runs the
generated program in Chromium against the replica, and the replica checks each submission against the
workbook. A row parameter is the workbook row; yes/no parameters (optional steps) are answered "true";
an automation that needs any other input cannot be run for a workbook row and is skipped, with the
reason kept in the summary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rote.streams.schemas import Automation, RunRequest, encode
from rote.streams.topics import RUN_REQUESTS

if TYPE_CHECKING:
    from rote.pipeline.options import Progress, RunOptions

from rote import metrics
from rote.config import Settings
from rote.demo.form import FormServer
from rote.demo.students import FIRST_ROW, LAST_ROW, WORKBOOK_NAME, students_from_log, write_workbook
from rote.runner.kafka import client_kwargs
from rote.runner.request import new_request

log = logging.getLogger(__name__)


@dataclass
class DemoSite:
    root: Path
    form: FormServer

    @classmethod
    def start(cls, state_dir: Path, *, slowdown: bool = False) -> DemoSite:
        root = state_dir / "demo"
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the run hosts' unprivileged uid reads the workbook
        students = students_from_log()
        book = write_workbook(students, root / WORKBOOK_NAME)
        book.chmod(0o644)
        # --inject-slowdown: after 40 submissions every answer takes 1.5 s longer (real slow runs)
        form = FormServer(
            students, slow_after=40 if slowdown else None, slow_seconds=1.5 if slowdown else 0.0
        )
        return cls(root=root, form=form.start())

    def stop(self) -> None:
        self.form.stop()


@dataclass
class DemoProgress:
    automation_id: str | None = None
    requested: int = 0
    answered: int = 0
    skipped: list[str] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)


def _walk(e: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(e, Mapping):
        yield e
        for v in e.values():
            yield from _walk(v)
    elif isinstance(e, list):
        for v in e:
            yield from _walk(v)


def demo_params(a: Automation, row: int) -> dict[str, str] | None:
    """Parameters to run `a` for workbook row `row`, or None when it needs inputs a row cannot give."""
    row_params: set[str] = set()
    reads_workbook = False
    for st in a.plan:
        target = st.get("target") or {}
        wb = target.get("workbook")
        if isinstance(wb, Mapping) and wb.get("s") == WORKBOOK_NAME:
            reads_workbook = True
        cell = target.get("cell")
        if isinstance(cell, Mapping) and cell.get("k") == "cellref":
            for node in _walk(cell.get("row")):
                if node.get("k") == "param":
                    row_params.add(str(node["name"]))
    guards = {str(st["guard"]) for st in a.plan if st.get("guard")}
    if not reads_workbook or not row_params:
        return None
    params: dict[str, str] = {}
    for p in a.parameters:
        if p in row_params:
            params[p] = str(row)
        elif p in guards:
            params[p] = "true"
        else:
            return None
    return params


def demo_requests(a: Automation) -> list[RunRequest] | None:
    rows = range(FIRST_ROW, LAST_ROW + 1)
    out = []
    for row in rows:
        params = demo_params(a, row)
        if params is None:
            return None
        out.append(new_request(a.automation_id, params, by="rote run demo"))
    return out


async def request_demo_runs(
    bootstrap: str,
    automations: Callable[[], list[Automation]],
    progress: DemoProgress,
    *,
    give_up: Callable[[], bool],
    timeout: float,
) -> None:
    """Ask for one run per workbook row of the first verified automation that fills the form; wait for
    the answers (`progress.answered` is counted by the caller from the metrics it sees)."""
    from aiokafka import AIOKafkaProducer

    deadline = time.monotonic() + timeout
    requests: list[RunRequest] | None = None
    tried: set[str] = set()
    while requests is None:
        for a in automations():
            if a.automation_id in tried:
                continue
            tried.add(a.automation_id)
            requests = demo_requests(a)
            if requests is None:
                progress.skipped.append(f"{a.automation_id}: needs inputs a workbook row cannot give")
                continue
            progress.automation_id = a.automation_id
            break
        if requests is None:
            if give_up() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)
    producer = AIOKafkaProducer(**client_kwargs(bootstrap), acks="all")
    await producer.start()
    try:
        for r in requests:
            progress.run_ids.add(r.run_id)
            await producer.send_and_wait(RUN_REQUESTS.name, encode(r), key=r.automation_id.encode())
            progress.requested += 1
    finally:
        await producer.stop()
    while progress.answered < progress.requested and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


class DemoRuns:
    """The demo's parts inside `rote run`: the form replica, the executor's service, the run requests."""

    def __init__(self, settings: Settings, options: RunOptions, bootstrap: str, state: Progress) -> None:
        from rote.demo.run import DemoProgress, DemoSite
        from rote.runner.executor import RunnerConfig
        from rote.runner.service import RunnerService

        self.site = DemoSite.start(settings.state_dir, slowdown=options.inject_slowdown)
        self.progress = DemoProgress()
        self.state = state
        self.options = options
        self.bootstrap = bootstrap
        config = RunnerConfig.from_env(
            root=self.site.root,
            sites=self.site.form.site_mapping(),
            state_dir=settings.state_dir / "runner",
        )
        self.service = RunnerService(
            bootstrap_servers=bootstrap,
            config=config,
            group_id=f"{settings.app_id}-runner",
            on_metric=self._answered,
        )

    def _answered(self, m: Any) -> None:
        if m.run_id in self.progress.run_ids:
            self.progress.answered += 1
            self.state.production_runs += 1

    def _verified(self) -> list[Any]:
        out = []
        for aid in list(self.state.verified):
            found = self.service.registry.state_of(aid)
            if found is not None and found[1] in ("verified", "active"):
                out.append(found[0])
        return out

    def _give_up(self) -> bool:
        """Everything was processed and nothing got verified: nothing to run."""
        from rote.streams.topics import USER_ACTIONS

        consumed = metrics.EVENTS_CONSUMED.labels(topic=USER_ACTIONS.name, agent="task-identifier")
        caught_up = (
            self.state.replay_done and consumed._value.get() >= self.state.produced + self.state.injected_bad
        )
        return bool(caught_up and time.monotonic() - self.state.last_event > self.options.quiet_seconds)

    async def request_runs(self) -> None:
        from rote.demo.run import request_demo_runs

        await request_demo_runs(
            self.bootstrap,
            self._verified,
            self.progress,
            give_up=self._give_up,
            timeout=self.options.timeout_seconds,
        )

    def close(self) -> dict[str, Any]:
        self.site.stop()
        snap = self.site.form.snapshot()
        snap["automation_id"] = self.progress.automation_id
        snap["runs_requested"] = self.progress.requested
        snap["runs_answered"] = self.progress.answered
        if self.progress.skipped:
            snap["skipped"] = self.progress.skipped
        return snap


def automation_runs(run_dir: Path) -> dict[str, int]:
    """Runs reported on `metrics` in this run's archive, by where they came from: production (the
    executor's real runs) and simulated (made up by a program; none in the demo). Sandbox test runs are
    the test-results' business and not counted here."""
    from rote.archive import read_events
    from rote.streams.schemas import RunMetric
    from rote.streams.topics import METRICS

    out = {"production": 0, "simulated": 0}
    for m in read_events(run_dir, METRICS.name, RunMetric):
        if m.source in out:
            out[m.source] += 1
    return out


def demo_form(state: Progress) -> dict[str, Any] | None:
    """The form replica's verdicts for the summary (None when the demo was off)."""
    return state.demo_form
