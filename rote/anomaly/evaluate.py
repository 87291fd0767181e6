"""Run the production detector over a labelled corpus, online, and score it with NAB's rules.

The detector sees each file's rows one at a time in time order through the same `StreamDetector`
the performance monitor uses; one configuration serves every file. Files are independent, so they
run in worker processes when asked to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rote.anomaly import nab
from rote.anomaly.detectors import DetectorConfig, StreamDetector

NS_PER_SECOND = 1_000_000_000


def detect_series(timestamps: np.ndarray, values: np.ndarray,
                  config: DetectorConfig | None = None) -> np.ndarray:
    """Anomaly scores for one series, each computed from the rows up to and including it."""
    det = StreamDetector(config)
    seconds = timestamps.astype("datetime64[ns]").astype(np.int64) / NS_PER_SECOND
    out = np.empty(len(values), dtype=np.float64)
    update = det.update
    for i, (t, v) in enumerate(zip(seconds.tolist(), values.tolist(), strict=True)):
        out[i] = update(v, t)
    return out


def _run_file(path: Path, key: str,
              config: DetectorConfig | None) -> tuple[str, np.ndarray, np.ndarray, float]:
    series = nab.read_series(path, name=key)
    started = time.perf_counter()
    scores = detect_series(series.timestamps, series.values, config)
    return key, series.timestamps, scores, time.perf_counter() - started


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    results: dict[str, nab.NabResult]
    files: int
    windows: int
    events: int
    detector_seconds: float
    scores: dict[str, np.ndarray]

    @property
    def events_per_second(self) -> float:
        return self.events / self.detector_seconds if self.detector_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: round(r.score, 3) for name, r in self.results.items()}
        out.update(files=self.files, windows=self.windows, events_per_second=round(self.events_per_second, 1))
        return out


def evaluate(data_dir: Path, labels_path: Path, *, config: DetectorConfig | None = None, workers: int = 1,
             profiles: tuple[str, ...] = tuple(nab.PROFILES), on_file: Callable[[str], None] | None = None
             ) -> Evaluation:
    """Detect on every CSV under `data_dir` and score each profile (threshold optimised per profile)."""
    labels = nab.load_windows(labels_path)
    jobs = nab.discover(data_dir, labels)
    runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    busy = 0.0
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_file, path, key, config) for path, key in jobs]
            for fut in as_completed(futures):
                key, ts, scores, secs = fut.result()
                runs[key] = (ts, scores)
                busy += secs
                if on_file:
                    on_file(key)
    else:
        for path, key in jobs:
            key, ts, scores, secs = _run_file(path, key, config)
            runs[key] = (ts, scores)
            busy += secs
            if on_file:
                on_file(key)
    labelled = [(nab.label_rows(key, runs[key][0], labels[key]), runs[key][1]) for _, key in jobs]
    results = {name: nab.score(labelled, name) for name in profiles}
    return Evaluation(results=results, files=len(jobs), windows=sum(len(lab.windows) for lab, _ in labelled),
                      events=sum(lab.n_rows for lab, _ in labelled), detector_seconds=busy,
                      scores={key: runs[key][1] for _, key in jobs})
