"""NAB (Numenta Anomaly Benchmark) scoring, re-implemented from the rules in `nab-dev/README.md`.

The scorer is kept apart from any detector so that a detector cannot peek at labels: it only ever sees
a file's rows in time order, and the labels join its scores here, afterwards. NAB rewards early
detection inside a labelled window, charges every detection outside windows (less when it follows
a window closely, since the tail of an anomaly is still "interesting"), and picks one threshold for
the whole data set, so the scores of every file must share one scale.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rote.errors import ImportFormatError, RoteError


class NabError(RoteError):
    """A data set or label file cannot be scored (missing file, bad window, row counts that disagree)."""


@dataclass(frozen=True, kw_only=True)
class Profile:
    """NAB's cost matrix: what a true positive earns and what a false positive / missed window cost."""

    name: str
    a_tp: float = 1.0
    a_fp: float = 0.11
    a_fn: float = 1.0


PROFILES: dict[str, Profile] = {
    "standard": Profile(name="standard", a_tp=1.0, a_fp=0.11, a_fn=1.0),
    "reward_low_FP_rate": Profile(name="reward_low_FP_rate", a_tp=1.0, a_fp=0.22, a_fn=1.0),
    "reward_low_FN_rate": Profile(name="reward_low_FN_rate", a_tp=1.0, a_fp=0.11, a_fn=2.0),
}


def scaled_sigmoid(y: float) -> float:
    """NAB's row weight shape: +1 far before a point, 0 at it, -1 from three widths after it."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_rows(n_rows: int) -> int:
    """Rows at the start of a file that are not scored: detectors are allowed to learn there."""
    return min(math.floor(0.15 * n_rows), 750)


@dataclass(frozen=True, kw_only=True)
class LabelledFile:
    """One file's labels turned into per-row facts the threshold sweep needs.

    `tp_weight` is the profile-free weight of a detection inside a window (1 at its left edge, ~0 at
    the right), `fp_weight` the profile-free (negative) weight of a detection outside every window,
    `window` the file-local window index of each row (-1 outside windows).
    """

    name: str
    n_rows: int
    probation: int
    windows: tuple[tuple[int, int], ...]
    window: np.ndarray
    tp_weight: np.ndarray
    fp_weight: np.ndarray


def label_rows(
    name: str,
    timestamps: Sequence[np.datetime64] | np.ndarray,
    windows: Sequence[tuple[str, str]] | Sequence[Sequence[str]],
) -> LabelledFile:
    """Map inclusive [start, end] window timestamps onto row indexes and weight every row."""
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    n = len(ts)
    spans: list[tuple[int, int]] = []
    for pair in windows:
        if len(pair) != 2:
            raise NabError(f"{name}: a window must be [start, end], got {pair!r}")
        start, end = (np.datetime64(pd.Timestamp(str(p)).to_datetime64(), "ns") for p in pair)
        inside = np.nonzero((ts >= start) & (ts <= end))[0]
        if len(inside) == 0:
            raise NabError(f"{name}: window {pair[0]} .. {pair[1]} contains no row")
        spans.append((int(inside[0]), int(inside[-1])))
    spans.sort()
    for (_, r0), (l1, _) in itertools.pairwise(spans):
        if l1 <= r0:
            raise NabError(f"{name}: windows overlap at row {l1}")

    window = np.full(n, -1, dtype=np.int64)
    tp = np.zeros(n, dtype=np.float64)
    fp = np.full(n, -1.0, dtype=np.float64)
    norm = scaled_sigmoid(-1.0)
    prev: tuple[int, int] | None = None
    cursor = 0
    for k, (left, right) in enumerate(spans):
        width = right - left + 1
        for i in range(cursor, left):
            fp[i] = _after_window(prev, i)
        for i in range(left, right + 1):
            window[i] = k
            tp[i] = scaled_sigmoid(-(right - i + 1) / width) / norm
            fp[i] = 0.0
        prev = (left, right)
        cursor = right + 1
    for i in range(cursor, n):
        fp[i] = _after_window(prev, i)
    return LabelledFile(
        name=name,
        n_rows=n,
        probation=probationary_rows(n),
        windows=tuple(spans),
        window=window,
        tp_weight=tp,
        fp_weight=fp,
    )


def _after_window(prev: tuple[int, int] | None, i: int) -> float:
    if prev is None:
        return -1.0
    left, right = prev
    denominator = max(right - left, 1)  # w' - 1, guarded for one-row windows
    return scaled_sigmoid(abs(right - i) / denominator)


@dataclass(frozen=True, kw_only=True)
class NabResult:
    """A profile's normalised score with the threshold that achieved it and the counts behind it."""

    profile: str
    score: float
    raw: float
    threshold: float
    true_positives: int
    false_negatives: int
    false_positives: int
    windows: int
    per_file: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "score": round(self.score, 3),
            "raw": round(self.raw, 4),
            "threshold": self.threshold,
            "true_positives": self.true_positives,
            "false_negatives": self.false_negatives,
            "false_positives": self.false_positives,
            "windows": self.windows,
        }


