"""The stream detector and its calibration, directly (no Kafka)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from rote.anomaly import nab
from rote.anomaly.calibration import AnomalyLikelihood, LikelihoodConfig, log_scale, normal_tail
from rote.anomaly.detectors import DetectorConfig, DetectorError, StreamDetector
from rote.anomaly.evaluate import detect_series, evaluate
from rote.state import encode_state

SLICES = Path(__file__).resolve().parent / "data" / "nab"


def _noise(n: int, seed: int = 7, level: float = 10.0, sd: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(level, sd) for _ in range(n)]


def test_likelihood_cold_start_then_tail_probability() -> None:
    cal = AnomalyLikelihood(LikelihoodConfig(learning=50, averaging=1, reestimate=10))
    rng = random.Random(1)
    outs = [cal.update(abs(rng.gauss(0, 1))) for _ in range(200)]
    assert outs[:49] == [0.5] * 49
    assert cal.ready
    assert cal.update(8.0) > 0.9999  # far in the tail of |N(0,1)|
    assert normal_tail(0.0) == pytest.approx(0.5)
    assert log_scale(0.99999) == pytest.approx(0.5, abs=0.01)


def test_likelihood_peek_matches_update_and_does_not_learn() -> None:
    cal = AnomalyLikelihood(LikelihoodConfig(learning=20, averaging=5))
    for v in _noise(100):
        cal.update(v)
    state = encode_state(cal)
    z = cal.peek_z(25.0)
    assert encode_state(cal) == state
    cal.update(25.0)
    assert cal.zscore() == pytest.approx(z)


def test_cold_start_scores_zero() -> None:
    det = StreamDetector(DetectorConfig(warmup=50))
    scores = [det.update(v, 600.0 * i) for i, v in enumerate(_noise(50))]
    assert scores == [0.0] * 50
    # even a wild value during warm-up is not scored
    det2 = StreamDetector(DetectorConfig(warmup=50))
    for i in range(10):
        det2.update(1.0, 60.0 * i)
    assert det2.update(1e6, 600.0) == 0.0


def test_spike_scores_above_noise_after_warmup() -> None:
    det = StreamDetector()
    values = _noise(1500)
    scores = [det.update(v, 300.0 * i) for i, v in enumerate(values)]
    noise_tail = max(scores[1000:])
    spike = det.update(30.0, 300.0 * 1500)
    assert spike > 0.8
    assert spike > noise_tail + 0.2


def test_value_in_a_never_visited_region_is_novel() -> None:
    # Two regimes, 0 and 10, never anything between: the range [0, 10] is known, so a 5 is no new
    # extreme, and it sits on the long-run level, yet no earlier value was ever near it.
    rng = random.Random(5)
    values = [(0.0 if (i // 7) % 2 else 10.0) + rng.gauss(0, 0.1) for i in range(400)]
    on, off = StreamDetector(), StreamDetector(DetectorConfig(novelty_bins=0))
    for i, v in enumerate(values):
        on.update(v, 300.0 * i)
        off.update(v, 300.0 * i)
    novel = on.update(5.0, 300.0 * 400)
    assert on.last_components["novel"] == 1.0 and on.last_components["spatial"] == 0.0
    assert novel >= 1.5 / 2.5 - 1e-9  # novelty_score 1.5 -> f/(f+1)
    assert novel > off.update(5.0, 300.0 * 400)
    # the region is visited now: the same value again is not novel any more
    on.update(5.0, 300.0 * 401)
    assert on.last_components["novel"] == 0.0


def test_repeat_scores_are_damped_but_escalation_is_not() -> None:
    damped = StreamDetector()
    plain = StreamDetector(DetectorConfig(repeat_horizon=0))
    values = [*_noise(600), 14.0, 30.0, 30.0, 29.0, *_noise(20, seed=9)]
    raw: list[float] = []
    out: list[float] = []
    for i, v in enumerate(values):
        s_plain = plain.update(v, 300.0 * i)
        s_damped = damped.update(v, 300.0 * i)
        repeat = bool(raw[-2:]) and s_plain <= max(raw[-2:]) and i >= damped.config.warmup
        assert s_damped == pytest.approx(0.5 * s_plain if repeat else s_plain)
        raw.append(s_plain)
        out.append(s_damped)
    start = 600
    assert 0.5 < raw[start] < raw[start + 1]  # a growing incident: its bigger value is an escalation
    assert out[start + 1] == raw[start + 1] > 0.8
    assert raw[start + 2] <= raw[start + 1]  # ... and its next row rings at half strength
    assert out[start + 2] == pytest.approx(0.5 * raw[start + 2])


def test_score_one_is_pure_and_agrees_with_update() -> None:
    det = StreamDetector()
    for i, v in enumerate(_noise(400)):
        det.update(v, 300.0 * i)
    before = det.checkpoint()
    s = det.score_one(17.0, 300.0 * 400)
    assert det.checkpoint() == before
    assert det.update(17.0, 300.0 * 400) == pytest.approx(s)


def test_learn_one_then_score_one_sequence_matches_update() -> None:
    a, b = StreamDetector(), StreamDetector()
    for i, v in enumerate(_noise(600, seed=3)):
        s_b = b.score_one(v, 60.0 * i)
        b.learn_one(v, 60.0 * i)
        assert a.update(v, 60.0 * i) == pytest.approx(s_b)


def test_checkpoint_restore_continues_identically() -> None:
    values = _noise(800, seed=11)
    det = StreamDetector()
    for i, v in enumerate(values[:500]):
        det.update(v, 300.0 * i)
    clone = StreamDetector.restore(det.checkpoint())
    tail_a = [det.update(v, 300.0 * (500 + i)) for i, v in enumerate(values[500:])]
    tail_b = [clone.update(v, 300.0 * (500 + i)) for i, v in enumerate(values[500:])]
    assert tail_a == tail_b
    with pytest.raises(DetectorError):
        StreamDetector.restore(b"\x80\x04\x95garbage")


def test_rejects_nan_and_only_the_strict_policy_rejects_time_going_backwards() -> None:
    det = StreamDetector()
    det.update(1.0, 100.0)
    with pytest.raises(DetectorError):
        det.update(math.nan, 200.0)
    with pytest.raises(DetectorError):
        det.update(1.0, math.inf)
    strict = StreamDetector(DetectorConfig(out_of_order="strict"))
    strict.update(1.0, 100.0)
    strict.update(1.0, 100.0)  # the same time twice is not going backwards
    with pytest.raises(DetectorError, match="time order"):
        strict.update(1.0, 50.0)
    with pytest.raises(DetectorError, match="out_of_order"):
        DetectorConfig(out_of_order="sometimes")  # type: ignore[arg-type]


def _dst_fallback(n: int = 600, step: float = 300.0, at: int = 400, back: float = 3600.0) -> list[float]:
    """Timestamps of a 5-minute series whose clock steps back an hour at row `at` (a DST change)."""
    return [step * i - (back if i >= at else 0.0) for i in range(n)]


def test_accept_policy_learns_late_observations_without_moving_the_clock_back() -> None:
    stamps = _dst_fallback()
    values = _noise(len(stamps), seed=3)
    det = StreamDetector()
    scores = [det.update(v, t) for v, t in zip(values, stamps, strict=True)]
    assert len(scores) == len(stamps) and all(0.0 <= s < 1.0 for s in scores)
    assert det.n_seen == len(stamps)
    assert det.late == 11 and det.duplicates == 1 and det.skipped == 0  # the repeated hour: 12 rows
    assert det.order_of(stamps[-1]) == "duplicate" and det.order_of(stamps[420]) == "late"
    twin = StreamDetector.from_state(det.to_state())
    assert (twin.late, twin.duplicates) == (11, 1)
    # a late value far out of range is still an anomaly: accepting does not mean ignoring
    assert det.update(50.0, stamps[-1] - 7200.0) > 0.5


def test_skip_policy_leaves_late_observations_out_and_counts_them() -> None:
    stamps = _dst_fallback()
    values = _noise(len(stamps), seed=3)
    det = StreamDetector(DetectorConfig(out_of_order="skip"))
    scores = [det.update(v, t) for v, t in zip(values, stamps, strict=True)]
    assert det.skipped == 11 and det.n_seen == len(stamps) - 11
    assert all(s == 0.0 for s in scores[400:411])
    assert det.score_one(50.0, 0.0) == 0.0


def test_daily_seasonality_with_irregular_sampling() -> None:
    """High at midday, low at night, sampled at random gaps; the midday level at night is anomalous."""
    rng = random.Random(5)
    det = StreamDetector()
    t = 0.0
    scores = []
    while t < 25 * 86400:
        t += rng.uniform(600, 2400)
        hour = (t % 86400) / 3600
        v = 100.0 + 80.0 * math.sin(2 * math.pi * (hour - 6) / 24) + rng.gauss(0, 3)
        scores.append(det.update(v, t))
    normal_tail_max = max(scores[len(scores) // 2 :])
    night = math.floor(t / 86400) * 86400 + 86400 + 3 * 3600  # 03:00 next day, normally ~30
    low, high = det.expected_range(night)
    assert low < 40 < high or high < 60  # the band is the night's, not the day's
    s = det.score_one(140.0, night)  # a daytime level at night: inside the global range, off-season
    assert s > normal_tail_max
    assert s > 0.75
    det.update(140.0, night)
    assert det.last_components["season"] > max(det.last_components["level"], det.last_components["forecast"])
    assert det.last_components["spatial"] == 0.0


def test_trend_is_followed_by_the_level() -> None:
    """A steady ramp: the long-run level follows it (lag ~ slope / slow_alpha), so late values are not
    far from it; the daily profile is switched off here because it lags a trend by one day."""
    det = StreamDetector(DetectorConfig(components=(True, True, False)))
    rng = random.Random(2)
    for i in range(3000):
        det.update(100.0 + 0.05 * i + rng.gauss(0, 1), 60.0 * i)
    low, high = det.expected_range(60.0 * 3000)
    truth = 100.0 + 0.05 * 3000
    assert abs((low + high) / 2 - truth) < 0.05 / 0.01 + 1.0
    assert low < truth < high


def test_detect_series_finds_the_jump_in_a_real_nab_file() -> None:
    series = nab.read_series(SLICES / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv")
    labels = nab.load_windows(SLICES / "labels" / "combined_windows.json")
    lab = nab.label_rows("j", series.timestamps, labels["artificialWithAnomaly/art_daily_jumpsup.csv"])
    scores = detect_series(series.timestamps, series.values)
    ((left, right),) = lab.windows
    outside = np.r_[scores[lab.probation : left], scores[right + 1 :]]
    assert scores[left : right + 1].max() > outside.max()


def test_evaluate_on_two_real_files_beats_the_null_detector() -> None:
    ev = evaluate(SLICES / "data", SLICES / "labels" / "combined_windows.json")
    assert ev.files == 2 and ev.windows == 4
    assert ev.results["standard"].score > 50.0
    out = ev.as_dict()
    assert set(out) == {
        "standard",
        "reward_low_FP_rate",
        "reward_low_FN_rate",
        "files",
        "windows",
        "events_per_second",
        "out_of_order",
    }


SHARED_NAB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab-dev"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_NAB.is_dir(), reason="shared NAB corpus not beside the repo")
def test_full_nab_dev_meets_the_acceptance_bar() -> None:
    ev = evaluate(SHARED_NAB / "data", SHARED_NAB / "labels" / "combined_windows.json", workers=2)
    assert ev.files == 34 and ev.windows == 67
    assert ev.results["standard"].score >= 60.0
