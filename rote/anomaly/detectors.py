"""Online detectors for one numeric stream: raw surprise signals, calibrated per stream, fused.

Why several signals: the anomalies ops care about look different. A slowdown is a level shift (the
slow mean drifts away), a hang is a spike (the fast forecast misses badly), a run at 3 am that
takes as long as a run at noon is only odd against the daily profile, and a value outside anything
seen so far is suspicious whatever the statistics say. Each signal is a raw score on its own scale;
`AnomalyLikelihood` re-expresses each as a per-stream tail probability, and the fused output is the
most confident of them on HTM's log scale, so one threshold works for every stream.

State is plain Python plus River's `stats` objects, all of which pickle, so `checkpoint()` /
`restore()` are just pickle round trips.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime

from river import stats

from rote.anomaly.calibration import AnomalyLikelihood, LikelihoodConfig
from rote.errors import RoteError


class DetectorError(RoteError):
    """A detector was fed something it cannot learn from (non-finite value, time going backwards)."""


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """One configuration for every stream (NAB forbids per-file tuning, and so does ops reality).

    fast_alpha: weight of the newest value in the one-step forecast (an exponentially weighted mean).
    slow_alpha: weight of the newest value in the long-run level and spread.
    season_slots: time-of-day slots per day for the daily profile; weekly adds day-of-week.
    season_alpha: how fast a slot's profile follows change.
    season_min: observations a slot needs before its residual is trusted.
    spatial_tolerance: a value beyond the seen [min, max] by this fraction of the range is a new extreme.
    warmup: observations before any non-zero score (cold start).
    suppress: after an alarm-level output, outputs below `alarm` are held down for this many
        observations so one incident yields one alert, not a storm.
    """

    fast_alpha: float = 0.5
    slow_alpha: float = 0.01
    season_slots: int = 48
    weekly: bool = False
    season_alpha: float = 0.1
    season_min: int = 5
    spatial_tolerance: float = 0.05
    warmup: int = 150
    likelihood: LikelihoodConfig = field(default_factory=LikelihoodConfig)
    alarm: float = 0.5
    z_weight: float = 1.0
    z_half: float = 6.0
    spatial_bonus: float = 6.0
    suppress: int = 0


_EPS = 1e-9


class StreamDetector:
    """River-style detector for one stream: `score_one` then `learn_one`, or `update` for both."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        self._fast = stats.EWMean(cfg.fast_alpha)
        self._fast_err = stats.EWMean(cfg.slow_alpha * 5)
        self._slow = stats.EWMean(cfg.slow_alpha)
        self._slow_var = stats.EWVar(cfg.slow_alpha)
        slots = cfg.season_slots * (7 if cfg.weekly else 1)
        self._season_mean = [0.0] * slots
        self._season_dev = [0.0] * slots
        self._season_n = [0] * slots
        self._lo = math.inf
        self._hi = -math.inf
        self._n = 0
        self._last_at: float | None = None
        self._cal = [AnomalyLikelihood(cfg.likelihood) for _ in range(3)]
        self._quiet = 0
        self.last_components: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    # ---- river-style API -------------------------------------------------------------------------

    def update(self, value: float, at: datetime | float) -> float:
        """Score `value` observed at `at` against the past, learn it, and return the fused score."""
        if not math.isfinite(value):
            raise DetectorError(f"value must be finite, got {value!r}")
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        if self._last_at is not None and t < self._last_at:
            raise DetectorError("observations must arrive in time order")
        cfg = self.config
        raws = self._raw(value, t)
        zs = []
        for cal, r in zip(self._cal, raws, strict=True):
            cal.update(r)
            zs.append(cal.zscore() if cal.ready else 0.0)
        spatial = self._spatial(value)
        self._learn(value, t)
        if self._n <= cfg.warmup:
            self.last_components = (0.0, 0.0, 0.0, 0.0)
            return 0.0
        fused = max(zs) * cfg.z_weight + (cfg.spatial_bonus if spatial else 0.0)
        out = fused / (fused + cfg.z_half) if fused > 0 else 0.0
        self.last_components = (zs[0], zs[1], zs[2], 1.0 if spatial else 0.0)
        if cfg.suppress:
            if out >= cfg.alarm:
                if self._quiet > 0:
                    out = min(out, cfg.alarm * 0.99)
                self._quiet = cfg.suppress
            elif self._quiet > 0:
                self._quiet -= 1
        return out

    def checkpoint(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(blob: bytes) -> StreamDetector:
        obj = pickle.loads(blob)
        if not isinstance(obj, StreamDetector):
            raise DetectorError(f"checkpoint holds a {type(obj).__name__}, not a StreamDetector")
        return obj

    # ---- internals --------------------------------------------------------------------------------

    def _slot(self, t: float) -> int:
        cfg = self.config
        day = t / 86400.0
        slot = int((day - math.floor(day)) * cfg.season_slots)
        if cfg.weekly:
            weekday = (int(math.floor(day)) + 3) % 7  # 1970-01-01 was a Thursday
            slot += weekday * cfg.season_slots
        return slot

    def _raw(self, x: float, t: float) -> tuple[float, float, float]:
        if self._n == 0:
            return (0.0, 0.0, 0.0)
        forecast = self._fast.get()
        err = abs(x - forecast)
        typical_err = self._fast_err.get()
        pred = err / (typical_err + _EPS) if typical_err > 0 else (0.0 if err == 0 else 10.0)
        std = math.sqrt(max(self._slow_var.get(), 0.0))
        level = abs(x - self._slow.get()) / (std + _EPS) if std > 0 else (0.0 if err == 0 else 10.0)
        slot = self._slot(t)
        season = 0.0
        if self._season_n[slot] >= self.config.season_min:
            dev = self._season_dev[slot] + 0.1 * typical_err
            resid = abs(x - self._season_mean[slot])
            season = resid / (dev + _EPS) if dev > 0 else (0.0 if resid == 0 else 10.0)
        return (min(pred, 50.0), min(level, 50.0), min(season, 50.0))

    def _spatial(self, x: float) -> bool:
        if self._n < self.config.warmup:
            return False
        span = self._hi - self._lo
        tol = self.config.spatial_tolerance * span
        return span > 0 and (x > self._hi + tol or x < self._lo - tol)

    def _learn(self, x: float, t: float) -> None:
        if self._n > 0:
            self._fast_err.update(abs(x - self._fast.get()))
        self._fast.update(x)
        self._slow.update(x)
        self._slow_var.update(x)
        slot = self._slot(t)
        a = self.config.season_alpha
        if self._season_n[slot] == 0:
            self._season_mean[slot] = x
        else:
            resid = abs(x - self._season_mean[slot])
            self._season_dev[slot] += a * (resid - self._season_dev[slot])
            self._season_mean[slot] += a * (x - self._season_mean[slot])
        self._season_n[slot] += 1
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._n += 1
        self._last_at = t