def score(files: Iterable[tuple[LabelledFile, np.ndarray]], profile: Profile | str = "standard") -> NabResult:
    """Score detector outputs with one threshold for all files, chosen to maximise the raw score.

    Every distinct score value is tried as the threshold (a row detects when its score is >= the
    threshold), plus "no detection at all", which is exactly the null detector and scores 0.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    scores_parts: list[np.ndarray] = []
    window_parts: list[np.ndarray] = []
    tp_parts: list[np.ndarray] = []
    fp_parts: list[np.ndarray] = []
    file_parts: list[np.ndarray] = []
    names: list[str] = []
    n_windows = 0
    for f_idx, (lab, s) in enumerate(files):
        arr = np.asarray(s, dtype=np.float64)
        if arr.shape != (lab.n_rows,):
            raise NabError(f"{lab.name}: {arr.shape[0] if arr.ndim else 0} scores for {lab.n_rows} rows")
        if not np.all(np.isfinite(arr)):
            raise NabError(f"{lab.name}: scores must be finite")
        keep = slice(lab.probation, None)
        scores_parts.append(arr[keep])
        win = lab.window[keep].copy()
        win[win >= 0] += n_windows
        window_parts.append(win)
        tp_parts.append(lab.tp_weight[keep])
        fp_parts.append(lab.fp_weight[keep])
        file_parts.append(np.full(lab.n_rows - lab.probation, f_idx, dtype=np.int64))
        names.append(lab.name)
        n_windows += len(lab.windows)

    if not scores_parts:
        raise NabError("nothing to score")
    s_all = np.concatenate(scores_parts)
    w_all = np.concatenate(window_parts)
    tp_all = np.concatenate(tp_parts) * prof.a_tp
    fp_all = np.concatenate(fp_parts) * prof.a_fp
    order = np.argsort(-s_all, kind="stable")

    null = -prof.a_fn * n_windows
    perfect = prof.a_tp * n_windows
    best_raw = null
    best_threshold = float(np.nextafter(s_all.max(), np.inf)) if len(s_all) else 1.0
    best_cut = 0  # rows (in `order`) detected at the best threshold
    total = null
    best_in_window = np.full(n_windows, np.nan)
    s_sorted = s_all[order]
    w_sorted = w_all[order]
    tp_sorted = tp_all[order]
    fp_sorted = fp_all[order]
    n = len(order)
    i = 0
    while i < n:
        level = s_sorted[i]
        j = i
        while j < n and s_sorted[j] == level:
            win = w_sorted[j]
            if win >= 0:
                value = tp_sorted[j]
                have = best_in_window[win]
                if np.isnan(have):
                    total += value + prof.a_fn
                    best_in_window[win] = value
                elif value > have:
                    total += value - have
                    best_in_window[win] = value
            else:
                total += fp_sorted[j]
            j += 1
        if total > best_raw + 1e-12:
            best_raw = total
            best_threshold = float(level)
            best_cut = j
        i = j

    detected = np.zeros(n, dtype=bool)
    detected[order[:best_cut]] = True
    tp_windows = len(np.unique(w_all[detected & (w_all >= 0)]))
    fps = int(np.count_nonzero(detected & (w_all < 0)))
    per_file: dict[str, dict[str, float]] = {}
    f_all = np.concatenate(file_parts)
    for f_idx, name in enumerate(names):
        mine = f_all == f_idx
        det = detected & mine
        wins = np.unique(w_all[mine & (w_all >= 0)]) if np.any(mine & (w_all >= 0)) else np.array([], int)
        raw = float(np.sum(fp_all[det & (w_all < 0)]))
        hits = 0
        for win in wins:
            rows = det & (w_all == win)
            if np.any(rows):
                raw += float(np.max(tp_all[rows]))
                hits += 1
            else:
                raw -= prof.a_fn
        per_file[name] = {
            "raw": round(raw, 4),
            "detected_windows": hits,
            "false_positives": int(np.count_nonzero(det & (w_all < 0))),
        }
    denominator = perfect - null
    normalised = 100.0 * (best_raw - null) / denominator if denominator > 0 else 0.0
    return NabResult(
        profile=prof.name,
        score=float(normalised),
        raw=float(best_raw),
        threshold=best_threshold,
        true_positives=tp_windows,
        false_negatives=n_windows - tp_windows,
        false_positives=fps,
        windows=n_windows,
        per_file=per_file,
    )


# --------------------------------------------------------------------------------------------------
# data set access
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Series:
    """One CSV of the corpus: its key in the label file, timestamps and values."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray


