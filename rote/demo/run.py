"""The demo inside `rote run`: the form replica, the workbook, and the 50 real runs through the executor.

`DemoSite.start(state_dir)` writes `StudentRecords.xlsx` (the 50 students of the bundled log) into
a fresh folder the run hosts' uid can read, starts the form replica on 127.0.0.1, and says how the
executor reaches it (its files root and the site mapping `https://forms.zoho.com=http://127.0.0.1:PORT`).

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
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rote.streams.schemas import Automation, RunRequest, encode
from rote.streams.topics import RUN_REQUESTS

if TYPE_CHECKING:
    from rote.pipeline.options import Progress, RunOptions

from rote.config import Settings
from rote.demo.form import FormServer
from rote.demo.students import (
    COLUMNS,
    FORM_FIELDS,
    WORKBOOK_NAME,
    Student,
    expected_submission,
    students_from_log,
    write_workbook,
)
from rote.runner.kafka import client_kwargs
from rote.runner.request import new_request

log = logging.getLogger(__name__)


@dataclass
class DemoSite:
    root: Path
    form: FormServer

    @classmethod
    def start(cls, state_dir: Path, *, slowdown: bool = False) -> DemoSite:
        # The run hosts' unprivileged uid must reach the workbook: a fresh folder in the system's temp
        # dir (world-traversable), not the state dir, which may sit under a private home or test folder.
        root = Path(tempfile.mkdtemp(prefix="rote-demo-"))
        root.chmod(0o755)
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
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class DemoProgress:
    automation_id: str | None = None
    requested: int = 0
    answered: int = 0
    #: requests the executor refused (counted as answered: no metrics event ever comes for them)
    refused: int = 0
    refusals: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)
    #: value parameters the demo read off the workbook row (see demo_plan)
    inputs: list[str] = field(default_factory=list)


def _walk(e: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(e, Mapping):
        yield e
        for v in e.values():
            yield from _walk(v)
    elif isinstance(e, list):
        for v in e:
            yield from _walk(v)


@dataclass(frozen=True, kw_only=True)
class DemoPlan:
    """How to run an automation for every workbook row: which parameter is the row, which yes/no
    parameters are answered "true", and which value parameters are read off the row."""

    automation: Automation
    row_params: frozenset[str]
    flags: frozenset[str]
    #: value parameter -> ("field", form field name) | ("cell", column letter)
    inputs: dict[str, tuple[str, str]]

    def params(self, student: Student) -> dict[str, str]:
        want = expected_submission(student)
        cells = dict(zip(COLUMNS, student.cells(), strict=True))
        out: dict[str, str] = {}
        for p in self.automation.parameters:
            if p in self.row_params:
                out[p] = str(student.row)
            elif p in self.flags:
                out[p] = "true"
            else:
                kind, key = self.inputs[p]
                out[p] = want[key] if kind == "field" else cells[key]
        return out


def _const(e: Any) -> str | None:
    return str(e["s"]) if isinstance(e, Mapping) and e.get("k") == "const" else None


def demo_plan(a: Automation) -> DemoPlan | None:
    """How to run `a` for a workbook row, or None when it does not read the workbook by row, does not
    always submit the form (a discovered fragment of the routine), or needs an input a row cannot give.

    Value parameters exist where the generator could not learn a value from the recording (with privacy
    redaction on, a pseudonymised phone number, say): they are inputs a person or a system supplies at
    run time. Here the supplier is the workbook row: a value typed into a form field gets the row's
    record for that field (`expected_submission`); a value put on the clipboard gets the cell the step
    before it read (the person copied the cell they had just read). The summary names these inputs.
    """
    row_params: set[str] = set()
    reads_workbook = False
    last_col: str | None = None
    inputs: dict[str, tuple[str, str]] = {}
    for st in a.plan:
        target = st.get("target") or {}
        if _const(target.get("workbook")) == WORKBOOK_NAME:
            reads_workbook = True
        cell = target.get("cell")
        if isinstance(cell, Mapping) and cell.get("k") == "cellref":
            last_col = str(cell.get("col"))
            for node in _walk(cell.get("row")):
                if node.get("k") == "param":
                    row_params.add(str(node["name"]))
        value = st.get("value")
        if isinstance(value, Mapping) and value.get("k") == "param":
            name = str(value["name"])
            field_name = _const(target.get("field"))
            if st.get("op") == "fill_field" and field_name in FORM_FIELDS:
                inputs[name] = ("field", str(field_name))
            elif st.get("op") == "copy" and last_col in COLUMNS:
                inputs[name] = ("cell", str(last_col))
    flags = {str(st["guard"]) for st in a.plan if st.get("guard")}
    submits = any(
        st.get("op") == "click"
        and str(_const((st.get("target") or {}).get("element_type")) or "").lower() == "submit"
        and not st.get("guard")
        for st in a.plan
    )
    if not reads_workbook or not row_params or not submits:
        return None  # e.g. a fragment of the routine that never submits the form: not a record entered
    if any(p not in row_params and p not in flags and p not in inputs for p in a.parameters):
        return None
    return DemoPlan(
        automation=a,
        row_params=frozenset(row_params),
        flags=frozenset(flags),
        inputs={p: inputs[p] for p in a.parameters if p in inputs and p not in row_params},
    )


def demo_requests(plan: DemoPlan, students: list[Student]) -> list[RunRequest]:
    return [new_request(plan.automation.automation_id, plan.params(s), by="rote run demo") for s in students]


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
    plans: list[DemoPlan] = []
    while not plans:
        for a in automations():
            plan = demo_plan(a)
            if plan is None:
                why = (
                    f"{a.automation_id}: not a whole record (reads rows, submits) or needs inputs a row lacks"
                )
                if why not in progress.skipped:
                    progress.skipped.append(why)
                continue
            plans.append(plan)
        if not plans:
            if give_up() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)
    best = min(plans, key=lambda p: (len(p.inputs), len(p.flags)))
    progress.automation_id = best.automation.automation_id
    progress.inputs = sorted(best.inputs)
    requests = demo_requests(best, students_from_log())
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

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        bootstrap: str,
        state: Progress,
        *,
        result_key: bytes | None = None,
    ) -> None:
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
            result_key=result_key,
            on_refused=self._refused,
        )

    def _answered(self, m: Any) -> None:
        if m.run_id in self.progress.run_ids:
            self.progress.answered += 1
            self.state.production_runs += 1
            self.state.production_published.add(m.run_id)

    def _refused(self, request: Any, why: str) -> None:
        if request.run_id in self.progress.run_ids:
            self.progress.answered += 1
            self.progress.refused += 1
            if why not in self.progress.refusals:
                self.progress.refusals.append(why)

    def _verified(self) -> list[Any]:
        out = []
        for aid in list(self.state.verified):
            found = self.service.registry.state_of(aid)
            if found is not None and found[1] in ("verified", "active"):
                out.append(found[0])
        return out

    def _give_up(self) -> bool:
        """Everything was processed and nothing got verified: nothing to run."""
        from rote.pipeline.watch import replay_consumed

        caught_up = replay_consumed(self.state)
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
        return form_summary(self.site.form.snapshot(), self.progress)


#: Why the demo form saw no run (another log than the bundled one), in the JSON and the text summary alike.
FORM_NOT_RUN = "no verified automation fills the demo's form from its workbook"


def form_summary(snap: dict[str, Any], progress: DemoProgress) -> dict[str, Any]:
    """The form replica's verdicts with what the demo asked of it (the summary's `demo_form`)."""
    snap = dict(snap)
    snap["automation_id"] = progress.automation_id
    snap["runs_requested"] = progress.requested
    snap["runs_answered"] = progress.answered
    if progress.refused:
        snap["runs_refused"] = progress.refused
        snap["refusals"] = list(progress.refusals)
    snap["inputs_from_workbook_row"] = progress.inputs
    if progress.skipped:
        snap["skipped"] = progress.skipped
    if not progress.requested:
        # nothing ran against the form (another log than the bundled one): no target to compare with, so
        # `--json` says "not run" as the text does, not "0 of 50 expected"
        snap["expected"] = None
        snap["not_run"] = FORM_NOT_RUN
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
