"""The NAB scorer against hand-computed cases and the rules in nab-dev/README.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rote.anomaly import nab

HERE = Path(__file__).resolve().parent
SLICES = HERE / "data" / "nab"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab-dev"


def _times(n: int) -> np.ndarray:
    return np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")


def _window(ts: np.ndarray, left: int, right: int) -> list[str]:
    return [str(ts[left]).replace("T", " "), str(ts[right]).replace("T", " ")]


def test_scaled_sigmoid_and_probation() -> None:
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert nab.scaled_sigmoid(3.5) == -1.0
    assert nab.probationary_rows(20) == 3
    assert nab.probationary_rows(4032) == 604
    assert nab.probationary_rows(15902) == 750


def test_window_weighting_left_edge_full_right_edge_small() -> None:
    ts = _times(100)
    lab = nab.label_rows("f", ts, [_window(ts, 40, 59)])
    assert lab.windows == ((40, 59),)
    assert lab.tp_weight[40] == pytest.approx(1.0)
    assert lab.tp_weight[59] == pytest.approx(nab.scaled_sigmoid(-1 / 20) / nab.scaled_sigmoid(-1.0))
    assert np.all(np.diff(lab.tp_weight[40:60]) < 0)
    assert np.all(lab.fp_weight[:40] == -1.0)  # before the first window: full penalty
    assert lab.fp_weight[60] == pytest.approx(nab.scaled_sigmoid(1 / 19))  # just after: nearly free
    assert lab.fp_weight[99] == pytest.approx(nab.scaled_sigmoid(40 / 19))  # two widths later: ~full penalty
    assert lab.fp_weight[99] < -0.999


def test_perfect_and_null_detectors_score_100_and_0() -> None:
    ts = _times(400)
    files = []
    for spans in ([(100, 139)], [(200, 219), (300, 339)], []):
        lab = nab.label_rows("f", ts, [_window(ts, a, b) for a, b in spans])
        perfect = np.zeros(400)
        for a, _ in spans:
            perfect[a] = 1.0
        files.append((lab, perfect))
    for profile in nab.PROFILES:
        assert nab.score(files, profile).score == pytest.approx(100.0)
        null = [(lab, np.zeros(400)) for lab, _ in files]
        assert nab.score(null, profile).score == pytest.approx(0.0)


def test_hand_computed_small_case() -> None:
    """20 rows (3 probationary), one window over rows 10..13 (w = 4).

    Detections: row 11 (score 0.9), rows 5 and 16 (score 0.5), row 1 (score 1.0, probationary).
      row 11 in window: sigma(-(13-11+1)/4) / sigma(-1) = 0.954048 / 0.986614 = 0.966993
      row 16 after it:  sigma(|13-16| / 3) * 0.11 = -0.986614 * 0.11 = -0.108528
      row 5 before it:  -0.11
    threshold 0.9 -> 0.966993 (row 1 is not scored); threshold 0.5 -> 0.748465; lower adds FPs.
    NAB = 100 * (0.966993 + 1) / (1 + 1) = 98.35
    """
    ts = _times(20)
    lab = nab.label_rows("f", ts, [_window(ts, 10, 13)])
    s = np.zeros(20)
    s[11], s[5], s[16], s[1] = 0.9, 0.5, 0.5, 1.0
    res = nab.score([(lab, s)], "standard")
    assert res.raw == pytest.approx(0.966993, abs=1e-5)
    assert res.score == pytest.approx(98.3497, abs=1e-3)
    assert res.threshold == pytest.approx(0.9)
    assert (res.true_positives, res.false_negatives, res.false_positives) == (1, 0, 0)

    # With row 11 weaker than the FPs, the best threshold has to take them too (or miss the window).
    s[11] = 0.4
    res = nab.score([(lab, s)], "standard")
    assert res.raw == pytest.approx(0.966993 - 0.108528 - 0.11, abs=1e-5)
    assert res.false_positives == 2
    low_fp = nab.score([(lab, s)], "reward_low_FP_rate")
    assert low_fp.raw == pytest.approx(0.966993 - 2 * 0.108528 - 0.22, abs=1e-5)


def test_probationary_detections_are_ignored() -> None:
    ts = _times(20)
    lab = nab.label_rows("f", ts, [_window(ts, 10, 13)])
    s = np.zeros(20)
    s[0:3] = 1.0  # would be three FPs if scored
    s[10] = 1.0
    assert nab.score([(lab, s)]).score == pytest.approx(100.0)


def test_low_fn_profile_doubles_the_miss_cost() -> None:
    ts = _times(100)
    labs = [nab.label_rows("a", ts, [_window(ts, 40, 59)]), nab.label_rows("b", ts, [_window(ts, 40, 59)])]
    hit = np.zeros(100)
    hit[50] = 1.0
    files = [(labs[0], hit), (labs[1], np.zeros(100))]
    std = nab.score(files, "standard")
    low_fn = nab.score(files, "reward_low_FN_rate")
    tp = nab.scaled_sigmoid(-(59 - 50 + 1) / 20) / nab.scaled_sigmoid(-1)
    assert std.raw == pytest.approx(tp - 1.0)
    assert low_fn.raw == pytest.approx(tp - 2.0)
    assert low_fn.score == pytest.approx(100 * (tp - 2 + 4) / (2 + 4))  # perfect 2, null -4


def test_bad_inputs_raise() -> None:
    ts = _times(10)
    lab = nab.label_rows("f", ts, [])
    with pytest.raises(nab.NabError):
        nab.score([(lab, np.zeros(9))])
    with pytest.raises(nab.NabError):
        nab.label_rows("f", ts, [["2030-01-01 00:00:00", "2030-01-02 00:00:00"]])


def test_discover_maps_files_to_label_keys() -> None:
    labels = nab.load_windows(SLICES / "labels" / "combined_windows.json")
    keys = [key for _, key in nab.discover(SLICES / "data", labels)]
    assert keys == [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realAdExchange/exchange-4_cpc_results.csv",
    ]
    # the corpus root works too, and so does a sub-folder
    assert [k for _, k in nab.discover(SLICES, labels)] == keys
    assert [k for _, k in nab.discover(SLICES / "data" / "realAdExchange", labels)] == keys[1:]


def test_real_label_file_perfect_detector() -> None:
    labels = nab.load_windows(SLICES / "labels" / "combined_windows.json")
    files = []
    for path, key in nab.discover(SLICES / "data", labels):
        series = nab.read_series(path, name=key)
        lab = nab.label_rows(key, series.timestamps, labels[key])
        perfect = np.zeros(lab.n_rows)
        for left, _ in lab.windows:
            perfect[left] = 1.0
        files.append((lab, perfect))
    assert sum(len(lab.windows) for lab, _ in files) == 4
    assert nab.score(files).score == pytest.approx(100.0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared NAB corpus not beside the repo")
def test_full_label_file_has_67_windows() -> None:
    labels = nab.load_windows(SHARED / "labels" / "combined_windows.json")
    assert len(nab.discover(SHARED / "data", labels)) == 34
    assert sum(len(w) for w in labels.values()) == 67
