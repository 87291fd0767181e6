"""The performance monitor's per-automation logic, called by the Faust agent for every run report.

One `SeriesMonitor` per automation holds one `StreamDetector` per signal (duration, failure ratio,
CPU, memory, each step's duration). A detector score alone is not a page: NAB-style scores rank how
surprising a value is *for this stream*, and on a very steady stream even a 3 % wiggle can be the most
surprising thing seen so far. A `Finding` therefore needs both a high score and a change big enough to
matter to ops (outside the expected band and by a minimum relative amount), and once a signal has
fired it stays quiet for a cool-down unless severity escalates, so one incident is one alert.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from rote.anomaly.calibration import LikelihoodConfig
from rote.anomaly.detectors import DetectorConfig, StreamDetector
from rote.errors import StateError
from rote.state import StateReader
from rote.streams.schemas import RunMetric, TestResult

Severity = Literal["info", "warning", "critical"]
_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

FAILURE_SIGNAL = "failure_ratio"


def _run_detector() -> DetectorConfig:
    # Automation runs arrive minutes to hours apart, so cold start is counted in runs, not in days:
    # 20 runs of history before any score, a shorter likelihood memory, and no daily profile until a
    # slot has seen a handful of runs (season_min). Repeats are handled by the monitor's own cool-down
    # (which also knows about severity), so the detector's repeat damping is off here.
    return DetectorConfig(
        warmup=20,
        season_slots=24,
        season_min=5,
        record_decay=0.999,
        components=(True, True, True),
        repeat_horizon=0,
        likelihood=LikelihoodConfig(averaging=3, learning=20, history=1000, reestimate=10),
    )


@dataclass(frozen=True, kw_only=True)
class MonitorConfig:
    """Thresholds that turn detector scores into findings.

    info / warning / critical: detector score needed for each severity (scores are in [0, 1); 0.5 is
        "as surprising as the most surprising recent value", the NAB-tuned threshold is ~0.58).
    min_history: observations of a signal before it may produce findings (cold start).
    min_relative_change: the observed value must differ from the expected band's centre by at least
        this fraction of it (0.5 = 50 %), so statistically odd but operationally trivial changes on
        very steady streams are not reported.
    band_width: expected band = centre +/- band_width spreads.
    cooldown: observations a signal stays quiet after a finding unless its severity escalates.
    failure_window: runs over which the failure ratio is computed; min_failure_ratio: the ratio below
        which failures are never reported (one flaky run in twenty is not an incident); from
        critical_failure_ratio on, a failure finding is critical.
    emit_info: whether info-level findings are returned at all.
    """

    info: float = 0.55
    warning: float = 0.62
    critical: float = 0.75
    min_history: int = 20
    min_relative_change: float = 0.5
    band_width: float = 3.0
    cooldown: int = 10
    failure_window: int = 20
    min_failure_ratio: float = 0.2
    critical_failure_ratio: float = 0.5
    emit_info: bool = False
    #: Per-step duration signals watched per automation, at most: the slowest steps of the run that first
    #: sees them. A step taking a sliver of the run cannot slow it down much, and every signal costs state
    #: (three calibrations), which a changelog record must hold.
    max_step_signals: int = 8
    #: Observations kept per automation for ordering (a redelivered run report is not learnt twice).
    dedupe_window: int = 512
    detector: DetectorConfig = field(default_factory=_run_detector)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One anomaly on one signal, ready to become an `Anomaly` event."""

    signal: str
    score: float
    severity: Severity
    observed: float
    expected_low: float
    expected_high: float
    explanation: str
    detector: str


