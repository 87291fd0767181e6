"""The efficiency tracker's results and settings: per-routine baselines, per-automation savings and the
summary the report, the metrics exporter and `rote run` show.

Why apart from `tracker`: these are plain values that cross into the report, the exporter and the CLI,
which need them without the tracker's pandas accounting or its state checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from rote.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class TrendConfig:
    #: Window of the rolling mean, in successful production runs.
    rolling_runs: int = 10
    #: Smoothing of the exponentially weighted moving average (weight of the newest run).
    ewma_alpha: float = 0.3
    #: The time series in the report is thinned to at most this many points (totals stay exact).
    max_series_points: int = 240

    def __post_init__(self) -> None:
        if self.rolling_runs < 1 or not 0 < self.ewma_alpha <= 1 or self.max_series_points < 2:
            raise ConfigError("need rolling_runs >= 1, 0 < ewma_alpha <= 1 and max_series_points >= 2")


@dataclass(frozen=True, kw_only=True)
class RoutineBaseline:
    candidate_id: str
    name: str
    instances: int
    median_seconds: float
    mean_seconds: float
    p90_seconds: float
    source: Literal["instances", "candidate_mean"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class AutomationEfficiency:
    automation_id: str
    name: str
    candidate_id: str | None
    state: str | None
    versions: int
    baseline_seconds: float | None
    production_runs: int
    successful_runs: int
    failed_runs: int
    sandbox_runs: int
    tests: int
    tests_passed: int
    automated_seconds: float | None
    automated_from: Literal["production", "sandbox"] | None
    time_saved_per_run_seconds: float | None
    projected: bool
    time_saved_seconds: float
    value_saved: float
    cost_build: float
    cost_test: float
    cost_run: float
    cost_maintenance: float
    cost_total: float
    roi: float | None
    speedup: float | None
    ewma_saved_seconds: float | None
    slope_saved_per_run: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class EfficiencySummary:
    currency: str
    hourly_rate: float
    baselines: list[RoutineBaseline]
    automations: list[AutomationEfficiency]
    production_runs: int
    successful_runs: int
    time_saved_seconds: float
    hours_saved: float
    value_saved: float
    cost: dict[str, float]
    roi: float | None
    trends: dict[str, Any]
    series: list[dict[str, Any]] = field(default_factory=list)
    buckets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cost_total(self) -> float:
        return self.cost["total"]

    @property
    def automations_built(self) -> int:
        """Automations whose review is in the build cost (one each; runs of unknown ids cost no review)."""
        return sum(1 for a in self.automations if a.cost_build > 0)

    @property
    def mean_baseline_seconds(self) -> float | None:
        """Mean baseline over the routines that have an automation (what the baseline gauge shows)."""
        vals = [a.baseline_seconds for a in self.automations if a.baseline_seconds is not None]
        return float(np.mean(vals)) if vals else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "hourly_rate": self.hourly_rate,
            "baselines": [b.to_dict() for b in self.baselines],
            "automations": [a.to_dict() for a in self.automations],
            "production_runs": self.production_runs,
            "successful_runs": self.successful_runs,
            "time_saved_seconds": self.time_saved_seconds,
            "hours_saved": self.hours_saved,
            "value_saved": self.value_saved,
            "cost": dict(self.cost),
            "roi": self.roi,
            "automations_built": self.automations_built,
            "mean_baseline_seconds": self.mean_baseline_seconds,
            "trends": self.trends,
            "series": self.series,
            "buckets": self.buckets,
        }
