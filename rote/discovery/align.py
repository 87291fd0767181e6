"""Sequence alignment used to match an observed segment to a routine's steps.

Longest-common-subsequence alignment tolerates exactly what real instances do: extra (noise) actions in
between, skipped optional steps, and a few steps done in another order (those count as missing/extra).

Why bit-parallel: an occurrence of a form-filling routine is 50-90 actions long and every closed segment is
compared with the known variants, so the textbook O(n·m) table in Python (one interpreted step per cell)
was the largest cost of discovery. The LCS rows are computed here as bit vectors held in Python integers
(Allison-Dix / Hyyrö: one row is a few big-integer operations, whatever its length), so a 50x50 comparison
costs ~50 integer operations instead of 2,500 interpreted cells. `lcs_align` recovers the same alignment
as the table version (earliest optimal matches, as the tests pin down) from the stored row vectors.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def _masks(seq: Sequence[Hashable]) -> dict[Hashable, int]:
    """For each symbol, the bit set of its positions in `seq`."""
    masks: dict[Hashable, int] = {}
    get = masks.get
    for j, y in enumerate(seq):
        masks[y] = get(y, 0) | (1 << j)
    return masks


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of a longest common subsequence (bit-parallel over `b`)."""
    m = len(b)
    if not a or not m:
        return 0
    masks = _masks(b)
    get = masks.get
    full = (1 << m) - 1
    v = full
    for x in a:
        u = v & get(x, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


def similarity(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Dice coefficient on the LCS: 1 for equal sequences, 0 for nothing in common."""
    if not a and not b:
        return 1.0
    if len(a) == len(b) and a == b:
        return 1.0
    return 2.0 * lcs_length(a, b) / (len(a) + len(b))


def lcs_align(steps: Sequence[Hashable], seq: Sequence[Hashable]) -> list[int | None]:
    """For each step, the index in `seq` aligned to it (None when the step is missing).

    Among the optimal alignments, each step takes the earliest position that still allows an optimal
    completion (the forward walk over the suffix-LCS table, preferring to skip a step on ties).
    """
    n, m = len(steps), len(seq)
    if n == 0 or m == 0:
        return [None] * n
    # Suffix LCS as prefix LCS of the reversed sequences: row r (r steps from the end) is a bit vector over
    # the reversed `seq` whose zero bits mark where the row's value steps up.
    rseq = seq[::-1]
    masks = _masks(rseq)
    get = masks.get
    full = (1 << m) - 1
    rows = [full]
    v = full
    for x in reversed(steps):
        u = v & get(x, 0)
        if u:
            v = ((v + u) | (v - u)) & full
        rows.append(v)

    def suffix(i: int, j: int) -> int:
        """LCS(steps[i:], seq[j:]): zero bits of row n-i among the first m-j reversed positions."""
        k = m - j
        if k <= 0:
            return 0
        low = (1 << k) - 1
        return k - (rows[n - i] & low).bit_count()

    out: list[int | None] = [None] * n
    i = j = 0
    while i < n and j < m:
        if steps[i] == seq[j]:
            out[i] = j
            i += 1
            j += 1
        elif suffix(i + 1, j) >= suffix(i, j + 1):
            i += 1
        else:
            j += 1
    return out


def similarity_upper_bound(la: int, lb: int, common: int) -> float:
    """Cheap bound on `similarity` from the lengths and the size of the multiset intersection."""
    if la + lb == 0:
        return 1.0
    return 2.0 * common / (la + lb)


class Masks:
    """One sequence prepared for many LCS comparisons (a segment against every known variant)."""

    __slots__ = ("full", "get", "m")

    def __init__(self, seq: Sequence[Hashable]) -> None:
        self.m = len(seq)
        self.full = (1 << self.m) - 1
        self.get = _masks(seq).get

    def lcs(self, a: Sequence[Hashable]) -> int:
        """LCS length of `a` and the prepared sequence."""
        if not a or not self.m:
            return 0
        get = self.get
        full = self.full
        v = full
        for x in a:
            u = v & get(x, 0)
            if u:
                v = ((v + u) | (v - u)) & full
        return self.m - v.bit_count()

    def similarity(self, a: Sequence[Hashable]) -> float:
        total = len(a) + self.m
        if not total:
            return 1.0
        return 2.0 * self.lcs(a) / total
