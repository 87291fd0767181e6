"""The automation registry: every automation's versions, lifecycle and run record.

Pure state machine fed by three topics (automations, test-results, metrics). The Faust agent keeps one
`Registry` (or one per table key) and calls `apply_*` for each event; the CLI rebuilds the same state from
the run archive. Events can arrive twice (at-least-once delivery) and out of order across topics (a test
result before the automation it tests), so results are de-duplicated by id and early ones are parked
until their automation version shows up.

Lifecycle per automation (always about its newest version):

    generated -> testing -> verified | rejected      (sandbox test results)
    verified -> active                               (first production run, or `activate`)
    active -> retired                                (production success rate below the bar, or `retire`)
    any -> generated                                 (a newer version arrives; the old one is superseded)

Verified means: every test case of the version passed in every language that can run here and whose
source expresses every step. Rejected carries the first failing case and why.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rote.generator.bundle import runnable_languages
from rote.streams.schemas import Automation, RunMetric, TestResult


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    #: Durations kept per version for percentiles (a sliding window: recent behaviour is what matters).
    duration_window: int = 1000
    #: Retire an active automation whose production success rate falls below this after this many runs.
    retire_below_success_rate: float = 0.5
    retire_min_runs: int = 20
    #: Event ids remembered for de-duplication.
    dedupe_window: int = 20000
    #: Results waiting for their automation version, at most.
    max_pending: int = 10000


@dataclass(frozen=True, kw_only=True)
class Transition:
    state: str
    reason: str | None
    version: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ExecutionStats:
    runs: int = 0
    successes: int = 0
    failures: int = 0
    success_rate: float | None = None
    duration_p50_seconds: float | None = None
    duration_p90_seconds: float | None = None
    duration_p99_seconds: float | None = None
    sandbox_runs: int = 0
    production_runs: int = 0
    production_successes: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    last_run_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class AutomationRecord:
    automation_id: str
    name: str
    user_id: str
    candidate_id: str
    version: int
    versions: list[int]
    state: str
    state_reason: str | None
    generator_version: str
    template_version: str
    languages: list[str]
    history: list[Transition]
    stats: ExecutionStats
    total_runs: int
    test_results: dict[str, dict[str, str]]
    automation: Automation

    def to_json(self, *, include_sources: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "automation"}
        out["history"] = [{**asdict(t), "at": t.at.isoformat()} for t in self.history]
        if self.stats.last_run_at is not None:
            out["stats"]["last_run_at"] = self.stats.last_run_at.isoformat()
        out["parameters"] = list(self.automation.parameters)
        out["test_cases"] = len(self.automation.test_cases)
        out["targets"] = {
            lang: {
                "supported": s.supported,
                "static_check": s.static_check,
                "unsupported_steps": s.unsupported_steps,
            }
            for lang, s in self.automation.sources.items()
        }
        if include_sources:
            out["sources"] = {lang: s.source for lang, s in self.automation.sources.items()}
            out["plan"] = self.automation.plan
        return out


class _Stats:
    def __init__(self, window: int) -> None:
        self.runs = self.successes = self.sandbox = self.production = self.production_ok = 0
        self.tests_passed = self.tests_failed = 0
        self.durations: deque[float] = deque(maxlen=window)
        self.last_run_at: datetime | None = None

    def add(self, m: RunMetric) -> None:
        self.runs += 1
        self.successes += m.success
        if m.source == "production":
            self.production += 1
            self.production_ok += m.success
        else:
            self.sandbox += 1
        self.durations.append(m.duration_seconds)
        if self.last_run_at is None or m.started_at > self.last_run_at:
            self.last_run_at = m.started_at

    def snapshot(self) -> ExecutionStats:
        d = sorted(self.durations)
        return ExecutionStats(
            runs=self.runs,
            successes=self.successes,
            failures=self.runs - self.successes,
            success_rate=self.successes / self.runs if self.runs else None,
            duration_p50_seconds=percentile(d, 50),
            duration_p90_seconds=percentile(d, 90),
            duration_p99_seconds=percentile(d, 99),
            sandbox_runs=self.sandbox,
            production_runs=self.production,
            production_successes=self.production_ok,
            tests_passed=self.tests_passed,
            tests_failed=self.tests_failed,
            last_run_at=self.last_run_at,
        )


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: always an observed duration, never an interpolated one."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


class _Entry:
    def __init__(self, a: Automation, window: int) -> None:
        self.automations: dict[int, Automation] = {a.version: a}
        self.version = a.version
        self.state = "generated"
        self.reason: str | None = a.state_reason
        self.history: list[Transition] = []
        self.stats: dict[int, _Stats] = {a.version: _Stats(window)}
        self.results: dict[int, dict[tuple[str, str], TestResult]] = {a.version: {}}
        self.window = window

    @property
    def current(self) -> Automation:
        return self.automations[self.version]

    def move(self, state: str, reason: str | None, at: datetime) -> None:
        if state == self.state and reason == self.reason and self.history:
            return
        self.state, self.reason = state, reason
        self.history.append(Transition(state=state, reason=reason, version=self.version, at=at))

    def stats_for(self, version: int) -> _Stats:
        if version not in self.stats:
            self.stats[version] = _Stats(self.window)
        return self.stats[version]


class Registry:
    """All automations by id. Picklable (plain objects and pydantic models), so a Faust table or a
    checkpoint can hold it."""

    def __init__(self, config: RegistryConfig | None = None) -> None:
        self.config = config or RegistryConfig()
        self._entries: dict[str, _Entry] = {}
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._pending: list[TestResult | RunMetric] = []

    # ----------------------------------------------------------------------------------------------

    def _first_time(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > self.config.dedupe_window:
            self._seen.discard(self._seen_order.popleft())
        return True

    def _park(self, event: TestResult | RunMetric) -> None:
        self._pending.append(event)
        if len(self._pending) > self.config.max_pending:
            del self._pending[0]

    def apply_automation(self, a: Automation) -> None:
        e = self._entries.get(a.automation_id)
        if e is None:
            e = self._entries[a.automation_id] = _Entry(a, self.config.duration_window)
            e.move("generated", a.state_reason, a.created_at)
        elif a.version < e.version:
            e.automations.setdefault(a.version, a)
            return
        elif a.version == e.version:
            e.automations[a.version] = a
            return
        else:
            old = e.version
            e.automations[a.version] = a
            e.version = a.version
            e.results.setdefault(a.version, {})
            e.move("generated", f"version {a.version} supersedes version {old}", a.created_at)
        langs = runnable_languages(a)
        if not langs:
            why = "; ".join(
                f"{lang}: {s.static_check if s.static_check != 'ok' else ', '.join(s.unsupported_steps[:2])}"
                for lang, s in a.sources.items()
            )
            e.move(
                "rejected", f"no language that runs here can express every step ({why})"[:2000], a.created_at
            )
        elif not a.test_cases:
            e.move("rejected", "no held-out instances to test against", a.created_at)
        parked, self._pending = self._pending, []
        for ev in parked:
            if ev.automation_id == a.automation_id and ev.version == a.version:
                if isinstance(ev, TestResult):
                    self._apply_result(e, ev)
                else:
                    self._apply_metric(e, ev)
            else:
                self._pending.append(ev)

    def apply_test_result(self, r: TestResult) -> None:
        if not self._first_time("r:" + r.result_id):
            return
        e = self._entries.get(r.automation_id)
        if e is None or r.version not in e.automations:
            self._park(r)
            return
        self._apply_result(e, r)

    def _apply_result(self, e: _Entry, r: TestResult) -> None:
        a = e.automations[r.version]
        e.results.setdefault(r.version, {})[(r.case_id or "*", r.language)] = r
        stats = e.stats_for(r.version)
        if r.passed:
            stats.tests_passed += 1
        else:
            stats.tests_failed += 1
        if r.version != e.version or e.state not in ("generated", "testing"):
            return
        langs = runnable_languages(a)
        if r.language not in langs:
            return  # e.g. AppleScript reported "unsupported": it cannot decide verification here
        if e.state == "generated":
            e.move("testing", f"first result from {r.runner or 'the sandbox'}", r.started_at)
        if not r.passed:
            detail = r.mismatches[0] if r.mismatches else (r.detail or r.stop_reason)
            case = r.case_id or "(whole run)"
            e.move(
                "rejected",
                f"{r.language} test {case}: {r.verdict} ({r.stop_reason}): {detail}"[:2000],
                r.started_at,
            )
            return
        need = {(c.case_id, lang) for c in a.test_cases for lang in langs}
        got = {k for k, res in e.results[r.version].items() if res.passed}
        if need <= got:
            e.move(
                "verified",
                f"all {len(a.test_cases)} held-out test cases reproduced exactly in {', '.join(langs)}",
                r.started_at,
            )

    def apply_metric(self, m: RunMetric) -> None:
        if not self._first_time("m:" + m.run_id):
            return
        e = self._entries.get(m.automation_id)
        if e is None or m.version not in e.automations:
            self._park(m)
            return
        self._apply_metric(e, m)

    def _apply_metric(self, e: _Entry, m: RunMetric) -> None:
        stats = e.stats_for(m.version)
        stats.add(m)
        if m.version != e.version or m.source != "production":
            return
        if e.state == "verified":
            e.move("active", "first production run", m.started_at)
        if e.state == "active" and stats.production >= self.config.retire_min_runs:
            rate = stats.production_ok / stats.production
            if rate < self.config.retire_below_success_rate:
                e.move(
                    "retired",
                    f"production success rate {rate:.0%} over {stats.production} runs is below "
                    f"{self.config.retire_below_success_rate:.0%}",
                    m.started_at,
                )

    def activate(self, automation_id: str, *, reason: str, at: datetime) -> None:
        e = self._entries[automation_id]
        if e.state != "verified":
            raise ValueError(f"only a verified automation can be activated (it is {e.state})")
        e.move("active", reason, at)

    def retire(self, automation_id: str, *, reason: str, at: datetime) -> None:
        self._entries[automation_id].move("retired", reason, at)

    # ----------------------------------------------------------------------------------------------

    def get(self, automation_id: str) -> AutomationRecord | None:
        e = self._entries.get(automation_id)
        if e is None:
            return None
        a = e.current
        results: dict[str, dict[str, str]] = {}
        for (case, lang), r in sorted(e.results.get(e.version, {}).items()):
            results.setdefault(case, {})[lang] = r.verdict
        return AutomationRecord(
            automation_id=a.automation_id,
            name=a.name,
            user_id=a.user_id,
            candidate_id=a.candidate_id,
            version=e.version,
            versions=sorted(e.automations),
            state=e.state,
            state_reason=e.reason,
            generator_version=a.generator_version,
            template_version=a.template_version,
            languages=runnable_languages(a),
            history=list(e.history),
            stats=e.stats_for(e.version).snapshot(),
            total_runs=sum(s.runs for s in e.stats.values()),
            test_results=results,
            automation=a,
        )

    def records(self) -> list[AutomationRecord]:
        return [r for r in (self.get(k) for k in sorted(self._entries)) if r is not None]

    def counts_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self._entries.values():
            out[e.state] = out.get(e.state, 0) + 1
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)

    def to_json(self) -> dict[str, Any]:
        """The read-only HTTP list view and `rote automations list --json`."""
        return {"automations": [r.to_json() for r in self.records()], "by_state": self.counts_by_state()}


def from_archive(run_dir: Path, config: RegistryConfig | None = None) -> Registry:
    """Rebuild the registry from a run archive, replaying the three topics merged in time order."""
    from rote.archive import read_events

    events: list[tuple[datetime, int, Automation | TestResult | RunMetric]] = []
    for a in read_events(run_dir, "automations", Automation):
        events.append((a.created_at, 0, a))
    for r in read_events(run_dir, "test-results", TestResult):
        events.append((r.started_at, 1, r))
    for m in read_events(run_dir, "metrics", RunMetric):
        events.append((m.started_at, 2, m))
    reg = Registry(config)
    for _, _, ev in sorted(events, key=lambda t: (t[0], t[1])):
        if isinstance(ev, Automation):
            reg.apply_automation(ev)
        elif isinstance(ev, TestResult):
            reg.apply_test_result(ev)
        else:
            reg.apply_metric(ev)
    return reg


__all__ = [
    "AutomationRecord",
    "ExecutionStats",
    "Registry",
    "RegistryConfig",
    "Transition",
    "from_archive",
    "percentile",
]
