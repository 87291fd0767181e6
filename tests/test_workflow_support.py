"""Shared builders for the workflow, efficiency and report tests (no tests of its own).

`leno_candidates` turns a ground-truth segmented Leno log into candidates by hand: one candidate per
variant (cases with the same action sequence), steps and parameter data flow read off the events,
per-step durations = time since the previous event of the instance. `write_archive` adds synthetic
automations, sandbox tests, production runs with per-step timings and anomalies, and writes them as a
`rote run` archive, so `rote report` can be tested end to end before the pipeline exists.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rote.archive import ArchiveWriter
from rote.streams.schemas import (
    Anomaly,
    Automation,
    Candidate,
    GeneratedSource,
    RoutineInstance,
    RoutineStep,
    RunMetric,
    ScoreBreakdown,
    StepParameter,
    StepTiming,
    Target,
    encode,
)
from rote.streams.schemas import (
    TestResult as Result,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "workflow"
SHARED = REPO.parent / "shared" / "data"
SR_SLICE = DATA / "StudentRecord_slice.csv"
RT_SLICE = DATA / "Reimbursement_slice.csv"


def _s(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def action_label(row: pd.Series) -> str:
    """The ground truth's abstraction: event type + Excel column, or + web field name."""
    if row["targetApp"] == "Excel":
        cell = _s(row["target.id"]) or ""
        return f"{row['eventType']}_{''.join(ch for ch in cell if ch.isalpha())}"
    name = _s(row["target.name"]) or _s(row["target.innerText"]) or ""
    name = re.sub(r"(\\n|\s)+", " ", name).strip()
    return f"{row['eventType']}_{name}"


def _value(row: pd.Series) -> str | None:
    et = row["eventType"]
    if et in ("copyCell", "copyRange", "paste"):
        return _s(row["content"])
    if et == "editField":
        return _s(row["target.value"])
    if et == "clickCheckbox":
        return _s(row["target.checked"])
    return None


def _target(row: pd.Series) -> Target:
    if row["targetApp"] == "Excel":
        cell = _s(row["target.id"]) or ""
        return Target(
            workbook=_s(row["target.workbookName"]),
            sheet=_s(row["target.sheetName"]),
            column="".join(ch for ch in cell if ch.isalpha()) or None,
        )
    return Target(
        field=_s(row["target.name"]),
        element=_s(row["target.id"]),
        element_type=_s(row["target.type"]),
        url=_s(row["url"]),
    )


def leno_frame(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=True)
    df["row"] = range(len(df))
    df["ts"] = pd.to_datetime(df["timeStamp"], utc=True)
    df["action"] = df.apply(action_label, axis=1)
    return df