def read_series(path: Path, *, name: str | None = None) -> Series:
    """Read a NAB-style `timestamp,value` CSV."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ImportFormatError(f"{path}: cannot read CSV: {exc}") from None
    if "timestamp" not in frame.columns or "value" not in frame.columns:
        raise ImportFormatError(f"{path}: expected columns timestamp,value, got {list(frame.columns)}")
    try:
        ts = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
        values = frame["value"].astype(float).to_numpy()
    except (ValueError, TypeError) as exc:
        raise ImportFormatError(f"{path}: bad timestamp or value: {exc}") from None
    return Series(name=name or path.name, timestamps=ts, values=values)


def discover(data_dir: Path, labels: Mapping[str, Sequence[Sequence[str]]]) -> list[tuple[Path, str]]:
    """Every CSV under `data_dir` with its key in the label file (its path relative to `data_dir`).

    A CSV missing from the labels is an error rather than a file silently scored as anomaly-free.
    """
    out: list[tuple[Path, str]] = []
    for path in sorted(data_dir.rglob("*.csv")):
        parts = path.relative_to(data_dir).parts
        # DATA_DIR may be the corpus root (`nab-dev`, keys then start below `data/`) or a sub-folder.
        candidates = ["/".join(parts[i:]) for i in range(len(parts))]
        key = next((c for c in candidates if c in labels), None)
        if key is None:  # DATA_DIR is below the labels' root: match on the path's tail
            tail = "/" + "/".join(parts)
            matches = [k for k in labels if k.endswith(tail)]
            key = matches[0] if len(matches) == 1 else None
        if key is None:
            raise NabError(f"{path.relative_to(data_dir).as_posix()}: no entry in the label file")
        out.append((path, key))
    if not out:
        raise NabError(f"no CSV files under {data_dir}")
    return out


def load_windows(path: Path) -> dict[str, list[list[str]]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NabError(f"{path}: cannot read label windows: {exc}") from None
    if not isinstance(data, dict):
        raise NabError(f"{path}: expected an object mapping file names to window lists")
    return data
