"""Online detector for one numeric stream: raw surprise signals, calibrated per stream, fused.

Why several signals: the anomalies ops care about look different. A slowdown is a level shift (the
value leaves the long-run level by many spreads), a run at 3 am that takes as long as a run at noon is
only odd against the daily profile, a hang is a spike the short forecast misses, and a value outside
anything seen so far is suspicious whatever the statistics say.

Why calibrate twice: each raw signal is first turned into a per-stream z-score of its short moving
average (`AnomalyLikelihood`, HTM's anomaly-likelihood idea), and that z is then divided by the
largest z this stream has produced recently (a slowly forgetting record). The ratio is what makes one
threshold fit every stream: a noisy stream that routinely reaches z = 12 needs z > 12 to alarm, a calm
one alarms at its first real surprise. A new extreme of the raw value adds one record's worth, so a
value outside the seen range is an alarm on its own (HTM's "spatial anomaly" on NAB), and so, a little
less loudly, is a value in a part of the range no earlier value visited (what remained of CAD OSE's
context novelty once tried on NAB: the longer contexts added nothing).

Tuned on the NAB development set only (one configuration for every file); see docs/anomalies.md.
State is plain numbers and lists, written to changelogs as data (`to_state`/`from_state`), never pickled.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from rote.anomaly.calibration import AnomalyLikelihood, LikelihoodConfig
from rote.errors import RoteError, StateError
from rote.state import StateReader, decode_state, encode_state


class DetectorError(RoteError):
    """A detector was fed something it cannot learn from (non-finite value, time going backwards)."""


COMPONENTS = ("forecast", "level", "season")

OutOfOrder = Literal["accept", "skip", "strict"]
#: Policies for observations older than the latest one (`DetectorConfig.out_of_order`).
OUT_OF_ORDER_POLICIES: tuple[str, ...] = ("accept", "skip", "strict")


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """One configuration for every stream (NAB forbids per-file tuning, and so does ops reality).

    fast_alpha: weight of the newest value in the one-step forecast (an exponentially weighted mean).
    slow_alpha: weight of the newest value in the long-run level and spread; slow enough to stay put
        through an incident, fast enough to follow a trend over a few hundred observations.
    season_slots: time-of-day slots per day for the daily profile (slots come from timestamps, so
        irregular sampling is fine); `weekly` keys slots by day of week as well.
    season_alpha: how fast a slot's profile follows change; season_min: observations a slot needs
        before its residual is trusted.
    spatial_tolerance: a value beyond the seen [min, max] by this fraction of the range is a new extreme.
    warmup: observations before any non-zero score (cold start).
    record_decay: per-observation forgetting of the record z (0.9998: half-life ~3500 observations).
    components: which of forecast / level / season residuals take part (spatial always does).
    novelty_bins: the seen [min, max] is cut into this many bins; a value landing in a bin no earlier
        value visited (a new value *region*, also inside the range) is novel (0 = off).
    novelty_score: the fused evidence (in record ratios) a novel value has at least.
    repeat_horizon / repeat_factor: a score no higher than one of the previous `repeat_horizon` scores
        is multiplied by `repeat_factor`, so one incident rings once at any threshold (NAB credits the
        first detection in a window and charges every later false positive); a more surprising
        value still comes through at full strength. 0 = off.
    out_of_order: what to do with an observation timestamped before the latest one seen (a clock
        stepped back at a DST change or an NTP correction; a run report delivered late). "accept" (the
        default) scores and learns it in arrival order: its own timestamp decides its time-of-day slot,
        the detector's clock does not move back. "skip" leaves it out (score 0, nothing learnt). "strict"
        raises `DetectorError`. Observations with the same timestamp as the latest are always accepted
        (two runs start in the same second; a clock repeats an hour). Each case is counted (`late`,
        `skipped`, `duplicates`) so the policy's effect is visible.
    """

    fast_alpha: float = 0.2
    slow_alpha: float = 0.01
    season_slots: int = 48
    weekly: bool = False
    season_alpha: float = 0.1
    season_min: int = 5
    spatial_tolerance: float = 0.0
    warmup: int = 60
    record_decay: float = 0.9998
    components: tuple[bool, bool, bool] = (False, True, True)
    novelty_bins: int = 16
    novelty_score: float = 1.5
    repeat_horizon: int = 2
    repeat_factor: float = 0.5
    likelihood: LikelihoodConfig = field(default_factory=lambda: LikelihoodConfig(averaging=5, learning=60))
    out_of_order: OutOfOrder = "accept"

    def __post_init__(self) -> None:
        if self.out_of_order not in OUT_OF_ORDER_POLICIES:
            raise DetectorError(
                f"out_of_order must be one of {', '.join(OUT_OF_ORDER_POLICIES)}, got {self.out_of_order!r}"
            )


_EPS = 1e-9
_CAP = 50.0


class EWMean:
    """Exponentially weighted mean; the first value starts it (as River's `stats.EWMean`).

    Kept here as two plain numbers rather than River's Rust object so that a detector's state is data.
    """

    __slots__ = ("alpha", "mean", "started")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.started = False

    def update(self, x: float) -> None:
        if self.started:
            self.mean = self.alpha * x + (1.0 - self.alpha) * self.mean
        else:
            self.mean, self.started = x, True

    def get(self) -> float:
        return self.mean


class EWVar:
    """Exponentially weighted variance (Finch 2009, incremental form; River's `stats.EWVar` to ~1e-14)."""

    __slots__ = ("alpha", "mean", "started", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.var = 0.0
        self.started = False

    def update(self, x: float) -> None:
        if not self.started:
            self.mean, self.var, self.started = x, 0.0, True
            return
        diff = x - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1.0 - self.alpha) * (self.var + diff * incr)

    def get(self) -> float:
        return self.var


class StreamDetector:
    """River-style detector for one stream: `score_one` (pure), `learn_one`, or `update` for both.

    Scores are in [0, 1): 0.5 means "as surprising as the most surprising thing recently seen", and
    the NAB-optimal threshold sits near 0.58 (see docs/anomalies.md).
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        self._fast = EWMean(cfg.fast_alpha)
        self._fast_err = EWMean(min(1.0, cfg.slow_alpha * 5))
        self._slow = EWMean(cfg.slow_alpha)
        self._slow_var = EWVar(cfg.slow_alpha)
        slots = cfg.season_slots * (7 if cfg.weekly else 1)
        self._season_mean = [0.0] * slots
        self._season_dev = [0.0] * slots
        self._season_n = [0] * slots
        self._lo = math.inf
        self._hi = -math.inf
        self._visited: set[int] = set()
        self._recent_scores: deque[float] = deque(maxlen=max(cfg.repeat_horizon, 1))
        self._n = 0
        self._last_at: float | None = None
        #: observations timestamped before the latest one (learnt), left out (skip policy), or at the
        #: same time as the latest one
        self.late = 0
        self.skipped = 0
        self.duplicates = 0
        self._cal = [AnomalyLikelihood(cfg.likelihood) for _ in COMPONENTS]
        self._zmax = [0.0] * len(COMPONENTS)
        #: per-component record ratios and the spatial flag of the last scored observation
        self.last_components: dict[str, float] = {}

    @property
    def n_seen(self) -> int:
        return self._n

    # ---- river-style API -------------------------------------------------------------------------

    def order_of(self, at: datetime | float) -> str:
        """ "in order", "duplicate" (same time as the latest observation) or "late" (before it)."""
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        if self._last_at is None or t > self._last_at:
            return "in order"
        return "duplicate" if t == self._last_at else "late"

    def score_one(self, value: float, at: datetime | float) -> float:
        """Score without learning: what `update` would return, leaving the state untouched."""
        t = self._check(value, at)
        if self.config.out_of_order == "skip" and self.order_of(t) == "late":
            return 0.0
        raws = self._raw(value, t)
        zs = [cal.peek_z(r) if r is not None else 0.0 for cal, r in zip(self._cal, raws, strict=True)]
        return self._fuse(zs, self._spatial(value), self._novel(value), learn=False)

    def learn_one(self, value: float, at: datetime | float) -> None:
        # Learning includes the score itself: the repeat rule remembers the last scores.
        self.update(value, at)

    def update(self, value: float, at: datetime | float) -> float:
        """Score `value` observed at `at` against the past, then learn it; returns the score.

        An observation older than the latest one follows `DetectorConfig.out_of_order` (and is counted).
        """
        t = self._check(value, at)
        order = self.order_of(t)
        if order == "late":
            if self.config.out_of_order == "skip":
                self.skipped += 1
                self.last_components = {}
                return 0.0
            self.late += 1
        elif order == "duplicate":
            self.duplicates += 1
        raws = self._raw(value, t)
        zs = []
        for cal, r in zip(self._cal, raws, strict=True):
            if r is None:  # signal not defined yet (an immature daily slot): keep it out of "normal"
                zs.append(0.0)
                continue
            cal.update(r)
            zs.append(cal.zscore() if cal.ready else 0.0)
        out = self._fuse(zs, self._spatial(value), self._novel(value), learn=True)
        self._learn(value, t)
        return out

    def expected_range(self, at: datetime | float, *, width: float = 3.0) -> tuple[float, float]:
        """The band a normal value at `at` falls in: the daily profile where trusted, else the level."""
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        slot = self._slot(t)
        spread = math.sqrt(max(self._slow_var.get(), 0.0))
        if self.config.components[2] and self._season_n[slot] >= self.config.season_min:
            centre = self._season_mean[slot]
            spread = min(spread, 1.25 * self._season_dev[slot] + 0.1 * self._fast_err.get())
        else:
            centre = self._slow.get()
        return (centre - width * spread, centre + width * spread)

    def checkpoint(self) -> bytes:
        """The detector's state as data-only bytes (`rote.state`), for `restore`."""
        return encode_state(self)

    @staticmethod
    def restore(blob: bytes, config: DetectorConfig | None = None) -> StreamDetector:
        try:
            return decode_state(StreamDetector, blob, config=config)
        except StateError as exc:
            raise DetectorError(f"not a detector checkpoint: {exc}") from None

    # ---- data-only state ---------------------------------------------------------------------------

    STATE_KIND: ClassVar[str] = "stream-detector"
    STATE_VERSION: ClassVar[int] = 1

    def to_state(self) -> dict[str, Any]:
        return {
            "fast": [self._fast.mean, self._fast.started],
            "fast_err": [self._fast_err.mean, self._fast_err.started],
            "slow": [self._slow.mean, self._slow.started],
            "slow_var": [self._slow_var.mean, self._slow_var.var, self._slow_var.started],
            "season_mean": list(self._season_mean),
            "season_dev": list(self._season_dev),
            "season_n": list(self._season_n),
            "lo": None if math.isinf(self._lo) else self._lo,
            "hi": None if math.isinf(self._hi) else self._hi,
            "visited": sorted(self._visited),
            "recent_scores": list(self._recent_scores),
            "n": self._n,
            "last_at": self._last_at,
            "order": [self.late, self.skipped, self.duplicates],
            "cal": [c.to_state() for c in self._cal],
            "zmax": list(self._zmax),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: DetectorConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(config)
        cfg = obj.config
        for name, ew in (("fast", obj._fast), ("fast_err", obj._fast_err), ("slow", obj._slow)):
            mean, started = _pair(r.list(name), f"{cls.STATE_KIND}.{name}")
            ew.mean, ew.started = mean, started
        var = r.list("slow_var")
        if len(var) != 3 or not isinstance(var[2], bool):
            raise StateError(f"{cls.STATE_KIND}.slow_var: expected [mean, var, started]")
        obj._slow_var.mean, obj._slow_var.var = _num(var[0], "slow_var"), _num(var[1], "slow_var")
        obj._slow_var.started = var[2]
        slots = cfg.season_slots * (7 if cfg.weekly else 1)
        obj._season_mean, obj._season_dev = r.floats("season_mean"), r.floats("season_dev")
        obj._season_n = r.ints("season_n")
        if not len(obj._season_mean) == len(obj._season_dev) == len(obj._season_n) == slots:
            raise StateError(f"{cls.STATE_KIND}: season profile does not have {slots} slots")
        lo, hi = r.opt_float("lo"), r.opt_float("hi")
        obj._lo = math.inf if lo is None else lo
        obj._hi = -math.inf if hi is None else hi
        visited = r.ints("visited")
        if len(visited) > 4 * max(cfg.novelty_bins, 1) + 4:
            raise StateError(f"{cls.STATE_KIND}.visited: more bins than the detector has")
        obj._visited = set(visited)
        recent = r.floats("recent_scores")
        if len(recent) > (obj._recent_scores.maxlen or 0):
            raise StateError(f"{cls.STATE_KIND}.recent_scores: too many")
        obj._recent_scores.extend(recent)
        obj._n = r.int("n")
        obj._last_at = r.opt_float("last_at")
        order = data.get("order", [0, 0, 0])  # absent in states written before the time-order policy
        counts_ok = isinstance(order, list) and len(order) == 3
        if not (counts_ok and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in order)):
            raise StateError(f"{cls.STATE_KIND}.order: expected [late, skipped, duplicates]")
        obj.late, obj.skipped, obj.duplicates = order
        cals = r.list("cal")
        if len(cals) != len(COMPONENTS):
            raise StateError(f"{cls.STATE_KIND}.cal: expected {len(COMPONENTS)} calibrations")
        obj._cal = [AnomalyLikelihood.from_state(c, config=cfg.likelihood) for c in cals]
        obj._zmax = r.floats("zmax")
        if len(obj._zmax) != len(COMPONENTS):
            raise StateError(f"{cls.STATE_KIND}.zmax: expected {len(COMPONENTS)} records")
        return obj

    # ---- internals --------------------------------------------------------------------------------

    def _check(self, value: float, at: datetime | float) -> float:
        if not math.isfinite(value):
            raise DetectorError(f"value must be finite, got {value!r}")
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        if not math.isfinite(t):
            raise DetectorError(f"timestamp must be finite, got {t!r}")
        if self.config.out_of_order == "strict" and self._last_at is not None and t < self._last_at:
            raise DetectorError("observations must arrive in time order (out_of_order='strict')")
        return t

    def _fuse(self, zs: list[float], spatial: bool, novel: bool, *, learn: bool) -> float:
        cfg = self.config
        if self._n < cfg.warmup:
            if learn:
                self.last_components = {}
            return 0.0
        ratios = [z / m if m > 0 else 0.0 for z, m in zip(zs, self._zmax, strict=True)]
        if learn:
            self._remember_records(zs)
            self.last_components = dict(zip(COMPONENTS, ratios, strict=True))
            self.last_components["spatial"] = 1.0 if spatial else 0.0
            self.last_components["novel"] = 1.0 if novel else 0.0
        fused = max((r for r, on in zip(ratios, cfg.components, strict=True) if on), default=0.0)
        fused += 1.0 if spatial else 0.0
        if novel:
            fused = max(fused, cfg.novelty_score)
        out = fused / (fused + 1.0) if fused > 0 else 0.0
        if cfg.repeat_horizon <= 0:
            return out
        repeat = bool(self._recent_scores) and out <= max(self._recent_scores)
        if learn:
            self._recent_scores.append(out)
        return out * cfg.repeat_factor if repeat else out

    def _remember_records(self, zs: list[float]) -> None:
        decay = self.config.record_decay
        self._zmax = [max(m * decay, z) for m, z in zip(self._zmax, zs, strict=True)]

    def _slot(self, t: float) -> int:
        cfg = self.config
        day = t / 86400.0
        slot = int((day - math.floor(day)) * cfg.season_slots)
        if cfg.weekly:
            weekday = (math.floor(day) + 3) % 7  # 1970-01-01 was a Thursday
            slot += weekday * cfg.season_slots
        return slot

    def _raw(self, x: float, t: float) -> tuple[float, float, float | None]:
        if self._n == 0:
            return (0.0, 0.0, None)
        err = abs(x - self._fast.get())
        typical_err = self._fast_err.get()
        forecast = _ratio(err, typical_err)
        std = math.sqrt(max(self._slow_var.get(), 0.0))
        level = _ratio(abs(x - self._slow.get()), std)
        slot = self._slot(t)
        season: float | None = None
        if self._season_n[slot] >= self.config.season_min:
            expected = self._season_mean[slot]
            season = _ratio(abs(x - expected), self._season_dev[slot] + 0.1 * typical_err)
        return (forecast, level, season)

    def _spatial(self, x: float) -> bool:
        if self._n < self.config.warmup:
            return False
        span = self._hi - self._lo
        tol = self.config.spatial_tolerance * span
        return span > 0 and (x > self._hi + tol or x < self._lo - tol)

    def _bin(self, x: float) -> int | None:
        bins = self.config.novelty_bins
        span = self._hi - self._lo
        if bins <= 0 or not span > 0:
            return None
        # Beyond the range, bins continue (coarsely capped) so a far excursion is a region of its own.
        return int(min(max((x - self._lo) / span, -0.5), 1.5) * bins)

    def _novel(self, x: float) -> bool:
        if self._n < self.config.warmup:
            return False
        b = self._bin(x)
        return b is not None and b not in self._visited

    def _learn(self, x: float, t: float) -> None:
        b = self._bin(x)
        if b is not None:
            self._visited.add(b)
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
            self._season_dev[slot] += a * (abs(x - self._season_mean[slot]) - self._season_dev[slot])
            self._season_mean[slot] += a * (x - self._season_mean[slot])
        self._season_n[slot] += 1
        self._lo = min(self._lo, x)
        self._hi = max(self._hi, x)
        self._n += 1
        # a late observation never moves the clock back
        self._last_at = t if self._last_at is None else max(self._last_at, t)


def _num(v: Any, where: str) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise StateError(f"stream-detector.{where}: expected a number, got {type(v).__name__}")
    return float(v)


def _pair(raw: list[Any], where: str) -> tuple[float, bool]:
    if len(raw) != 2 or not isinstance(raw[1], bool):
        raise StateError(f"{where}: expected [mean, started]")
    return _num(raw[0], where), raw[1]


def _ratio(deviation: float, scale: float) -> float:
    """Deviation in units of scale, capped; a deviation on a perfectly flat stream counts as large."""
    if scale > _EPS:
        return min(deviation / scale, _CAP)
    return 0.0 if deviation <= _EPS else 10.0
