"""Starts judged by description length (`rote.discovery.mdl`): the two-part code and the drops it makes."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from rote.discovery.mdl import Window, _drop_while_shorter, description_length, improve_starts
from rote.discovery.segmentation import segment_at

A = [f"a{i}" for i in range(10)]
B = [f"b{i}" for i in range(8)]
NOISE = ["n0", "n1", "n2"]


def _stream(seed: int, *, instances: int = 40, noise: float = 0.15, only_a: bool = False) -> list[str]:
    """Instances of routines A and B in random order, noise actions before 15% of the events."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(instances):
        for step in A if only_a or rng.random() < 0.5 else B:
            if rng.random() < noise:
                out.append(rng.choice(NOISE))
            out.append(step)
    return out


def _reference(seq: list[str], starts: list[str], min_length: int) -> int:
    """The module docstring's formula, written out over `segment_at`'s segments."""
    segs = [s for s in segment_at(seq, set(starts), min_length=min_length) if s[0] in starts]
    total = len(segs) + len(seq) - sum(map(len, segs))  # what no segment holds: action by action
    for start in {s[0] for s in segs}:
        counts = [Counter(s) for s in segs if s[0] == start]
        for label in set().union(*counts):
            values = sorted(c[label] for c in counts)
            proto = values[len(values) // 2]
            total += proto + sum(max(0, v - proto) for v in values)
    return total


def test_length_is_the_formula_over_segment_at() -> None:
    rng = random.Random(3)
    seq = _stream(1)
    labels = sorted(set(seq))
    window = Window(seq, min_length=3)
    for _ in range(60):
        starts = rng.sample(labels, rng.randint(1, 5))
        assert window.length(starts) == _reference(seq, starts, 3), starts
    assert window.length(["absent"]) == len(seq)  # nothing cut: described action by action


@pytest.mark.parametrize("seed", range(5))
def test_a_start_inside_a_routine_is_dropped(seed: int) -> None:
    seq = _stream(seed)
    right = description_length(seq, ["a0", "b0"], min_length=3)
    assert description_length(seq, ["a0", "b0", "a5"], min_length=3) > right
    assert improve_starts(seq, ["a0", "b0", "a5"], min_length=3) == ["a0", "b0"]
    assert improve_starts(seq, ["a5", "a0", "b0", "b4"], min_length=3) == ["a0", "b0"]


@pytest.mark.parametrize("seed", range(5))
def test_the_starts_of_two_routines_are_kept(seed: int) -> None:
    """Dropping either glues the other routine's instances onto its segments: longer."""
    seq = _stream(seed)
    assert improve_starts(seq, ["a0", "b0"], min_length=3) == ["a0", "b0"]
    assert improve_starts(seq, ["b0", "a0"], min_length=3) == ["b0", "a0"]


def test_a_small_gain_changes_nothing() -> None:
    seq = _stream(2)
    starts = ["a0", "b0", "a5"]
    right, given = (description_length(seq, s, min_length=3) for s in (["a0", "b0"], starts))
    gain = 1 - right / given
    assert gain > 0.1
    assert improve_starts(seq, starts, min_length=3, min_gain=gain + 0.01) == starts
    assert improve_starts(seq, starts, min_length=3, min_gain=gain - 0.01) == ["a0", "b0"]


def test_the_starts_known_before_are_kept_when_no_worse() -> None:
    """A window in which B happens to be missing: the estimator's rotation of A plus a piece describes it
    worse than A's known start, and a rotation alone no better; the known starts (B's too) are kept."""
    seq = _stream(4, only_a=True)
    known = ["a0", "b0"]
    assert improve_starts(seq, ["a3", "a7"], previous=known, min_length=3) == known
    # nothing to gain over the estimate: it stands, whatever was known
    assert improve_starts(seq, ["a3"], previous=known, min_length=3) == ["a3"]


@pytest.mark.parametrize("seed", range(3))
def test_the_window_before_the_first_cut_is_charged(seed: int) -> None:
    """A routine done only early in the window, another only late: dropping the early one's start must not
    leave everything before the late one's first instance undescribed (and free)."""
    rng = random.Random(seed)
    seq = _stream(seed, only_a=True) + [x for x in _stream(seed + 100, instances=15) if not x.startswith("a")]
    assert improve_starts(seq, ["a0", "b0"], min_length=3) == ["a0", "b0"]
    assert improve_starts(seq, ["a0", "b0"], previous=["b0", "a0"], min_length=3) == ["a0", "b0"]
    # a start seen only at the window's end buys nothing either
    late = list(seq)
    for k in rng.sample(range(len(late) - 40, len(late)), 3):
        late[k] = "z"
    assert improve_starts(late, ["a0", "b0"], previous=["z"], min_length=3) == ["a0", "b0"]


def test_of_equal_drops_the_anchor_stays() -> None:
    """Every drop shortens the description alike: the start accepted last goes first, the anchor stays."""

    class Flat:
        def length(self, starts: list[str]) -> int:
            return len(starts)

    assert _drop_while_shorter(Flat(), ["a", "b", "c"]) == (["a"], 1)  # type: ignore[arg-type]


def test_the_starts_order_does_not_change_the_length() -> None:
    seq = _stream(3)
    window = Window(seq, min_length=3)
    assert window.length(["a0", "b0", "a5"]) == window.length(["a5", "a0", "b0", "a0"])


def test_nothing_to_judge() -> None:
    assert improve_starts([], ["a0"], min_length=3) == ["a0"]
    assert improve_starts(["a0", "a1"], [], min_length=3) == []
