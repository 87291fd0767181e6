"""Per-event cost of the anomaly detectors, for `rote bench`.

Measured side by side in one run on the same synthetic stream (a daily pattern with noise and a few
injected spikes, irregular timestamps): the fused `StreamDetector.update`, the `SeriesMonitor.observe`
the Faust agent calls (detector plus finding rules), and River's `anomaly.GaussianScorer` and
`HalfSpaceTrees` as reference points. Each is repeated and the median taken.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from river import anomaly

from rote.anomaly.detectors import StreamDetector
from rote.anomaly.monitor import SeriesMonitor


def _stream(n: int, seed: int = 0) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    t = 1_700_000_000.0
    out = []
    for i in range(n):
        t += rng.uniform(60, 600)
        v = 10.0 + 4.0 * math.sin(2 * math.pi * (t % 86400) / 86400) + rng.gauss(0, 0.5)
        if i % 997 == 500:
            v += 15.0
        out.append((t, v))
    return out


def _rate(
    run: Callable[[list[tuple[float, float]]], None], data: list[tuple[float, float]], repeats: int
) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(data)
        rates.append(len(data) / (time.perf_counter() - started))
    return statistics.median(rates)


def _stream_detector(data: list[tuple[float, float]]) -> None:
    det = StreamDetector()
    for t, v in data:
        det.update(v, t)


def _monitor(data: list[tuple[float, float]]) -> None:
    mon = SeriesMonitor()
    for t, v in data:
        mon.observe(signal="duration_seconds", value=v, at=datetime.fromtimestamp(t, UTC))


def _gaussian(data: list[tuple[float, float]]) -> None:
    det = anomaly.GaussianScorer()
    for _, v in data:
        det.score_one(None, v)
        det.learn_one(None, v)


def _hst(data: list[tuple[float, float]]) -> None:
    det = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=1)
    for _, v in data:
        x = {"v": min(max((v + 10.0) / 40.0, 0.0), 1.0)}
        det.score_one(x)
        det.learn_one(x)


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    """Events per second of each detector (median of repeats), and the fused detector's cost ratios."""
    n = 5_000 if quick else 50_000
    repeats = 3 if quick else 5
    data = _stream(n)
    rates = {
        "stream_detector_events_per_second": _rate(_stream_detector, data, repeats),
        "series_monitor_events_per_second": _rate(_monitor, data, repeats),
        "river_gaussian_scorer_events_per_second": _rate(_gaussian, data, repeats),
        "river_half_space_trees_events_per_second": _rate(_hst, data, repeats),
    }
    out: dict[str, Any] = {k: round(v, 1) for k, v in rates.items()}
    out["events"] = n
    out["repeats"] = repeats
    out["stream_detector_vs_gaussian_scorer_cost_ratio"] = round(
        rates["river_gaussian_scorer_events_per_second"] / rates["stream_detector_events_per_second"], 3
    )
    out["stream_detector_vs_half_space_trees_cost_ratio"] = round(
        rates["river_half_space_trees_events_per_second"] / rates["stream_detector_events_per_second"], 3
    )
    return out
