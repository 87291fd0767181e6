"""The optimization report: one object that the agent publishes and `rote report` renders.

`ReportBuilder` is the incremental form the optimization-cycle agent keeps (as data: `to_state`);
`compose_report` is the same computation over archived events. Both go through the same analyzer and
tracker, so the report a person reads and the one on `optimization-reports` agree. Section shapes:
docs/workflow.md.

Two clocks meet in a report: when the routines were observed (the log's time, possibly years ago for a
replayed log) and when the automations were tested and ran (now). The report's period is the second one,
the period the report is about; the first is `efficiency.observed_period`. Mixing them gave periods such as
"2019-10-21 – 2026-11-29". Routines and automations are named by the candidate's human name (discovery's
`Candidate.name`) wherever the analysis named them by their first steps, and tests are tallied per language
on each automation's current version (`rote.report.tally`), the same way in every view.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from rote.efficiency import CostModel, EfficiencySummary, EfficiencyTracker, TrendConfig
from rote.errors import StateError
from rote.report.roi import explain_roi
from rote.report.routine import candidate_name
from rote.report.tally import tally
from rote.state import StateReader, model_state
from rote.streams.schemas import Anomaly, Automation, Candidate, OptimizationReport, RunMetric, TestResult
from rote.workflow import AnalyzerConfig, WorkflowAnalysis, WorkflowAnalyzer, latest_candidates
from rote.workflow.analysis import compact_automation, compact_candidate

VERIFIED_STATES = frozenset({"verified", "active"})
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class ReportBuilder:
    """Everything the report needs, fed one event at a time; `report(now)` composes it."""

    STATE_KIND: ClassVar[str] = "report-builder"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(
        self,
        cost: CostModel | None = None,
        *,
        analyzer: AnalyzerConfig | None = None,
        trend: TrendConfig | None = None,
        top_n: int = 10,
        max_anomalies: int = 200,
    ) -> None:
        self.cost = cost or CostModel()
        self.top_n = top_n
        #: test results kept per automation (the tallies read the current version's)
        self.max_tests = 300
        self.analyzer = WorkflowAnalyzer(analyzer)
        self.tracker = EfficiencyTracker(self.cost, trend)
        self._candidates: dict[str, Candidate] = {}
        self._automations: dict[str, Automation] = {}
        #: result id -> (automation id, version, passed, language, verdict)
        self._tests: dict[str, tuple[str, int, bool, str, str]] = {}
        self._anomalies: deque[Anomaly] = deque(maxlen=max_anomalies)
        self._anomaly_counts: dict[str, int] = {}
        #: evidence for time saved, per automation: the executor's production runs and their step timings
        self._evidence: dict[str, RunEvidence] = {}
        #: when the automations were tested and ran (the report's period)
        self._first: datetime | None = None
        self._last: datetime | None = None
        #: when the routines were observed (the log's own clock)
        self._observed_first: datetime | None = None
        self._observed_last: datetime | None = None

    def _seen(self, *stamps: datetime) -> None:
        for t in stamps:
            self._first = t if self._first is None or t < self._first else self._first
            self._last = t if self._last is None or t > self._last else self._last

    def _observed(self, *stamps: datetime) -> None:
        for t in stamps:
            if self._observed_first is None or t < self._observed_first:
                self._observed_first = t
            if self._observed_last is None or t > self._observed_last:
                self._observed_last = t

    @classmethod
    def merged(
        cls,
        builders: Iterable[ReportBuilder],
        cost: CostModel | None = None,
        *,
        analyzer: AnalyzerConfig | None = None,
        trend: TrendConfig | None = None,
        top_n: int = 10,
    ) -> ReportBuilder:
        """One builder over the events of several: the agent keeps one per automation and one per routine,
        so no state record grows with their number, and joins them for each report."""
        parts = list(builders)
        out = cls(cost, analyzer=analyzer, trend=trend, top_n=top_n, max_anomalies=200 * max(1, len(parts)))
        out.analyzer = WorkflowAnalyzer.merged((b.analyzer for b in parts), config=analyzer)
        out.tracker = EfficiencyTracker.merged((b.tracker for b in parts), cost=out.cost, trend=trend)
        for b in parts:
            out._candidates.update(b._candidates)
            out._automations.update(b._automations)
            out._tests.update(b._tests)
            out._anomalies.extend(b._anomalies)
            for aid, n in b._anomaly_counts.items():
                out._anomaly_counts[aid] = out._anomaly_counts.get(aid, 0) + n
            out._seen(*(t for t in (b._first, b._last) if t is not None))
            out._observed(*(t for t in (b._observed_first, b._observed_last) if t is not None))
        return out

    def apply_candidate(self, c: Candidate) -> None:
        old = self._candidates.get(c.candidate_id)
        if old is None or (c.version, c.updated_at) >= (old.version, old.updated_at):
            self._candidates[c.candidate_id] = compact_candidate(c)
        self.analyzer.apply_candidate(c)
        self.tracker.apply_candidate(c)
        self._observed(c.first_seen, c.last_seen)

    def apply_automation(self, a: Automation) -> None:
        old = self._automations.get(a.automation_id)
        if old is None or a.version >= old.version:
            self._automations[a.automation_id] = compact_automation(a)
        self.analyzer.apply_automation(a)
        self.tracker.apply_automation(a)

    def apply_test_result(self, r: TestResult) -> None:
        fresh = r.result_id not in self._tests
        self._tests[r.result_id] = (r.automation_id, r.version, r.passed, r.language, r.verdict)
        if fresh and sum(1 for t in self._tests.values() if t[0] == r.automation_id) > self.max_tests:
            del self._tests[next(k for k, t in self._tests.items() if t[0] == r.automation_id)]
        self.tracker.apply_test_result(r)
        self._seen(r.started_at)

    def apply_metric(self, m: RunMetric) -> None:
        self.analyzer.apply_metric(m)
        self.tracker.apply_metric(m)
        if m.source in ("production", "simulated"):
            self._evidence.setdefault(m.automation_id, RunEvidence()).add(m)
        self._seen(m.started_at, m.started_at + timedelta(seconds=m.duration_seconds))

    def apply_anomaly(self, x: Anomaly) -> None:
        if any(a.anomaly_id == x.anomaly_id for a in self._anomalies):
            return
        self._anomalies.append(x)
        self._anomaly_counts[x.automation_id] = self._anomaly_counts.get(x.automation_id, 0) + 1

    def summary(self, now: datetime | None = None) -> EfficiencySummary:
        return self.tracker.summary(now)

    # -- data-only state (the candidates and automations are the analyzer's: stored once) ----------

    def to_state(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer.to_state(),
            "tracker": self.tracker.to_state(),
            "tests": {rid: list(t) for rid, t in self._tests.items()},
            "anomalies": [x.model_dump(mode="json") for x in self._anomalies],
            "anomaly_counts": self._anomaly_counts,
            "evidence": {aid: e.to_state() for aid, e in self._evidence.items()},
            "first": self._first.isoformat() if self._first else None,
            "last": self._last.isoformat() if self._last else None,
            "observed_first": self._observed_first.isoformat() if self._observed_first else None,
            "observed_last": self._observed_last.isoformat() if self._observed_last else None,
        }

    @classmethod
    def from_state(
        cls,
        data: dict[str, Any],
        *,
        cost: CostModel | None = None,
        analyzer: AnalyzerConfig | None = None,
        trend: TrendConfig | None = None,
    ) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        b = cls(cost, analyzer=analyzer, trend=trend)
        b.analyzer = WorkflowAnalyzer.from_state(r.dict("analyzer"), config=analyzer)
        b.tracker = EfficiencyTracker.from_state(r.dict("tracker"), cost=b.cost, trend=trend)
        b._candidates = dict(b.analyzer._candidates)
        b._automations = dict(b.analyzer._automations)
        for rid, t in r.dict("tests").items():
            if not (
                isinstance(t, list)
                and len(t) in (3, 5)
                and isinstance(t[0], str)
                and isinstance(t[1], int)
                and isinstance(t[2], bool)
                and all(isinstance(x, str) for x in t[3:])
            ):
                raise StateError(
                    f"{cls.STATE_KIND}.tests.{rid}: expected [automation, version, passed, language, verdict]"
                )
            # (a record written before languages were kept counts as a Python result)
            lang, verdict = (t[3], t[4]) if len(t) == 5 else ("python", "passed" if t[2] else "failed")
            b._tests[rid] = (t[0], t[1], t[2], lang, verdict)
        for x in r.list("anomalies"):
            b._anomalies.append(model_state(Anomaly, x, f"{cls.STATE_KIND}.anomalies"))
        for aid, n in r.dict("anomaly_counts").items():
            if not isinstance(n, int) or isinstance(n, bool):
                raise StateError(f"{cls.STATE_KIND}.anomaly_counts.{aid}: expected an int")
            b._anomaly_counts[aid] = n
        evidence = data.get("evidence", {})  # absent in states written before it existed
        if not isinstance(evidence, dict):
            raise StateError(f"{cls.STATE_KIND}.evidence: expected an object")
        for aid, e in evidence.items():
            b._evidence[str(aid)] = RunEvidence.from_state(e, f"{cls.STATE_KIND}.evidence.{aid}")
        first, last = r.opt_str("first"), r.opt_str("last")
        b._first = _time(first, r.where) if first else None
        b._last = _time(last, r.where) if last else None
        first, last = r.opt_str("observed_first"), r.opt_str("observed_last")
        b._observed_first = _time(first, r.where) if first else None
        b._observed_last = _time(last, r.where) if last else None
        return b

    def report(self, now: datetime) -> OptimizationReport:
        analysis = self.analyzer.analysis()
        eff = self.tracker.summary(now)
        worked = self._first is not None
        return OptimizationReport(
            report_id=f"report-{now.astimezone(UTC):%Y%m%dT%H%M%S}Z",
            generated_at=now,
            period_start=self._first if worked else self._observed_first,
            period_end=self._last if worked else self._observed_last,
            top_candidates=self._top_candidates(eff),
            automations=self._automation_rows(eff),
            bottlenecks=[
                self._renamed({"rank": i + 1, **b.to_dict()}) for i, b in enumerate(analysis.bottlenecks[:25])
            ],
            parallelization=[self._renamed(p.to_dict()) for p in analysis.parallelization[: self.top_n]],
            caching=[h.to_dict() for h in analysis.caching[: self.top_n]],
            optimization_score=analysis.score.score if analysis.score else None,
            optimization_breakdown=analysis.score.to_dict() if analysis.score else {},
            anomalies=self._anomaly_rows(),
            efficiency=self._efficiency(eff, analysis),
        )

    # -- sections ----------------------------------------------------------------------------------

    def _name_of(self, scope: str, scope_id: str) -> str | None:
        """The human name of a routine (by candidate id) or of an automation (by its candidate's name)."""
        if scope == "automation":
            a = self._automations.get(scope_id)
            scope_id = a.candidate_id if a is not None else ""
        c = self._candidates.get(scope_id)
        return candidate_name(c) if c is not None else None

    def _renamed(self, row: dict[str, Any]) -> dict[str, Any]:
        name = self._name_of(str(row.get("scope", "")), str(row.get("scope_id", "")))
        return {**row, "scope_name": name} if name else row

    def _top_candidates(self, eff: EfficiencySummary) -> list[dict[str, Any]]:
        by_candidate = {a.candidate_id: a for a in self._automations.values()}
        baselines = {b.candidate_id: b for b in eff.baselines}
        rows = []
        ranked = sorted(latest_candidates(self._candidates.values()), key=lambda c: (-c.score, c.rank))
        for c in ranked[: self.top_n]:
            auto = by_candidate.get(c.candidate_id)
            base = baselines.get(c.candidate_id)
            rows.append(
                {
                    "candidate_id": c.candidate_id,
                    "version": c.version,
                    "user_id": c.user_id,
                    "name": candidate_name(c),
                    "variant_note": c.variant_note,
                    "sop": list(c.sop),
                    "first_seen": c.first_seen.isoformat(),
                    "last_seen": c.last_seen.isoformat(),
                    "steps": len(c.steps),
                    "score": c.score,
                    "rank": c.rank,
                    "priority": c.priority,
                    "occurrences": c.occurrences,
                    "mean_duration_seconds": c.mean_duration_seconds,
                    "baseline_seconds": base.median_seconds if base else None,
                    "estimated_hours_saved_per_year": c.estimated_hours_saved_per_year,
                    "breakdown": c.breakdown.model_dump(mode="json"),
                    "automation_id": auto.automation_id if auto else None,
                    "automation_state": auto.state if auto else None,
                }
            )
        return rows

    def _automation_rows(self, eff: EfficiencySummary) -> list[dict[str, Any]]:
        verdicts: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for aid, version, _, lang, verdict in self._tests.values():
            verdicts.setdefault((aid, version), []).append((lang, verdict))
        rows = []
        by_roi = sorted(
            eff.automations, key=lambda e: (-(e.roi if e.roi is not None else -1e18), e.automation_id)
        )
        for e in by_roi:
            a = self._automations.get(e.automation_id)
            current = tally(verdicts.get((e.automation_id, a.version), []) if a else [])
            name = self._name_of("automation", e.automation_id)
            rows.append(
                {
                    **e.to_dict(),
                    "name": name or e.name,
                    "version": a.version if a else None,
                    "verified": bool(a and a.state in VERIFIED_STATES),
                    "pass_rate": current.passed / current.ran if current.ran else None,
                    "current_tests": current.to_dict(),
                    "current_tests_text": current.short(),
                    "anomalies": self._anomaly_counts.get(e.automation_id, 0),
                    "evidence": ev.to_dict() if (ev := self._evidence.get(e.automation_id)) else None,
                }
            )
        return rows

    def _anomaly_rows(self) -> list[dict[str, Any]]:
        recent = sorted(self._anomalies, key=lambda x: x.observed_at, reverse=True)[:50]
        recent.sort(key=lambda x: (_SEVERITY_ORDER.get(x.severity, 3), -x.observed_at.timestamp()))
        return [x.model_dump(mode="json") for x in recent]

    def _efficiency(self, eff: EfficiencySummary, analysis: WorkflowAnalysis) -> dict[str, Any]:
        d = eff.to_dict()
        d.pop("automations")
        d["cost_model"] = self.cost.to_dict()
        d["roi_by_automation"] = [
            {
                "automation_id": a.automation_id,
                "name": self._name_of("automation", a.automation_id) or a.name,
                "roi": a.roi,
                "value_saved": a.value_saved,
                "cost_total": a.cost_total,
                "projected": a.projected,
            }
            for a in sorted(eff.automations, key=lambda a: -(a.roi if a.roi is not None else -1e18))
        ]
        d["step_breakdown"] = [self._renamed(s) for s in _step_breakdown(analysis)]
        d["observed_period"] = {
            "start": self._observed_first.isoformat() if self._observed_first else None,
            "end": self._observed_last.isoformat() if self._observed_last else None,
        }
        d["roi_explained"] = explain_roi(d)
        return d


class RunEvidence:
    """What backs an automation's time saved: its production runs (the executor's, measured) and the mean
    duration of each of its steps in them; simulated runs are only counted, apart. Bounded: one sum per
    step of the automation."""

    #: run ids remembered, so a redelivered run report (at-least-once delivery) counts once
    RECENT = 1024

    def __init__(self) -> None:
        self.runs = 0
        self.succeeded = 0
        self.simulated = 0
        self.seconds = 0.0
        #: step -> [label, runs with the step, total seconds]
        self.steps: dict[int, list[Any]] = {}
        #: the last runs counted: (run id, start as a unix time)
        self.recent: deque[tuple[str, float]] = deque(maxlen=self.RECENT)

    def add(self, m: RunMetric) -> None:
        at = m.started_at.timestamp()
        if any(rid == m.run_id for rid, _ in self.recent):
            return
        if len(self.recent) == self.RECENT and at <= self.recent[0][1]:
            return  # older than every run remembered: a redelivery of one counted long ago
        self.recent.append((m.run_id, at))
        if m.source == "simulated":
            self.simulated += 1
            return
        self.runs += 1
        self.succeeded += m.success
        self.seconds += m.duration_seconds
        for st in m.steps:
            row = self.steps.setdefault(st.step, [st.label, 0, 0.0])
            row[1] += 1
            row[2] += st.duration_seconds

    def slowest(self, n: int = 3) -> list[dict[str, Any]]:
        means = [(total / count, step, label) for step, (label, count, total) in self.steps.items() if count]
        return [
            {"step": step, "label": label, "mean_seconds": mean}
            for mean, step, label in sorted(means, key=lambda t: (-t[0], t[1]))[:n]
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "production_runs": self.runs,
            "production_successes": self.succeeded,
            "simulated_runs": self.simulated,
            "mean_run_seconds": self.seconds / self.runs if self.runs else None,
            "slowest_steps": self.slowest(),
        }

    def to_state(self) -> dict[str, Any]:
        steps = [[step, label, count, total] for step, (label, count, total) in sorted(self.steps.items())]
        return {
            "runs": self.runs,
            "succeeded": self.succeeded,
            "simulated": self.simulated,
            "seconds": self.seconds,
            "steps": steps,
            "recent": [list(r) for r in self.recent],
        }

    @classmethod
    def from_state(cls, data: Any, where: str) -> RunEvidence:
        e = cls()
        try:
            e.runs, e.succeeded, e.simulated = (int(data[k]) for k in ("runs", "succeeded", "simulated"))
            e.seconds = float(data["seconds"])
            for step, label, count, total in data["steps"]:
                e.steps[int(step)] = [str(label), int(count), float(total)]
            for rid, at in data.get("recent", [])[-cls.RECENT :]:
                if not isinstance(rid, str):
                    raise TypeError("run id")
                e.recent.append((rid, float(at)))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{where}: not a run-evidence record ({exc})") from None
        return e


def _time(raw: str, where: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise StateError(f"{where}: not an ISO time") from None
    if at.tzinfo is None:
        raise StateError(f"{where}: time without a zone")
    return at


def _step_breakdown(analysis: WorkflowAnalysis, *, scopes: int = 4, steps: int = 8) -> list[dict[str, Any]]:
    """Share of time per step for the scopes that take the most time (for the breakdown chart)."""
    totals: dict[tuple[str, str], float] = {}
    for s in analysis.step_stats:
        totals[(s.scope, s.scope_id)] = totals.get((s.scope, s.scope_id), 0.0) + s.total_seconds
    out = []
    for (kind, sid), _ in sorted(totals.items(), key=lambda kv: -kv[1])[:scopes]:
        st = sorted(
            (s for s in analysis.step_stats if s.scope == kind and s.scope_id == sid), key=lambda s: -s.share
        )
        top = st[:steps]
        out.append(
            {
                "scope": kind,
                "scope_id": sid,
                "scope_name": st[0].scope_name if st else sid,
                "steps": [
                    {"step": s.step, "label": s.label, "share": s.share, "mean_seconds": s.mean_seconds}
                    for s in top
                ],
                "other_share": max(sum(s.share for s in st[steps:]), 0.0),
            }
        )
    return out


def compose_report(
    *,
    candidates: Iterable[Candidate],
    automations: Iterable[Automation],
    test_results: Iterable[TestResult],
    runs: Iterable[RunMetric],
    anomalies: Iterable[Anomaly],
    cost: CostModel,
    now: datetime,
    analyzer: AnalyzerConfig | None = None,
    trend: TrendConfig | None = None,
    top_n: int = 10,
) -> OptimizationReport:
    """The report over a set of events (an archive, a test fixture), exactly as the agent would build it."""
    b = ReportBuilder(cost, analyzer=analyzer, trend=trend, top_n=top_n)
    for c in candidates:
        b.apply_candidate(c)
    for a in automations:
        b.apply_automation(a)
    for t in test_results:
        b.apply_test_result(t)
    for m in runs:
        b.apply_metric(m)
    for x in anomalies:
        b.apply_anomaly(x)
    return b.report(now)