class SeriesMonitor:
    """All signals of one automation's runs from one source (sandbox or production). State is data."""

    STATE_KIND: ClassVar[str] = "series-monitor"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._detectors: dict[str, StreamDetector] = {}
        self._quiet: dict[str, tuple[int, int]] = {}  # signal -> (observations left, severity rank)
        self._failures: deque[float] = deque(maxlen=self.config.failure_window)

    @property
    def signals(self) -> list[str]:
        return sorted(self._detectors)

    def detector(self, signal: str) -> StreamDetector | None:
        return self._detectors.get(signal)

    def order_of(self, at: datetime) -> str:
        """Where a run report at `at` falls in this series' time: "in order", "duplicate" or "late".

        Late and duplicate reports are learnt like any other (`DetectorConfig.out_of_order`, "accept"):
        a run report delivered after a later one, or a clock that stepped back, is still a real run.
        """
        orders = {d.order_of(at) for d in self._detectors.values()}
        for order in ("late", "duplicate"):
            if order in orders:
                return order
        return "in order"

    def select(self, signals: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The signals of one run this monitor watches: every run-level signal, and per-step durations of
        the steps it already watches plus, while under `max_step_signals`, the slowest new ones."""
        budget = self.config.max_step_signals - sum(1 for s in self._detectors if s.startswith("step_"))
        new_steps = sorted(
            ((s, v) for s, v in signals if s.startswith("step_") and s not in self._detectors),
            key=lambda sv: -sv[1],
        )
        admitted = {s for s, _ in new_steps[: max(budget, 0)]}
        return [
            (s, v) for s, v in signals if not s.startswith("step_") or s in self._detectors or s in admitted
        ]

    def observe(self, *, signal: str, value: float, at: datetime) -> Finding | None:
        """Learn one observation of `signal`; return a finding when it is anomalous enough to report."""
        cfg = self.config
        if not math.isfinite(value):
            return None
        if signal == FAILURE_SIGNAL:
            # Each run reports 0 (ok) or 1 (failed); what ops care about is the recent ratio.
            self._failures.append(1.0 if value >= 0.5 else 0.0)
            value = sum(self._failures) / len(self._failures)
        det = self._detectors.get(signal)
        if det is None:
            det = self._detectors[signal] = StreamDetector(cfg.detector)
        seen = det.n_seen
        low, high = det.expected_range(at, width=cfg.band_width)
        centre = (low + high) / 2.0
        score = det.update(value, at)
        components = dict(det.last_components)

        left, rank = self._quiet.get(signal, (0, -1))
        if left > 0:
            self._quiet[signal] = (left - 1, rank)
        if seen < max(cfg.min_history, cfg.detector.warmup):
            return None
        if low <= value <= high:
            return None
        if signal == FAILURE_SIGNAL:
            # A failure ratio is already a rate with an ops meaning of its own: above the stream's
            # normal band, its size sets the severity (the detector score can only raise it).
            if value < cfg.min_failure_ratio:
                return None
            score = max(score, min(1.0, value))
            severity: Severity | None = "critical" if value >= cfg.critical_failure_ratio else "warning"
        else:
            severity = self._severity(score)
            # A jump from the last few runs alone is how a daily rhythm looks before its profile is
            # learnt; an incident also breaks the long-run level, the time-of-day profile or the range.
            if max(components.get(k, 0.0) for k in ("level", "season", "spatial")) < 1.0:
                return None
            if abs(value - centre) < cfg.min_relative_change * max(abs(centre), 1e-9):
                return None
        if severity is None or (severity == "info" and not cfg.emit_info):
            return None
        if left > 0 and _RANK[severity] <= rank:
            return None
        self._quiet[signal] = (cfg.cooldown, _RANK[severity])
        return Finding(
            signal=signal,
            score=min(1.0, max(0.0, score)),
            severity=severity,
            observed=value,
            expected_low=low,
            expected_high=high,
            explanation=_explain(signal, value, low, high, centre, components),
            detector=_detector_name(components),
        )

    def _severity(self, score: float) -> Severity | None:
        cfg = self.config
        if score >= cfg.critical:
            return "critical"
        if score >= cfg.warning:
            return "warning"
        if score >= cfg.info:
            return "info"
        return None

    # ---- data-only state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "detectors": {k: d.to_state() for k, d in self._detectors.items()},
            "quiet": {k: list(v) for k, v in self._quiet.items()},
            "failures": list(self._failures),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: MonitorConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(config)
        dets = r.dict("detectors")
        if len(dets) > obj.config.max_step_signals + 16:
            raise StateError(f"{cls.STATE_KIND}.detectors: {len(dets)} signals is more than it watches")
        obj._detectors = {
            str(k): StreamDetector.from_state(
                StateReader(v, where=f"{cls.STATE_KIND}.{k}").data, config=obj.config.detector
            )
            for k, v in dets.items()
        }
        for k, v in r.dict("quiet").items():
            if not (
                isinstance(v, list)
                and len(v) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            ):
                raise StateError(f"{cls.STATE_KIND}.quiet.{k}: expected [left, rank]")
            obj._quiet[k] = (v[0], v[1])
        failures = r.floats("failures")
        if len(failures) > obj.config.failure_window:
            raise StateError(f"{cls.STATE_KIND}.failures: longer than the window")
        obj._failures.extend(failures)
        return obj


class AutomationMonitors:
    """One automation's monitors, one per run source ("sandbox", "production"), and the run reports seen.

    The performance monitor keeps one of these per automation id. Run reports arrive at least once, so the
    ids of recent ones are remembered and a redelivered report is not learnt twice.
    """

    STATE_KIND: ClassVar[str] = "automation-monitors"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self.series: dict[str, SeriesMonitor] = {}
        self._seen: deque[str] = deque(maxlen=self.config.dedupe_window)

    def order_of(self, source: str, at: datetime) -> str:
        """ "in order", "duplicate" or "late": how a run report at `at` relates to `source`'s series."""
        mon = self.series.get(source)
        return mon.order_of(at) if mon is not None else "in order"

    def monitor(self, source: str) -> SeriesMonitor:
        mon = self.series.get(source)
        if mon is None:
            mon = self.series[source] = SeriesMonitor(self.config)
        return mon

    def first_time(self, observation_id: str) -> bool:
        if observation_id in self._seen:
            return False
        self._seen.append(observation_id)
        return True

    def observe_metric(self, m: RunMetric) -> list[Finding]:
        """Learn one run report (its source's series); a report seen before produces nothing."""
        if not self.first_time(f"m:{m.run_id}"):
            return []
        return self._observe(m.source, signals_from_metric(m), m.started_at)

    def observe_result(
        self, r: TestResult, *, only: frozenset[str] = frozenset({"output_bytes"})
    ) -> list[Finding]:
        """Learn what a sandboxed test result adds to its run report (by default only the output volume:
        the rest of a sandbox run arrives as its own `metrics` event and must not count twice)."""
        if not self.first_time(f"r:{r.result_id}"):
            return []
        signals = [(s, v) for s, v in signals_from_test_result(r) if s in only]
        return self._observe("sandbox", signals, r.started_at)

    def _observe(self, source: str, signals: list[tuple[str, float]], at: datetime) -> list[Finding]:
        mon = self.monitor(source)
        out = []
        for signal, value in mon.select(signals):
            finding = mon.observe(signal=signal, value=value, at=at)
            if finding is not None:
                out.append(finding)
        return out

    def to_state(self) -> dict[str, Any]:
        return {"series": {k: m.to_state() for k, m in self.series.items()}, "seen": list(self._seen)}

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: MonitorConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(config)
        series = r.dict("series")
        if len(series) > 4:
            raise StateError(f"{cls.STATE_KIND}.series: unknown run sources")
        obj.series = {
            str(k): SeriesMonitor.from_state(
                StateReader(v, where=f"{cls.STATE_KIND}.{k}").data, config=obj.config
            )
            for k, v in series.items()
        }
        seen = r.strs("seen")
        obj._seen.extend(seen[-obj.config.dedupe_window :])
        return obj


def _detector_name(components: dict[str, float]) -> str:
    if not components:
        return "rote-stream"
    strongest = max(components, key=lambda k: components[k])
    return f"rote-stream/{strongest}"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _explain(
    signal: str, value: float, low: float, high: float, centre: float, components: dict[str, float]
) -> str:
    direction = "above" if value > high else "below"
    factor = value / centre if centre > 0 and value > 0 else None
    how = f" ({factor:.1f}x the usual {_fmt(centre)})" if factor is not None else ""
    why = []
    if components.get("spatial"):
        why.append("outside every value seen so far")
    elif components.get("novel"):
        why.append("in a range no earlier value fell in")
    if components.get("season", 0.0) >= 1.0:
        why.append("unusual for this time of day")
    if components.get("level", 0.0) >= 1.0:
        why.append("far from the long-run level")
    if components.get("forecast", 0.0) >= 1.0:
        why.append("a jump from the recent runs")
    reason = f"; {', '.join(why)}" if why else ""
    return f"{signal} = {_fmt(value)} is {direction} the expected {_fmt(low)}..{_fmt(high)}{how}{reason}"


def signals_from_metric(m: RunMetric) -> list[tuple[str, float]]:
    """The signals one production/sandbox run report contributes, in a stable order."""
    out: list[tuple[str, float]] = [
        ("duration_seconds", float(m.duration_seconds)),
        (FAILURE_SIGNAL, 0.0 if m.success else 1.0),
    ]
    if m.cpu_seconds is not None:
        out.append(("cpu_seconds", float(m.cpu_seconds)))
    if m.peak_memory_bytes is not None:
        out.append(("peak_memory_bytes", float(m.peak_memory_bytes)))
    for step in m.steps:
        out.append((f"step_{step.step}_duration_seconds", float(step.duration_seconds)))
    return out


def signals_from_test_result(r: TestResult) -> list[tuple[str, float]]:
    """The signals one sandboxed test run contributes (its wall time is the run's duration)."""
    return [
        ("duration_seconds", float(r.wall_seconds)),
        (FAILURE_SIGNAL, 0.0 if r.passed else 1.0),
        ("cpu_seconds", float(r.cpu_seconds)),
        ("peak_memory_bytes", float(r.peak_memory_bytes)),
        ("output_bytes", float(r.output_bytes)),
    ]
