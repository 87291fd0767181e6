"""Benchmark of the executor on the demo: records per minute and time saved per record.

    python -m rote.runner.bench [--from ARCHIVE] [--rows 20] [--hosts 2]

Takes the whole-record form automation of a `rote run` archive (default: the last run), serves the form
replica and the workbook, and runs it through the executor for `--rows` workbook rows with `--hosts` run
hosts at once (Chromium started once per host, before the clock starts). Prints one JSON object: wall
time, records per minute, median run and step-sum durations, the recorded human baseline (median span
of the observed instances in the candidate's latest version) and time saved per record (baseline minus
median run). Every submission is checked by the replica; a run that fails or a submission that is wrong
is counted and reported, never dropped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rote.archive import last_run_dir, read_events
from rote.demo.form import FormServer
from rote.demo.run import demo_plan, demo_requests
from rote.demo.students import WORKBOOK_NAME, students_from_log, write_workbook
from rote.generator.registry import from_archive
from rote.runner.executor import Executor, RunnerConfig
from rote.streams.schemas import Candidate


def _baseline(run_dir: Path, candidate_id: str) -> float | None:
    latest: Candidate | None = None
    for c in read_events(run_dir, "candidates", Candidate):
        if c.candidate_id == candidate_id and (latest is None or c.version >= latest.version):
            latest = c
    if latest is None or not latest.instances:
        return None
    # each instance's own time, as the efficiency tracker's baseline counts it (other work within it left out)
    return statistics.median(
        i.active_seconds if i.active_seconds is not None else (i.end - i.start).total_seconds()
        for i in latest.instances
    )


def bench(run_dir: Path, rows: int, hosts: int) -> dict[str, Any]:
    reg = from_archive(run_dir)
    plans = [p for r in reg.records() if r.state in ("verified", "active") if (p := demo_plan(r.automation))]
    if not plans:
        raise SystemExit(f"no verified whole-record form automation in {run_dir}")
    plan = min(plans, key=lambda p: (len(p.inputs), len(p.flags)))
    students = students_from_log()[:rows]
    root = Path(tempfile.mkdtemp(prefix="rote-bench-"))
    root.chmod(0o755)
    write_workbook(students_from_log(), root / WORKBOOK_NAME).chmod(0o644)
    try:
        with FormServer(students_from_log()) as form:
            ex = Executor(RunnerConfig(root=root, sites=form.site_mapping(), max_hosts=hosts, retries=0))
            requests = demo_requests(plan, students)
            try:
                # warm: start every host's Chromium off the clock (one run each, not counted)
                warm = demo_requests(plan, students_from_log()[-hosts:])
                with ThreadPoolExecutor(hosts) as pool:
                    list(pool.map(lambda r: ex.execute(r, plan.automation, "verified"), warm))
                before = form.snapshot()
                t0 = time.perf_counter()
                with ThreadPoolExecutor(hosts) as pool:
                    out = list(pool.map(lambda r: ex.execute(r, plan.automation, "verified"), requests))
                wall = time.perf_counter() - t0
            finally:
                ex.close()
            after = form.snapshot()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    metrics = [e.metric for e in out if e.metric is not None]
    ok = [m for m in metrics if m.success]
    runs = [m.duration_seconds for m in ok]
    baseline = _baseline(run_dir, plan.automation.candidate_id)
    median_run = statistics.median(runs) if runs else None
    return {
        "automation_id": plan.automation.automation_id,
        "steps": len(plan.automation.plan),
        "rows": rows,
        "hosts": hosts,
        "succeeded": len(ok),
        "failed": len(metrics) - len(ok),
        "submitted": after["submitted"] - before["submitted"],
        "correct": after["correct"] - before["correct"],
        "wall_seconds": round(wall, 2),
        "records_per_minute": round(len(ok) / wall * 60, 1) if wall > 0 else None,
        "median_run_seconds": round(median_run, 3) if median_run is not None else None,
        "median_step_sum_seconds": round(
            statistics.median(sum(s.duration_seconds for s in m.steps) for m in ok), 3
        )
        if ok
        else None,
        "human_baseline_seconds": round(baseline, 1) if baseline is not None else None,
        "time_saved_per_record_seconds": round(baseline - median_run, 1)
        if baseline is not None and median_run is not None
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark the executor on the demo form (see module docstring)."
    )
    ap.add_argument("--from", dest="run_dir", type=Path, default=None, help="run archive (default: last run)")
    ap.add_argument("--rows", type=int, default=20, help="workbook rows to enter (1-50, default 20)")
    ap.add_argument("--hosts", type=int, default=2, help="run hosts at once (default 2)")
    args = ap.parse_args(argv)
    print(json.dumps(bench(args.run_dir or last_run_dir(), max(1, min(args.rows, 50)), max(1, args.hosts))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
