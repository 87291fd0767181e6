"""What automation has really saved: manual baselines against measured runs, costs, ROI and trends.

Accounting rules (docs/workflow.md, "Efficiency"):

- The manual baseline of a routine is the median duration of the user's own observed instances (the
  median, because real instances include coffee breaks that a mean would book as savings), each its own
  time (`RoutineInstance.active_seconds`: the time spent on other work meanwhile left out).
- Only successful production runs save time: baseline − run duration each. A failed production run saves
  nothing (the person still does the work) but its machine time is paid for.
- Sandbox runs and test results are tests, not work: they cost (machine time) and never count as savings.
  A sandbox run's duration is used only to *project* the saving of an automation not yet in production.
- Costs: every automation put to a person (verified, or later) costs `build_cost_hours` of a person once
  (the review that decides to deploy it; versions the generator produces in seconds are machine work, not a
  new review, and an automation the sandbox rejected is never reviewed); test and run machine time
  at their per-second prices; optional monthly maintenance while the automation exists.
- ROI = (value of time saved − total cost) / total cost.

Savings are recomputed from the current baselines on every summary (not booked at run time), so a
baseline that firms up as more instances are observed corrects all past runs consistently.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd

from rote.efficiency.cost import CostModel
from rote.efficiency.summary import AutomationEfficiency, EfficiencySummary, RoutineBaseline, TrendConfig
from rote.errors import StateError
from rote.state import StateReader
from rote.streams.schemas import Automation, Candidate, RunMetric, TestResult

#: States in which an automation has been put to a person: verified (awaiting approval) and after.
REVIEWED_STATES = frozenset({"verified", "active", "degraded", "retired"})
#: Below a cent of cost (in the report's currency) there is no ROI: the machine time of a few sandbox tests
#: is ~0.00004 of it, and "ROI −100 % = (0.00 saved − 0.00 cost) / 0.00" told a new user whose automations
#: were all rejected that they had lost everything.
MIN_ROI_COST = 0.01


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _number(v: Any, where: str) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise StateError(f"efficiency-tracker.{where}: expected a number, got {type(v).__name__}")
    return float(v)


def _whole(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise StateError(f"efficiency-tracker.{where}: expected an int, got {type(v).__name__}")
    return v


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise StateError(f"efficiency-tracker.{where}: expected a string, got {type(v).__name__}")
    return v


def _float_map(v: Any, where: str) -> dict[str, float]:
    if not isinstance(v, dict):
        raise StateError(f"{where}: expected an object")
    return {str(k): _number(x, where) for k, x in v.items()}


def _time(raw: str, where: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise StateError(f"{where}: not an ISO time") from None
    if at.tzinfo is None:
        raise StateError(f"{where}: time without a zone")
    return at


def _slope(y: np.ndarray, x: np.ndarray) -> float | None:
    if y.size < 2 or float(np.ptp(x)) == 0:
        return None
    return _finite(float(np.polyfit(x, y, 1)[0]))


class EfficiencyTracker:
    """Accumulates the events that matter for savings and cost; `summary()` does the arithmetic.

    State is dicts of tuples keyed by event id, so replays and duplicates (at-least-once delivery) count
    once; it goes to changelogs as data (`to_state`), never pickled.

    Bounded: per automation the last `max_runs` runs and `max_tests` test results are kept whole (for
    medians, trends and percentiles); older ones are folded into per-automation counts and sums
    (`_folded`), which is all the totals need: time saved over N successful runs is N x baseline minus
    the sum of their durations, so folded runs still count at the current baseline. Per routine, the last
    `max_instances` observed instances make its baseline. The agent keeps one tracker per automation and
    one per routine (`merged` joins them for a report), so no record grows with the number of either.
    """

    STATE_KIND: ClassVar[str] = "efficiency-tracker"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(
        self,
        cost: CostModel | None = None,
        trend: TrendConfig | None = None,
        *,
        max_runs: int = 1000,
        max_tests: int = 300,
        max_instances: int = 500,
    ) -> None:
        self.cost = cost or CostModel()
        self.trend = trend or TrendConfig()
        self.max_runs, self.max_tests, self.max_instances = max_runs, max_tests, max_instances
        #: automation id -> counts and sums of the runs and tests no longer kept whole
        self._folded: dict[str, dict[str, float]] = {}
        self._instances: dict[str, dict[str, float]] = {}
        self._fallback: dict[str, float] = {}
        self._names: dict[str, str] = {}
        self._candidate_version: dict[str, int] = {}
        self._autos: dict[str, dict[str, Any]] = {}
        self._tests: dict[str, tuple[str, int, float, bool]] = {}
        self._runs: dict[str, tuple[str, int, str, datetime, float, bool]] = {}

    # -- ingest ------------------------------------------------------------------------------------

    def apply_candidate(self, c: Candidate) -> None:
        seen = self._instances.setdefault(c.candidate_id, {})
        for inst in c.instances:
            ids = ",".join(e or "" for e in inst.event_ids)
            key = f"{inst.start.isoformat()}|{inst.end.isoformat()}|{ids}"
            span = (inst.end - inst.start).total_seconds()
            # the instance's own time (discovery leaves out other work done meanwhile); the span for
            # candidates from before it was given
            seen[key] = max(inst.active_seconds if inst.active_seconds is not None else span, 0.0)
        while len(seen) > self.max_instances:
            del seen[next(iter(seen))]  # the oldest observed instance
        if c.version >= self._candidate_version.get(c.candidate_id, 0):
            self._candidate_version[c.candidate_id] = c.version
            self._fallback[c.candidate_id] = c.mean_duration_seconds
            head = " → ".join(c.routine[:3])
            more = f" … ({len(c.routine)} steps)" if len(c.routine) > 3 else ""
            self._names[c.candidate_id] = c.name or head + more  # discovery's human name when it has one

    def apply_automation(self, a: Automation) -> None:
        rec = self._autos.setdefault(
            a.automation_id,
            {
                "candidate_id": a.candidate_id,
                "name": a.name,
                "state": a.state,
                "versions": set(),
                "created_at": a.created_at,
                "version": 0,
                "reviewed": False,
            },
        )
        if a.state in REVIEWED_STATES:
            rec["reviewed"] = True  # once put to a person, the review is paid whatever follows
        rec["versions"].add(a.version)
        rec["created_at"] = min(rec["created_at"], a.created_at)
        if a.version >= rec["version"]:
            rec.update(candidate_id=a.candidate_id, name=a.name, state=a.state, version=a.version)

    def apply_test_result(self, r: TestResult) -> None:
        fresh = r.result_id not in self._tests
        self._tests[r.result_id] = (r.automation_id, r.version, r.wall_seconds, r.passed)
        if fresh and sum(1 for t in self._tests.values() if t[0] == r.automation_id) > self.max_tests:
            self._fold_oldest_test(r.automation_id)

    def apply_metric(self, m: RunMetric) -> None:
        horizon = self._folded.get(m.automation_id, {}).get("horizon")
        if horizon is not None and m.started_at.timestamp() <= horizon:
            return  # not after the newest run already folded: a redelivery of one that was folded
        fresh = m.run_id not in self._runs
        self._runs[m.run_id] = (
            m.automation_id,
            m.version,
            m.source,
            m.started_at,
            m.duration_seconds,
            m.success,
        )
        if fresh and sum(1 for v in self._runs.values() if v[0] == m.automation_id) > self.max_runs:
            self._fold_oldest_run(m.automation_id)

    def _fold(self, aid: str) -> dict[str, float]:
        return self._folded.setdefault(
            aid,
            {
                "prod": 0,
                "prod_ok": 0,
                "prod_ok_seconds": 0.0,
                "prod_seconds": 0.0,
                "sandbox": 0,
                "tests": 0,
                "tests_passed": 0,
                "test_seconds": 0.0,
            },
        )

    def _fold_oldest_run(self, aid: str) -> None:
        rid = next(k for k, v in self._runs.items() if v[0] == aid)
        _, _, source, started, duration, success = self._runs.pop(rid)
        f = self._fold(aid)
        f["horizon"] = max(f.get("horizon", started.timestamp()), started.timestamp())
        if source == "production":
            f["prod"] += 1
            f["prod_seconds"] += duration
            if success:
                f["prod_ok"] += 1
                f["prod_ok_seconds"] += duration
        elif source == "sandbox":
            f["sandbox"] += 1

    def _fold_oldest_test(self, aid: str) -> None:
        rid = next(k for k, t in self._tests.items() if t[0] == aid)
        _, _, wall, passed = self._tests.pop(rid)
        f = self._fold(aid)
        f["tests"] += 1
        f["tests_passed"] += passed
        f["test_seconds"] += wall

    @classmethod
    def merged(
        cls,
        trackers: Iterable[EfficiencyTracker],
        *,
        cost: CostModel | None = None,
        trend: TrendConfig | None = None,
    ) -> EfficiencyTracker:
        """One tracker over the events of several (the agent keeps one per automation and per routine)."""
        out = cls(cost, trend)
        for t in trackers:
            out._folded.update(t._folded)
            out._instances.update(t._instances)
            out._fallback.update(t._fallback)
            out._names.update(t._names)
            out._candidate_version.update(t._candidate_version)
            out._autos.update(t._autos)
            out._tests.update(t._tests)
            out._runs.update(t._runs)
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "instances": self._instances,
            "fallback": self._fallback,
            "names": self._names,
            "candidate_version": self._candidate_version,
            "autos": {
                aid: {**rec, "versions": sorted(rec["versions"]), "created_at": rec["created_at"].isoformat()}
                for aid, rec in self._autos.items()
            },
            "tests": {rid: list(t) for rid, t in self._tests.items()},
            "folded": self._folded,
            "runs": {
                rid: [aid, v, src, at.isoformat(), d, ok]
                for rid, (aid, v, src, at, d, ok) in self._runs.items()
            },
        }

    @classmethod
    def from_state(
        cls, data: dict[str, Any], *, cost: CostModel | None = None, trend: TrendConfig | None = None
    ) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(cost, trend)
        obj._instances = r.mapping("instances", _float_map)
        obj._folded = r.mapping("folded", _float_map) if r.has("folded") else {}
        obj._fallback = _float_map(r.dict("fallback"), f"{cls.STATE_KIND}.fallback")
        obj._names = {k: _text(v, f"{cls.STATE_KIND}.names") for k, v in r.dict("names").items()}
        obj._candidate_version = {
            k: _whole(v, "candidate_version") for k, v in r.dict("candidate_version").items()
        }
        for aid, raw in r.dict("autos").items():
            a = StateReader(raw, where=f"{cls.STATE_KIND}.autos.{aid}")
            obj._autos[aid] = {
                "candidate_id": a.str("candidate_id"),
                "name": a.str("name"),
                "state": a.str("state"),
                "versions": set(a.ints("versions")),
                "created_at": _time(a.str("created_at"), a.where),
                "version": a.int("version"),
            }
            # states written before the flag: the latest state is all that is known
            rec = obj._autos[aid]
            rec["reviewed"] = a.bool("reviewed") if a.has("reviewed") else rec["state"] in REVIEWED_STATES
        for rid, t in r.dict("tests").items():
            if not (isinstance(t, list) and len(t) == 4 and isinstance(t[3], bool)):
                raise StateError(f"{cls.STATE_KIND}.tests.{rid}: expected [automation, version, wall, ok]")
            obj._tests[rid] = (_text(t[0], "tests"), _whole(t[1], "tests"), _number(t[2], "tests"), t[3])
        for rid, m in r.dict("runs").items():
            if not (isinstance(m, list) and len(m) == 6 and isinstance(m[5], bool)):
                raise StateError(f"{cls.STATE_KIND}.runs.{rid}: expected 6 fields")
            obj._runs[rid] = (
                _text(m[0], "runs"),
                _whole(m[1], "runs"),
                _text(m[2], "runs"),
                _time(_text(m[3], "runs"), f"{cls.STATE_KIND}.runs.{rid}"),
                _number(m[4], "runs"),
                m[5],
            )
        return obj

    def extend(
        self,
        *,
        candidates: Iterable[Candidate] = (),
        automations: Iterable[Automation] = (),
        test_results: Iterable[TestResult] = (),
        runs: Iterable[RunMetric] = (),
    ) -> EfficiencyTracker:
        for c in candidates:
            self.apply_candidate(c)
        for a in automations:
            self.apply_automation(a)
        for t in test_results:
            self.apply_test_result(t)
        for m in runs:
            self.apply_metric(m)
        return self

    # -- analysis ----------------------------------------------------------------------------------

    def baselines(self) -> dict[str, RoutineBaseline]:
        out = {}
        for cid in sorted(set(self._instances) | set(self._fallback)):
            durs = np.asarray(list(self._instances.get(cid, {}).values()), dtype=float)
            if durs.size:
                out[cid] = RoutineBaseline(
                    candidate_id=cid,
                    name=self._names.get(cid, cid),
                    instances=int(durs.size),
                    median_seconds=float(np.median(durs)),
                    mean_seconds=float(durs.mean()),
                    p90_seconds=float(np.percentile(durs, 90)),
                    source="instances",
                )
            elif cid in self._fallback:
                m = self._fallback[cid]
                out[cid] = RoutineBaseline(
                    candidate_id=cid,
                    name=self._names.get(cid, cid),
                    instances=0,
                    median_seconds=m,
                    mean_seconds=m,
                    p90_seconds=m,
                    source="candidate_mean",
                )
        return out

    def _runs_frame(self, baselines: dict[str, RoutineBaseline]) -> pd.DataFrame:
        cols = ["run_id", "automation_id", "version", "source", "started_at", "duration", "success"]
        df = pd.DataFrame([(rid, *v) for rid, v in self._runs.items()], columns=cols)
        if df.empty:
            return df.assign(baseline=pd.Series(dtype=float), saved=pd.Series(dtype=float))
        cand = {aid: rec["candidate_id"] for aid, rec in self._autos.items()}
        base = {aid: baselines[c].median_seconds for aid, c in cand.items() if c in baselines}
        df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
        df["baseline"] = df["automation_id"].map(base).astype(float)
        prod_ok = (df["source"] == "production") & df["success"]
        failed_prod = np.where(df["source"] == "production", 0.0, np.nan)
        df["saved"] = np.where(prod_ok, df["baseline"] - df["duration"], failed_prod)
        return df.sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)

    def summary(self, now: datetime | None = None) -> EfficiencySummary:
        """All figures from the events seen so far; `now` bounds the maintenance period."""
        cost = self.cost
        baselines = self.baselines()
        df = self._runs_frame(baselines)
        tests = pd.DataFrame(
            list(self._tests.values()), columns=["automation_id", "version", "wall", "passed"]
        )
        if now is None:
            stamps = [rec["created_at"] for rec in self._autos.values()]
            if not df.empty:
                stamps.append(df["started_at"].max().to_pydatetime())
            now = max(stamps) if stamps else datetime.now(UTC)

        auto_ids = sorted(
            set(self._autos) | set(df["automation_id"]) | set(tests["automation_id"]) | set(self._folded)
        )
        per: list[AutomationEfficiency] = []
        for aid in auto_ids:
            per.append(self._automation_summary(aid, df, tests, baselines, now))

        # Savings only exist where a baseline is known; runs of unknown routines still cost.
        prod = df[df["source"] == "production"] if not df.empty else df
        ok = prod[prod["success"] & prod["baseline"].notna()] if not prod.empty else prod
        saved_total = sum(a.time_saved_seconds for a in per)
        folded_prod = int(sum(f["prod"] for f in self._folded.values()))
        folded_ok = int(sum(f["prod_ok"] for f in self._folded.values()))
        value = saved_total * cost.per_person_second
        cost_parts = {
            "build": sum(a.cost_build for a in per),
            "test": sum(a.cost_test for a in per),
            "run": sum(a.cost_run for a in per),
            "maintenance": sum(a.cost_maintenance for a in per),
        }
        cost_parts["total"] = sum(cost_parts.values())
        total = cost_parts["total"]
        roi = (value - total) / total if total >= MIN_ROI_COST else None
        trends, series, buckets = self._trends(ok)
        return EfficiencySummary(
            currency=cost.currency,
            hourly_rate=cost.hourly_rate,
            baselines=list(baselines.values()),
            automations=per,
            production_runs=len(prod) + folded_prod,
            successful_runs=(int(prod["success"].sum()) if not prod.empty else 0) + folded_ok,
            time_saved_seconds=saved_total,
            hours_saved=saved_total / 3600.0,
            value_saved=value,
            cost=cost_parts,
            roi=_finite(roi),
            trends=trends,
            series=series,
            buckets=buckets,
        )

    def _automation_summary(
        self,
        aid: str,
        df: pd.DataFrame,
        tests: pd.DataFrame,
        baselines: dict[str, RoutineBaseline],
        now: datetime,
    ) -> AutomationEfficiency:
        cost = self.cost
        rec = self._autos.get(aid)
        runs = df[df["automation_id"] == aid] if not df.empty else df
        prod = runs[runs["source"] == "production"] if not runs.empty else runs
        sand = runs[runs["source"] == "sandbox"] if not runs.empty else runs
        ok = prod[prod["success"]] if not prod.empty else prod
        t = tests[tests["automation_id"] == aid]
        cid = rec["candidate_id"] if rec else None
        baseline = baselines[cid].median_seconds if cid in baselines else None
        versions = set(rec["versions"]) if rec else set()
        versions |= set(int(v) for v in runs["version"]) if not runs.empty else set()
        versions |= set(int(v) for v in t["version"])

        automated: float | None = None
        automated_from: Literal["production", "sandbox"] | None = None
        if not ok.empty:
            automated, automated_from = float(ok["duration"].median()), "production"
        else:
            sand_ok = sand[sand["success"]] if not sand.empty else sand
            if not sand_ok.empty:
                automated, automated_from = float(sand_ok["duration"].median()), "sandbox"

        folded = self._folded.get(aid, {})
        f_ok = int(folded.get("prod_ok", 0))
        saved_total = float(ok["saved"].sum()) if baseline is not None and not ok.empty else 0.0
        if baseline is not None and f_ok:
            saved_total += f_ok * baseline - folded["prod_ok_seconds"]  # folded runs, at today's baseline
        per_run: float | None = None
        projected = False
        if baseline is not None and (not ok.empty or f_ok):
            per_run = saved_total / (len(ok) + f_ok)
        elif baseline is not None and automated is not None:
            per_run, projected = baseline - automated, True

        # One review per automation: a regenerated version (seconds of machine work) is not a new project,
        # and one the sandbox rejected was never put to a person (its tests are its only cost).
        c_build = cost.build_cost_hours * cost.hourly_rate if rec and rec["reviewed"] else 0.0
        c_test = (float(t["wall"].sum()) + folded.get("test_seconds", 0.0)) * cost.test_cost_per_run_seconds
        prod_seconds = float(prod["duration"].sum()) if not prod.empty else 0.0
        prod_seconds += folded.get("prod_seconds", 0.0)
        c_run = prod_seconds * cost.run_cost_per_second
        c_maint = 0.0
        if rec and cost.maintenance_hours_per_month > 0:
            months = max((now - rec["created_at"]).total_seconds(), 0.0) / (30.4375 * 86400)
            c_maint = months * cost.maintenance_hours_per_month * cost.hourly_rate
        c_total = c_build + c_test + c_run + c_maint
        value = saved_total * cost.per_person_second
        ewma = slope = None
        if baseline is not None and len(ok) >= 1:
            saved = ok["saved"].to_numpy(dtype=float)
            ewma = _finite(float(pd.Series(saved).ewm(alpha=self.trend.ewma_alpha).mean().iloc[-1]))
            slope = _slope(saved, np.arange(saved.size, dtype=float))
        return AutomationEfficiency(
            automation_id=aid,
            name=rec["name"] if rec else aid,
            candidate_id=cid,
            state=rec["state"] if rec else None,
            versions=len(versions),
            baseline_seconds=baseline,
            production_runs=len(prod) + int(folded.get("prod", 0)),
            successful_runs=len(ok) + f_ok,
            failed_runs=len(prod) - len(ok) + int(folded.get("prod", 0)) - f_ok,
            sandbox_runs=len(sand) + int(folded.get("sandbox", 0)),
            tests=len(t) + int(folded.get("tests", 0)),
            tests_passed=(int(t["passed"].sum()) if len(t) else 0) + int(folded.get("tests_passed", 0)),
            automated_seconds=automated,
            automated_from=automated_from,
            time_saved_per_run_seconds=per_run,
            projected=projected,
            time_saved_seconds=saved_total,
            value_saved=value,
            cost_build=c_build,
            cost_test=c_test,
            cost_run=c_run,
            cost_maintenance=c_maint,
            cost_total=c_total,
            roi=_finite((value - c_total) / c_total) if c_total >= MIN_ROI_COST else None,
            speedup=_finite(baseline / automated) if baseline is not None and automated else None,
            ewma_saved_seconds=ewma,
            slope_saved_per_run=slope,
        )

    def _trends(self, ok: pd.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """Rolling window, EWMA and slope of the saving per run, and how runs compare with the baseline."""
        if ok.empty:
            return {"runs": 0}, [], []
        cfg = self.trend
        s = ok[["started_at", "saved", "duration", "baseline"]].copy()
        s["cumulative"] = s["saved"].cumsum()
        s["rolling"] = s["saved"].rolling(cfg.rolling_runs, min_periods=1).mean()
        s["ewma"] = s["saved"].ewm(alpha=cfg.ewma_alpha).mean()
        s["ratio"] = s["duration"] / s["baseline"]
        days = (s["started_at"] - s["started_at"].iloc[0]).dt.total_seconds().to_numpy() / 86400.0
        saved = s["saved"].to_numpy(dtype=float)
        first = s["saved"].iloc[: cfg.rolling_runs].mean()
        last = s["rolling"].iloc[-1]
        trends: dict[str, Any] = {
            "runs": len(s),
            "rolling_window_runs": cfg.rolling_runs,
            "ewma_alpha": cfg.ewma_alpha,
            "mean_saved_per_run_seconds": float(saved.mean()),
            "rolling_mean_saved_seconds": float(last),
            "first_window_mean_saved_seconds": float(first),
            "ewma_saved_seconds": float(s["ewma"].iloc[-1]),
            "slope_saved_per_run": _slope(saved, np.arange(saved.size, dtype=float)),
            "slope_saved_per_day": _slope(saved, days),
            "vs_baseline": {
                "mean_ratio": float(s["ratio"].mean()),
                "rolling_ratio": float(s["ratio"].rolling(cfg.rolling_runs, min_periods=1).mean().iloc[-1]),
                "ewma_ratio": float(s["ratio"].ewm(alpha=cfg.ewma_alpha).mean().iloc[-1]),
                "speedup": _finite(float(s["baseline"].sum() / s["duration"].sum()))
                if s["duration"].sum() > 0
                else None,
                "share_of_baseline_saved": float(s["saved"].sum() / s["baseline"].sum()),
            },
            "direction": "improving"
            if (last - first) > 0.05 * abs(first)
            else "worsening"
            if (first - last) > 0.05 * abs(first)
            else "flat",
        }
        idx = np.unique(np.linspace(0, len(s) - 1, min(len(s), cfg.max_series_points)).round().astype(int))
        series = [
            {
                "t": row.started_at.isoformat(),
                "saved_seconds": float(row.saved),
                "cumulative_seconds": float(row.cumulative),
                "rolling_mean_seconds": float(row.rolling),
                "ewma_seconds": float(row.ewma),
            }
            for row in s.iloc[idx].itertuples()
        ]
        span = (s["started_at"].iloc[-1] - s["started_at"].iloc[0]).total_seconds()
        freq = "1min" if span <= 2 * 3600 else "1h" if span <= 3 * 86400 else "1D"
        b = s.set_index("started_at")["saved"].resample(freq).agg(["sum", "count"])
        b["rolling_sum"] = b["sum"].rolling(7, min_periods=1).sum()
        buckets = [
            {
                "t": ts.isoformat(),
                "freq": freq,
                "saved_seconds": float(r["sum"]),
                "runs": int(r["count"]),
                "rolling_7_sum_seconds": float(r["rolling_sum"]),
            }
            for ts, r in b.iterrows()
        ]
        trends["bucket"] = freq
        return trends, series, buckets
