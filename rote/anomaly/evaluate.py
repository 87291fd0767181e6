"""Run the production detector over a labelled corpus, online, and score it with NAB's rules.

The detector sees each file's rows one at a time in file order through the same `StreamDetector`
the performance monitor uses; one configuration serves every file. Files are independent, so they
run in worker processes when asked to.

Real series repeat and step back in time (clock changes, two readings in one second). The files are scored
as published: every row gets a score, under the detector's out-of-order policy (`DetectorConfig`, accept by
default), and how many rows were late or repeated is reported with the scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rote.anomaly import nab
from rote.anomaly.detectors import DetectorConfig, StreamDetector

NS_PER_SECOND = 1_000_000_000


def detect_series(
    timestamps: np.ndarray,
    values: np.ndarray,
    config: DetectorConfig | None = None,
    order: dict[str, int] | None = None,
) -> np.ndarray:
    """Anomaly scores for one series, each computed from the rows up to and including it.

    `order`, when given, receives how many rows were late, skipped or repeated a timestamp.
    """
    det = StreamDetector(config)
    seconds = timestamps.astype("datetime64[ns]").astype(np.int64) / NS_PER_SECOND
    out = np.empty(len(values), dtype=np.float64)
    update = det.update
    for i, (t, v) in enumerate(zip(seconds.tolist(), values.tolist(), strict=True)):
        out[i] = update(v, t)
    if order is not None:
        order.update(late=det.late, skipped=det.skipped, duplicates=det.duplicates)
    return out


def _run_file(
    path: Path, key: str, config: DetectorConfig | None
) -> tuple[str, np.ndarray, np.ndarray, float, dict[str, int]]:
    series = nab.read_series(path, name=key)
    started = time.perf_counter()
    order: dict[str, int] = {}
    scores = detect_series(series.timestamps, series.values, config, order)
    return key, series.timestamps, scores, time.perf_counter() - started, order


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    results: dict[str, nab.NabResult]
    files: int
    windows: int
    events: int
    detector_seconds: float
    scores: dict[str, np.ndarray]
    #: rows that were late / skipped / repeated a timestamp, summed over files, and the files that had any
    out_of_order: dict[str, int] = field(default_factory=dict)
    out_of_order_files: tuple[str, ...] = ()
    policy: str = "accept"

    @property
    def events_per_second(self) -> float:
        return self.events / self.detector_seconds if self.detector_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: round(r.score, 3) for name, r in self.results.items()}
        out.update(files=self.files, windows=self.windows, events_per_second=round(self.events_per_second, 1))
        out["out_of_order"] = {
            "policy": self.policy,
            **self.out_of_order,
            "files": list(self.out_of_order_files),
        }
        return out


def evaluate(
    data_dir: Path,
    labels_path: Path,
    *,
    config: DetectorConfig | None = None,
    workers: int = 1,
    profiles: tuple[str, ...] = tuple(nab.PROFILES),
    on_file: Callable[[str], None] | None = None,
) -> Evaluation:
    """Detect on every CSV under `data_dir` and score each profile (threshold optimised per profile)."""
    labels = nab.load_windows(labels_path)
    jobs = nab.discover(data_dir, labels)
    runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    busy = 0.0
    order = {"late": 0, "skipped": 0, "duplicates": 0}
    odd: list[str] = []

    def done(key: str, ts: np.ndarray, scores: np.ndarray, secs: float, counts: dict[str, int]) -> None:
        nonlocal busy
        runs[key] = (ts, scores)
        busy += secs
        for k, n in counts.items():
            order[k] += n
        if any(counts.values()):
            odd.append(key)
        if on_file:
            on_file(key)

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_file, path, key, config) for path, key in jobs]
            for fut in as_completed(futures):
                done(*fut.result())
    else:
        for path, key in jobs:
            done(*_run_file(path, key, config))
    labelled = [(nab.label_rows(key, runs[key][0], labels[key]), runs[key][1]) for _, key in jobs]
    results = {name: nab.score(labelled, name) for name in profiles}
    return Evaluation(
        results=results,
        files=len(jobs),
        windows=sum(len(lab.windows) for lab, _ in labelled),
        events=sum(lab.n_rows for lab, _ in labelled),
        detector_seconds=busy,
        scores={key: runs[key][1] for _, key in jobs},
        out_of_order=order,
        out_of_order_files=tuple(sorted(odd)),
        policy=(config or DetectorConfig()).out_of_order,
    )