def _related(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    return bool(a) and bool(b) and (a == b or a in b or b in a)


def _parameter(i: int, values: list[list[str | None]]) -> StepParameter | None:
    mine = [v[i] for v in values]
    if all(m is None for m in mine):
        return None
    for j in range(i - 1, -1, -1):
        src = [v[j] for v in values]
        if len({s for s in src if s is not None}) < 2:
            continue
        hits = sum(
            1 for m, s in zip(mine, src, strict=True) if m is not None and s is not None and _related(m, s)
        )
        if hits >= 0.8 * len(mine):
            return StepParameter(kind="derived", source_step=j, examples=[m for m in mine[:3] if m])
    distinct = {m for m in mine if m is not None}
    if len(distinct) == 1:
        return StepParameter(kind="constant", constant=next(iter(distinct)))
    return StepParameter(kind="variable", examples=[m for m in mine[:3] if m])


def leno_candidates(path: Path, *, user_id: str = "vleno", min_instances: int = 2) -> list[Candidate]:
    df = leno_frame(path)
    stem = path.stem.split("_")[0]
    cases = {cid: g.sort_values(["ts", "row"], kind="stable") for cid, g in df.groupby("caseID", sort=False)}
    variants: dict[tuple[str, ...], list[pd.DataFrame]] = defaultdict(list)
    for g in cases.values():
        variants[tuple(g["action"])].append(g)
    ranked = sorted(variants.items(), key=lambda kv: -len(kv[1]))
    out: list[Candidate] = []
    total_cases = len(cases)
    for k, (seq, groups) in enumerate(ranked):
        if len(groups) < min_instances:
            continue
        values = [[_value(r) for _, r in g.iterrows()] for g in groups]
        instances = []
        durs_by_step: dict[int, list[float]] = defaultdict(list)
        for g, vals in zip(groups, values, strict=True):
            ts = list(g["ts"])
            durs: list[float | None] = [None] + [(b - a).total_seconds() for a, b in itertools.pairwise(ts)]
            for i, d in enumerate(durs):
                if d is not None:
                    durs_by_step[i].append(d)
            instances.append(
                RoutineInstance(
                    event_ids=[f"{stem}-{r}" for r in g["row"]],
                    values=vals,
                    start=ts[0].to_pydatetime(),
                    end=ts[-1].to_pydatetime(),
                    step_durations_seconds=durs,
                )
            )
        first = groups[0]
        steps = [
            RoutineStep(
                label=seq[i],
                app=str(row["targetApp"]),
                action_type=str(row["eventType"]),
                target=_target(row),
                parameter=_parameter(i, values),
                mean_duration_seconds=float(np.mean(durs_by_step[i])) if durs_by_step[i] else None,
            )
            for i, (_, row) in enumerate(first.iterrows())
        ]
        spans = np.array([(i.end - i.start).total_seconds() for i in instances])
        kinds = [s.parameter.kind if s.parameter else "none" for s in steps]
        breakdown = ScoreBreakdown(
            frequency=len(groups) / total_cases,
            time_cost=min(float(spans.mean()) / 300.0, 1.0),
            regularity=max(0.0, 1 - float(spans.std() / spans.mean())),
            determinism=sum(k != "variable" for k in kinds) / len(kinds),
            variability=sum(k == "variable" for k in kinds) / len(kinds),
            length=min(len(steps) / 30.0, 1.0),
            weights={
                "frequency": 0.3,
                "time_cost": 0.25,
                "regularity": 0.15,
                "determinism": 0.2,
                "length": 0.1,
            },
        )
        score = 100 * sum(getattr(breakdown, f) * w for f, w in breakdown.weights.items())
        first_seen = instances[0].start
        last_seen = max(i.end for i in instances)
        out.append(
            Candidate(
                candidate_id=f"{stem.lower()}-v{k}",
                version=1,
                user_id=user_id,
                routine=list(seq),
                steps=steps,
                occurrences=len(groups),
                instances=instances,
                score=round(score, 2),
                breakdown=breakdown,
                mean_duration_seconds=float(spans.mean()),
                observed_hours_per_year=float(spans.sum()) / 3600 * 52,
                estimated_hours_saved_per_year=float(spans.sum()) / 3600 * 52 * 0.9,
                rank=k + 1,
                priority="high" if score >= 60 else "medium" if score >= 35 else "low",
                first_seen=first_seen,
                last_seen=last_seen,
                updated_at=last_seen,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# synthetic automation side
# --------------------------------------------------------------------------------------------------

#: Automated seconds per action type: UI-driver latencies, page submits wait for the server.
STEP_SECONDS = {
    "copyCell": 0.08,
    "copyRange": 0.1,
    "paste": 0.12,
    "editField": 0.2,
    "clickButton": 1.2,
    "clickLink": 0.9,
    "clickCheckbox": 0.1,
    "selectWorksheet": 0.3,
    "form_submit": 0.8,
    "createNewTab": 0.5,
}


def automation_for(c: Candidate, *, version: int, state: str, created_at: datetime) -> Automation:
    plan = [{"op": s.action_type, "label": s.label} for s in c.steps]
    return Automation(
        automation_id=f"auto-{c.candidate_id}",
        version=version,
        candidate_id=c.candidate_id,
        candidate_version=c.version,
        user_id=c.user_id,
        name=f"{c.candidate_id} form filler",
        generator_version="test",
        template_version="test",
        state=state,
        plan=plan,
        parameters=[],
        sources={
            "python": GeneratedSource(language="python", source="pass\n", supported=True, static_check="ok"),
        },
        created_at=created_at,
    )


def synthetic_runs(
    c: Candidate,
    automation_id: str,
    *,
    version: int,
    start: datetime,
    count: int,
    source: str,
    speed: float,
    rng: random.Random,
    overhead: float = 0.4,
    fail_every: int = 0,
) -> list[RunMetric]:
    runs = []
    t = start
    for n in range(count):
        steps = [
            StepTiming(
                step=i,
                label=s.label,
                duration_seconds=STEP_SECONDS.get(s.action_type, 0.15) * speed * rng.lognormvariate(0, 0.25),
            )
            for i, s in enumerate(c.steps)
        ]
        dur = sum(s.duration_seconds for s in steps) + overhead * rng.lognormvariate(0, 0.2)
        runs.append(
            RunMetric(
                run_id=f"{automation_id}-v{version}-{source}-{n}",
                automation_id=automation_id,
                version=version,
                source=source,
                started_at=t,
                duration_seconds=dur,
                success=not (fail_every and n % fail_every == fail_every - 1),
                cpu_seconds=dur * 0.3,
                peak_memory_bytes=50_000_000,
                steps=steps,
            )
        )
        t += timedelta(minutes=rng.uniform(20, 160))
    return runs


def build_events(candidates: list[Candidate], *, seed: int = 7) -> dict[str, list[Any]]:
    """Candidates plus what the pipeline would produce for them; the last candidate stays in testing."""
    rng = random.Random(seed)
    base = max(c.last_seen for c in candidates) + timedelta(days=1)
    autos: list[Automation] = []
    tests: list[Result] = []
    runs: list[RunMetric] = []
    anomalies: list[Anomaly] = []
    for k, c in enumerate(candidates):
        aid = f"auto-{c.candidate_id}"
        in_production = k < len(candidates) - 1 or len(candidates) == 1
        autos.append(automation_for(c, version=1, state="generated", created_at=base))
        autos.append(automation_for(c, version=1, state="verified", created_at=base))
        for n in range(3):
            tests.append(
                Result(
                    result_id=f"{aid}-t{n}",
                    automation_id=aid,
                    version=1,
                    case_id=f"case-{n}",
                    language="python",
                    verdict="passed",
                    passed=True,
                    exit_code=0,
                    stop_reason="exited",
                    wall_seconds=0.6 + 0.1 * n,
                    cpu_seconds=0.2,
                    peak_memory_bytes=30_000_000,
                    output_bytes=100,
                    started_at=base,
                )
            )
        runs += synthetic_runs(c, aid, version=1, start=base, count=3, source="sandbox", speed=1.0, rng=rng)
        if not in_production:
            continue
        autos.append(automation_for(c, version=1, state="active", created_at=base + timedelta(hours=1)))
        prod = synthetic_runs(
            c,
            aid,
            version=1,
            start=base + timedelta(hours=2),
            count=120,
            source="production",
            speed=1.0,
            rng=rng,
            fail_every=15,
        )
        # Version 2 drops the per-run start-up and runs the steps faster: a visible improving trend.
        v2_start = prod[-1].started_at + timedelta(hours=3)
        autos.append(automation_for(c, version=2, state="active", created_at=v2_start))
        prod += synthetic_runs(
            c,
            aid,
            version=2,
            start=v2_start,
            count=120,
            source="production",
            speed=0.6,
            rng=rng,
            overhead=0.1,
        )
        slow = prod[55]
        prod[55] = slow.model_copy(update={"duration_seconds": slow.duration_seconds * 6})
        anomalies.append(
            Anomaly(
                anomaly_id=f"{aid}-a1",
                automation_id=aid,
                signal="duration_seconds",
                score=0.97,
                severity="warning",
                observed=prod[55].duration_seconds,
                expected_low=0.5 * slow.duration_seconds,
                expected_high=1.6 * slow.duration_seconds,
                detected_at=prod[55].started_at,
                observed_at=prod[55].started_at,
                detector="test",
                explanation="run took 6x its usual time",
            )
        )
        runs += prod
    return {
        "candidates": candidates,
        "automations": autos,
        "test-results": tests,
        "metrics": runs,
        "anomalies": anomalies,
    }


def write_archive(run_dir: Path, events: dict[str, list[Any]]) -> Path:
    w = ArchiveWriter(run_dir)
    try:
        for topic, evs in events.items():
            for e in evs:
                w.write(topic, encode(e))
    finally:
        w.close()
    return run_dir


def leno_events(seed: int = 7) -> dict[str, list[Any]]:
    cands = leno_candidates(SR_SLICE) + leno_candidates(RT_SLICE)
    return build_events(cands, seed=seed)
