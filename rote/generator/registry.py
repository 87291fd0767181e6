"""The automation registry: every automation's versions, lifecycle and run record.

Pure state machine fed by three topics (automations, test-results, metrics). The Faust agent keeps one
`Registry` (or one per table key) and calls `apply_*` for each event; the CLI rebuilds the same state from
the run archive. Events can arrive twice (at-least-once delivery) and out of order across topics (a test
result before the automation it tests), so results are de-duplicated by id and early ones are parked
until their automation version shows up.

Lifecycle per automation (always about its newest version):

    generated -> testing -> verified | rejected      (sandbox test results)
    verified -> active                               (first production run, or `activate`)
    verified | active -> degraded                    (N production runs in a row failed; default 3)
    degraded -> active                               (a production run succeeded again)
    active | degraded -> retired                     (production success rate below the bar, or `retire`)
    any -> generated                                 (a newer version arrives; the old one is superseded)

Verified means: every test case of the version passed in every language that can run here and whose
source expresses every step, in the sandbox against the simulator. It says the program reproduces the
recorded instances; it says nothing yet about the real applications. Active means the executor
(`rote runner`) has run it in production with the production drivers; degraded means its recent
production runs keep failing (the page changed, the application is down): the executor stops taking
requests for it except ones that explicitly allow a degraded automation (a person retrying after a fix),
and one success makes it active again. Rejected carries the first failing case and why. Runs with
`source="simulated"` are counted apart and never move the lifecycle.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self, get_args

from rote.errors import StateError
from rote.generator.bundle import runnable_languages
from rote.state import StateReader, model_state
from rote.streams.schemas import Automation, Lifecycle, RunMetric, TestResult

_LIFECYCLE = frozenset(get_args(Lifecycle))


def _content(a: Automation) -> Any:
    """What a verdict is about: the program, its parameters and the cases it was tested on."""
    return a.model_dump(
        mode="json",
        include={
            "candidate_id",
            "candidate_version",
            "name",
            "user_id",
            "generator_version",
            "template_version",
            "plan",
            "parameters",
            "sources",
            "test_cases",
        },
    )


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    #: Durations kept per version for percentiles (a sliding window: recent behaviour is what matters).
    duration_window: int = 1000
    #: Retire an active automation whose production success rate falls below this after this many runs.
    retire_below_success_rate: float = 0.5
    retire_min_runs: int = 20
    #: Production runs failing in a row that make an automation degraded.
    degrade_after_failures: int = 3
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
    simulated_runs: int = 0
    consecutive_production_failures: int = 0
    last_production_error: str | None = None


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
        self.simulated = self.consecutive_failures = 0
        self.last_error: str | None = None
        self.tests_passed = self.tests_failed = 0
        self.durations: deque[float] = deque(maxlen=window)
        self.last_run_at: datetime | None = None

    def add(self, m: RunMetric) -> None:
        if m.source == "simulated":  # made-up runs: counted apart, never in rates or durations
            self.simulated += 1
            return
        self.runs += 1
        self.successes += m.success
        if m.source == "production":
            self.production += 1
            self.production_ok += m.success
            self.consecutive_failures = 0 if m.success else self.consecutive_failures + 1
            if not m.success:
                self.last_error = m.error or m.outcome or "failed"
        else:
            self.sandbox += 1
        self.durations.append(m.duration_seconds)
        if self.last_run_at is None or m.started_at > self.last_run_at:
            self.last_run_at = m.started_at

    def to_state(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "successes": self.successes,
            "sandbox": self.sandbox,
            "production": self.production,
            "production_ok": self.production_ok,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "durations": list(self.durations),
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
        }

    @classmethod
    def from_state(cls, r: StateReader, window: int) -> _Stats:
        st = cls(window)
        st.runs, st.successes = r.int("runs"), r.int("successes")
        st.sandbox, st.production = r.int("sandbox"), r.int("production")
        st.production_ok = r.int("production_ok")
        st.tests_passed, st.tests_failed = r.int("tests_passed"), r.int("tests_failed")
        st.durations.extend(r.floats("durations")[-window:])
        at = r.opt_str("last_run_at")
        st.last_run_at = _parse_time(at, r.where) if at else None
        return st

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
            simulated_runs=self.simulated,
            consecutive_production_failures=self.consecutive_failures,
            last_production_error=self.last_error,
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

    def to_state(self) -> dict[str, Any]:
        return {
            "automations": [a.model_dump(mode="json") for a in self.automations.values()],
            "version": self.version,
            "state": self.state,
            "reason": self.reason,
            "history": [
                {"state": t.state, "reason": t.reason, "version": t.version, "at": t.at.isoformat()}
                for t in self.history
            ],
            "stats": {str(v): st.to_state() for v, st in self.stats.items()},
            "results": {
                str(v): [res.model_dump(mode="json") for res in by_case.values()]
                for v, by_case in self.results.items()
            },
        }

    @classmethod
    def from_state(cls, r: StateReader, window: int) -> _Entry:
        autos = [model_state(Automation, a, f"{r.where}.automations") for a in r.list("automations")]
        if not autos:
            raise StateError(f"{r.where}.automations: empty")
        e = cls(autos[0], window)
        e.automations = {a.version: a for a in autos}
        e.version = r.int("version")
        if e.version not in e.automations:
            raise StateError(f"{r.where}.version: {e.version} is not one of its automations")
        e.state = r.str("state")
        if e.state not in _LIFECYCLE:
            raise StateError(f"{r.where}.state: unknown lifecycle state {e.state!r}")
        e.reason = r.opt_str("reason")
        e.history = [
            Transition(
                state=h.str("state"),
                reason=h.opt_str("reason"),
                version=h.int("version"),
                at=_parse_time(h.str("at"), h.where),
            )
            for h in r.objs("history")
        ]
        e.stats = {
            _version(v, r.where): _Stats.from_state(StateReader(st, where=f"{r.where}.stats.{v}"), window)
            for v, st in r.dict("stats").items()
        }
        e.results = {}
        for v, items in r.dict("results").items():
            if not isinstance(items, list):
                raise StateError(f"{r.where}.results.{v}: expected a list")
            by_case: dict[tuple[str, str], TestResult] = {}
            for item in items:
                res = model_state(TestResult, item, f"{r.where}.results.{v}")
                by_case[(res.case_id or "*", res.language)] = res
            e.results[_version(v, r.where)] = by_case
        return e


class Registry:
    """All automations by id (the agent keeps one per automation id).

    State is data (`to_state`/`from_state`): the pydantic events it holds are re-validated when read back
    from a changelog, and everything else is plain numbers and strings. Every field that changes behaviour
    must be in `to_state`: the state checks (tests/test_state_machines.py) replay events across a round trip.
    """

    STATE_KIND: ClassVar[str] = "registry"
    STATE_VERSION: ClassVar[int] = 1

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
            # A version is immutable: a redelivery carries the same program and tests. A record that
            # reuses the id and version with another plan, source or test cases would inherit the
            # verdicts of the program that was tested (and the executor would run it): keep the first.
            if _content(a) == _content(e.automations[a.version]):
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
            e.move("rejected", _inexpressible(a)[:2000], a.created_at)
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
        if m.success and e.state == "degraded":
            e.move("active", "a production run succeeded again", m.started_at)
        n = self.config.degrade_after_failures
        if not m.success and e.state == "active" and stats.consecutive_failures >= n:
            last = (m.error or m.outcome or "failed")[:500]
            e.move(
                "degraded",
                f"{stats.consecutive_failures} production runs in a row failed; last: {last}",
                m.started_at,
            )
            return
        if e.state in ("active", "degraded") and stats.production >= self.config.retire_min_runs:
            rate = stats.production_ok / stats.production
            if rate < self.config.retire_below_success_rate:
                e.move(
                    "retired",
                    f"production success rate {rate:.0%} over {stats.production} runs is below "
                    f"{self.config.retire_below_success_rate:.0%}",
                    m.started_at,
                )

    def has_run(self, run_id: str) -> bool:
        """Whether a run with this id has been reported on `metrics` (within the de-duplication window)."""
        return "m:" + run_id in self._seen

    def state_of(self, automation_id: str) -> tuple[Automation, str] | None:
        """The current version and its lifecycle state (what the executor decides on)."""
        e = self._entries.get(automation_id)
        return (e.current, e.state) if e is not None else None

    def activate(self, automation_id: str, *, reason: str, at: datetime) -> None:
        e = self._entries[automation_id]
        if e.state not in ("verified", "degraded"):
            raise ValueError(f"only a verified or degraded automation can be activated (it is {e.state})")
        e.move("active", reason, at)

    def retire(self, automation_id: str, *, reason: str, at: datetime) -> None:
        self._entries[automation_id].move("retired", reason, at)

    def adopt_state(self, a: Automation) -> bool:
        """Take `a`'s lifecycle state for its (current) version when nothing here decided one: no verdict
        or run of that version was seen (the executor's feed after `test-results` expired). The caller has
        verified `a`'s signature (the registry agent signs its echoes). True if the state was taken."""
        e = self._entries.get(a.automation_id)
        if e is None or a.version != e.version or e.state not in ("generated", "testing"):
            return False
        if a.state not in _LIFECYCLE or a.state in ("generated", "testing"):
            return False
        if e.stats_for(e.version).runs or e.results.get(e.version):
            return False
        e.move(a.state, a.state_reason, a.created_at)
        return True

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

    def to_state(self) -> dict[str, Any]:
        return {
            "entries": {aid: e.to_state() for aid, e in self._entries.items()},
            "seen": list(self._seen_order),
            "pending": [
                {
                    "type": "result" if isinstance(ev, TestResult) else "metric",
                    "event": ev.model_dump(mode="json"),
                }
                for ev in self._pending
            ],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: RegistryConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        reg = cls(config)
        window = reg.config.duration_window
        reg._entries = {
            aid: _Entry.from_state(StateReader(e, where=f"registry.entries.{aid}"), window)
            for aid, e in r.dict("entries").items()
        }
        seen = r.strs("seen")[-reg.config.dedupe_window :]
        reg._seen_order.extend(seen)
        reg._seen = set(seen)
        for p in r.objs("pending")[-reg.config.max_pending :]:
            kind = p.str("type")
            if kind not in ("result", "metric"):
                raise StateError(f"{p.where}.type: {kind!r}")
            model = TestResult if kind == "result" else RunMetric
            reg._pending.append(model_state(model, p.dict("event"), f"{p.where}.event"))
        return reg

    def to_json(self) -> dict[str, Any]:
        """The read-only HTTP list view and `rote automations list --json`."""
        return {"automations": [r.to_json() for r in self.records()], "by_state": self.counts_by_state()}


def _parse_time(raw: str, where: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise StateError(f"{where}: not an ISO time: {raw[:40]!r}") from None
    if at.tzinfo is None:
        raise StateError(f"{where}: time without a zone")
    return at


def _version(raw: str, where: str) -> int:
    if not raw.isdigit() or len(raw) > 9:
        raise StateError(f"{where}: {raw[:20]!r} is not a version number")
    return int(raw)


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


_UNKNOWN_TYPE = re.compile(r"action type (['\"])(.{1,80}?)\1 has no action-API operation")


def _inexpressible(a: Automation) -> str:
    """Why no language that runs here can express the automation. Action types the generator does not know
    are named once, with the flag that names them (a new user's German log: the same three reasons three
    times, one per language, and no word of what to do); other reasons per language."""
    unknown: dict[str, None] = {}
    for src in a.sources.values():
        for note in src.unsupported_steps:
            m = _UNKNOWN_TYPE.search(note)
            if m:
                unknown[m.group(2)] = None
    if unknown:
        names = ", ".join(f"'{n}'" for n in list(unknown)[:6]) + (" and more" if len(unknown) > 6 else "")
        example = next(iter(unknown))
        return (
            f"no language that runs here can express every step: the log's action type(s) {names} mean "
            f"nothing to the generator; name them when importing (--action-map '{example}=<rote's name>', "
            f"the names in rote run --help)"
        )
    why = "; ".join(
        f"{lang}: {s.static_check if s.static_check != 'ok' else ', '.join(s.unsupported_steps[:2])}"
        for lang, s in a.sources.items()
    )
    return f"no language that runs here can express every step ({why})"
