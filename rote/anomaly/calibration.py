"""Per-stream calibration of raw anomaly scores into tail probabilities.

Raw scores (a z-score, a prediction error, a novelty count) mean different things on different
streams: a z of 4 is routine on bursty tweet counts and alarming on a flat CPU series. One threshold
for every stream therefore needs each raw score re-expressed as "how unusual is this *for this
stream*". This is the idea behind HTM's anomaly likelihood (Ahmad et al. 2017): smooth the raw score
over a short window, model the smoothed scores of the recent past as a normal distribution, and report
the upper tail probability of the current smoothed score. The short average turns a burst of
moderately surprising points into a confident alarm while an isolated blip on a noisy stream stays
quiet.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from rote.errors import StateError
from rote.state import StateReader


@dataclass(frozen=True, kw_only=True)
class LikelihoodConfig:
    """Defaults follow HTM's anomaly likelihood, scaled to the short streams automations produce.

    learning: observations before any estimate is trusted (cold start: the output stays 0.5).
    history: how many smoothed scores the distribution is estimated from (the stream's "normal").
    averaging: short moving average of raw scores; longer = fewer but later alarms.
    reestimate: recompute mean/variance every this many observations (the estimate lags on purpose,
        so that an anomaly in progress does not immediately become part of "normal").
    min_std: floor of the estimated standard deviation, so a perfectly flat score history does not
        turn the first tiny wiggle into certainty.
    """

    learning: int = 300
    history: int = 4000
    averaging: int = 10
    reestimate: int = 50
    min_std: float = 0.05


def normal_tail(z: float) -> float:
    """P(Z > z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class AnomalyLikelihood:
    """Turns a stream of raw scores into likelihoods in [0, 1] (1 = certainly unusual).

    The distribution of "normal" is re-estimated every `reestimate` observations over the last `history`
    smoothed scores. Those estimates only ever need the window's sums, and every estimate falls on a
    block boundary (`learning` plus a multiple of `reestimate`), so the window is kept as per-block sums
    instead of every score: the same moments, and a state of `history / reestimate` pairs that goes into
    a changelog record as plain data (`to_state`).
    """

    STATE_KIND: ClassVar[str] = "anomaly-likelihood"
    STATE_VERSION: ClassVar[int] = 1

    def __init__(self, config: LikelihoodConfig | None = None) -> None:
        self.config = cfg = config or LikelihoodConfig()
        if cfg.history % cfg.reestimate:
            raise ValueError("history must be a multiple of reestimate (the window is kept in blocks)")
        self._recent: deque[float] = deque(maxlen=cfg.averaging)
        self._recent_sum = 0.0
        #: completed blocks of smoothed scores: (sum, sum of squares, count), oldest first
        self._blocks: deque[tuple[float, float, int]] = deque()
        self._block = (0.0, 0.0, 0)  # the block being filled
        self._mean = 0.0
        self._std = 1.0
        self._seen = 0
        self._since_estimate = 0

    @property
    def seen(self) -> int:
        return self._seen

    @property
    def ready(self) -> bool:
        return self._seen >= self.config.learning

    def smoothed(self) -> float:
        return self._recent_sum / len(self._recent) if self._recent else 0.0

    def _boundary(self, seen: int) -> bool:
        """Does a block end after the `seen`-th observation (blocks end where estimates happen)?"""
        cfg = self.config
        return seen % cfg.reestimate == cfg.learning % cfg.reestimate

    def _smooth(self, raw: float) -> tuple[float, int]:
        n = len(self._recent)
        total = self._recent_sum + raw
        if n == self._recent.maxlen:
            total -= self._recent[0]
        else:
            n += 1
        return total / n, n

    def update(self, raw: float) -> float:
        """Learn `raw` and return the likelihood of the current smoothed score."""
        cfg = self.config
        if len(self._recent) == self._recent.maxlen:
            self._recent_sum -= self._recent[0]
        self._recent.append(raw)
        self._recent_sum += raw
        avg = self._recent_sum / len(self._recent)

        s, sq, n = self._block
        self._block = (s + avg, sq + avg * avg, n + 1)
        self._seen += 1
        self._since_estimate += 1
        if self._boundary(self._seen):
            self._blocks.append(self._block)
            self._block = (0.0, 0.0, 0)
            while len(self._blocks) > cfg.history // cfg.reestimate:
                self._blocks.popleft()
        if self._seen < cfg.learning:
            return 0.5
        if self._seen == cfg.learning or self._since_estimate >= cfg.reestimate:
            self._estimate()
        return 1.0 - normal_tail(self.zscore(avg))

    def peek_z(self, raw: float) -> float:
        """The z-score `update(raw)` would lead to (0 while learning), without learning `raw`."""
        cfg = self.config
        if self._seen + 1 < cfg.learning:
            return 0.0
        avg, _ = self._smooth(raw)
        if self._seen + 1 == cfg.learning or self._since_estimate + 1 >= cfg.reestimate:
            s, sq, n = self._block
            pending = (s + avg, sq + avg * avg, n + 1)
            blocks = list(self._blocks)
            if self._boundary(self._seen + 1):
                blocks.append(pending)
                blocks = blocks[-(cfg.history // cfg.reestimate) :]
                pending = (0.0, 0.0, 0)
            mean, std = self._moments([*blocks, pending])
            return (avg - mean) / std
        return self.zscore(avg)

    def zscore(self, avg: float | None = None) -> float:
        """Standardised smoothed score: how many estimated deviations above this stream's normal."""
        value = self.smoothed() if avg is None else avg
        return (value - self._mean) / self._std

    def _estimate(self) -> None:
        self._mean, self._std = self._moments([*self._blocks, self._block])
        self._since_estimate = 0

    def _moments(self, blocks: list[tuple[float, float, int]]) -> tuple[float, float]:
        n = sum(b[2] for b in blocks)
        mean = math.fsum(b[0] for b in blocks) / n
        var = max(math.fsum(b[1] for b in blocks) / n - mean * mean, 0.0)
        return mean, max(math.sqrt(var), self.config.min_std)

    # ---- data-only state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "recent": list(self._recent),
            "recent_sum": self._recent_sum,
            "blocks": [list(b) for b in self._blocks],
            "block": list(self._block),
            "mean": self._mean,
            "std": self._std,
            "seen": self._seen,
            "since_estimate": self._since_estimate,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], *, config: LikelihoodConfig | None = None) -> Self:
        r = StateReader(data, where=cls.STATE_KIND)
        obj = cls(config)
        recent = r.floats("recent")
        if len(recent) > obj.config.averaging:
            raise StateError(f"{cls.STATE_KIND}.recent: {len(recent)} values, at most {obj.config.averaging}")
        obj._recent.extend(recent)
        obj._recent_sum = r.float("recent_sum")
        blocks = [_block(b, f"{cls.STATE_KIND}.blocks") for b in r.list("blocks")]
        if len(blocks) > obj.config.history // obj.config.reestimate:
            raise StateError(f"{cls.STATE_KIND}.blocks: too many blocks ({len(blocks)})")
        obj._blocks.extend(blocks)
        obj._block = _block(r.list("block"), f"{cls.STATE_KIND}.block")
        obj._mean, obj._std = r.float("mean"), r.float("std")
        obj._seen, obj._since_estimate = r.int("seen"), r.int("since_estimate")
        if obj._std <= 0 or obj._seen < 0 or obj._since_estimate < 0:
            raise StateError(f"{cls.STATE_KIND}: negative count or non-positive spread")
        return obj


def _block(raw: Any, where: str) -> tuple[float, float, int]:
    if (
        not isinstance(raw, list)
        or len(raw) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw[:2])
        or not isinstance(raw[2], int)
        or isinstance(raw[2], bool)
    ):
        raise StateError(f"{where}: expected [sum, sum of squares, count]")
    return (float(raw[0]), float(raw[1]), raw[2])


def log_scale(likelihood: float) -> float:
    """Spread likelihoods near 1 over [0, 1] so one threshold can separate 0.999 from 0.99999.

    This is HTM's `computeLogLikelihood`: 0.5 -> ~0.03, 0.999 -> 0.3, 0.99999 -> 0.5, 1-1e-10 -> 1.
    """
    return min(1.0, max(0.0, math.log(1.0000000001 - likelihood) / math.log(1.0 - 0.9999999999)))
