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

    Pickles as plain Python state, so a checkpoint restores exactly where it left off.
    """

    def __init__(self, config: LikelihoodConfig | None = None) -> None:
        self.config = config or LikelihoodConfig()
        self._recent: deque[float] = deque(maxlen=self.config.averaging)
        self._recent_sum = 0.0
        self._history: deque[float] = deque(maxlen=self.config.history)
        self._hist_sum = 0.0
        self._hist_sq = 0.0
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

    def update(self, raw: float) -> float:
        """Learn `raw` and return the likelihood of the current smoothed score."""
        cfg = self.config
        if len(self._recent) == self._recent.maxlen:
            self._recent_sum -= self._recent[0]
        self._recent.append(raw)
        self._recent_sum += raw
        avg = self._recent_sum / len(self._recent)

        if len(self._history) == self._history.maxlen:
            old = self._history[0]
            self._hist_sum -= old
            self._hist_sq -= old * old
        self._history.append(avg)
        self._hist_sum += avg
        self._hist_sq += avg * avg
        self._seen += 1
        self._since_estimate += 1
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
        n = len(self._recent)
        total = self._recent_sum + raw
        if n == self._recent.maxlen:
            total -= self._recent[0]
        else:
            n += 1
        avg = total / n
        if self._seen + 1 == cfg.learning or self._since_estimate + 1 >= cfg.reestimate:
            h_sum, h_sq, h_n = self._hist_sum + avg, self._hist_sq + avg * avg, len(self._history) + 1
            if len(self._history) == self._history.maxlen:
                old = self._history[0]
                h_sum, h_sq, h_n = h_sum - old, h_sq - old * old, h_n - 1
            mean, std = self._moments(h_sum, h_sq, h_n)
            return (avg - mean) / std
        return self.zscore(avg)

    def zscore(self, avg: float | None = None) -> float:
        """Standardised smoothed score: how many estimated deviations above this stream's normal."""
        value = self.smoothed() if avg is None else avg
        return (value - self._mean) / self._std

    def _estimate(self) -> None:
        if self._seen % self.config.history < self.config.reestimate:
            # Running sums drift with float error over a long life; re-add them exactly now and then.
            self._hist_sum = math.fsum(self._history)
            self._hist_sq = math.fsum(v * v for v in self._history)
        self._mean, self._std = self._moments(self._hist_sum, self._hist_sq, len(self._history))
        self._since_estimate = 0

    def _moments(self, total: float, total_sq: float, n: int) -> tuple[float, float]:
        mean = total / n
        var = max(total_sq / n - mean * mean, 0.0)
        return mean, max(math.sqrt(var), self.config.min_std)


def log_scale(likelihood: float) -> float:
    """Spread likelihoods near 1 over [0, 1] so one threshold can separate 0.999 from 0.99999.

    This is HTM's `computeLogLikelihood`: 0.5 -> ~0.03, 0.999 -> 0.3, 0.99999 -> 0.5, 1-1e-10 -> 1.
    """
    return min(1.0, max(0.0, math.log(1.0000000001 - likelihood) / math.log(1.0 - 0.9999999999)))
