"""Routine starts judged by how briefly they describe the window (a two-part code).

The start estimator (`segmentation.estimate_starts`) accepts starts one at a time, each by local tests, and
an early wrong choice stays: on a warm-up that holds a few instances a form field inside a routine passes
every test and cuts each instance into pieces. Such a window is described badly by its starts. Cut a window
at a set of starts and describe each routine (the segments one start begins) by a prototype, the median
number of times each action occurs in its segments, and each segment by the actions it holds beyond that
prototype:

    length(starts) = number of segments + sum of prototype sizes + sum over segments of the excess counts
                     + number of actions before the first segment

A start inside a routine makes more segments than instances, each a piece that needs its own prototype
entry in nothing fewer than before, so dropping it shortens the description; a start that begins
instances of its own routine keeps what is not its routine out of the segments of the others, so dropping
it lengthens the description by everything glued on. Only excess counts are charged, not missing ones: a
window cut out of a stream begins and ends inside instances, and threads leave some instances incomplete;
charged for what they lack, those would favour cutting routines in pieces.

`improve_starts` drops, one at a time, the start whose removal shortens the description most, while one
does. It only drops: moving a start elsewhere or adding one was tried (2026-12-02, docs/discovery.md) and
split Bosco's branch blocks into routines of their own (an optional block of four steps in a quarter of the
instances is described more briefly as a routine than as excess), rotated single-routine logs and lowered
the shared interleaved settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Window:
    """The labels of one window, encoded once to judge several start sets."""

    def __init__(self, seq: Sequence[str], *, min_length: int) -> None:
        self.vocab = sorted(set(seq))
        index = {label: i for i, label in enumerate(self.vocab)}
        self.ids = np.fromiter((index[x] for x in seq), dtype=np.int64, count=len(seq))
        self.min_length = min_length
        self.positions: dict[str, list[int]] = {}
        for k, x in enumerate(seq):
            self.positions.setdefault(x, []).append(k)
        self._cache: dict[frozenset[str], int] = {}

    def _cuts(self, starts: Sequence[str]) -> list[int]:
        """Where `segmentation.segment_at` cuts: at each start, once the open segment has `min_length`."""
        occurrences = sorted(p for s in set(starts) for p in self.positions.get(s, ()))
        cuts: list[int] = []
        for p in occurrences:
            if not cuts or p - cuts[-1] >= self.min_length:
                cuts.append(p)
        return cuts

    def counts(self, starts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's action counts (one row per segment, columns in `vocab` order) and the index in
        `vocab` of the start that begins it. What comes before the first start is no segment."""
        cuts = self._cuts(starts)
        width = len(self.vocab)
        if not cuts:
            return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
        first = cuts[0]
        tail = self.ids[first:]
        seg = np.searchsorted(np.asarray(cuts) - first, np.arange(len(tail)), side="right") - 1
        table = np.bincount(seg * width + tail, minlength=len(cuts) * width).reshape(len(cuts), width)
        return table, self.ids[cuts]

    def length(self, starts: Sequence[str]) -> int:
        """The description length of the window cut at `starts` (module docstring); what comes before the
        first cut (all of it when no start cuts) is described action by action."""
        key = frozenset(starts)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        table, begins = self.counts(starts)
        # what precedes the first cut is described action by action, as a window no start cuts is: left
        # free, a start set that first cuts late would get the window's beginning for nothing
        total = len(begins) + int(self.ids.size - table.sum())
        for sid in np.unique(begins):
            rows = table[begins == sid]
            proto = np.sort(rows, axis=0)[len(rows) // 2]
            total += int(proto.sum()) + int(np.clip(rows - proto, 0, None).sum())
        self._cache[key] = total
        return total


def _drop_while_shorter(window: Window, starts: list[str]) -> tuple[list[str], int]:
    """Drop the start whose removal shortens the description most, while one does (one start stays)."""
    best = window.length(starts)
    while len(starts) > 1:
        trials = [starts[:i] + starts[i + 1 :] for i in range(len(starts))]
        lengths = [window.length(t) for t in trials]
        # of equal drops the start accepted last goes: the first one anchors the estimator
        k = min(range(len(trials)), key=lambda i: (lengths[i], -i))
        if lengths[k] >= best:
            break
        starts, best = trials[k], lengths[k]
    return starts, best


def improve_starts(
    seq: Sequence[str],
    starts: Sequence[str],
    *,
    previous: Sequence[str] = (),
    min_length: int,
    min_gain: float = 0.05,
) -> list[str]:
    """`starts` (the estimator's on this window), or fewer of them, or of the `previous` ones (those known
    before this window), when that describes `seq` (the window's frequent labels, in thread order) shorter
    by at least `min_gain` of the description `starts` give. Of two results within `min_gain` of each
    other the one from `previous` is kept: the estimator re-anchors on windows where a routine is rare, and
    a change that describes the window no better is no reason to move (so a result from `previous` may be
    less than `min_gain` shorter than `starts`). The order of what is kept is unchanged, but the first
    start (the estimator's anchor) can be dropped like any other; of equal drops the last start goes."""
    proposed = list(starts)
    if not seq or not proposed:
        return proposed
    window = Window(seq, min_length=min_length)
    before = window.length(proposed)
    results = [_drop_while_shorter(window, proposed)]
    if previous and set(previous) != set(proposed):
        results.insert(0, _drop_while_shorter(window, list(previous)))
    shortest = min(n for _, n in results)
    if shortest > before * (1 - min_gain):
        return proposed
    return next(found for found, n in results if n <= shortest * (1 + min_gain))


def description_length(seq: Sequence[str], starts: Sequence[str], *, min_length: int) -> int:
    """The description length of `seq` cut at `starts` (module docstring)."""
    return Window(seq, min_length=min_length).length(starts)
