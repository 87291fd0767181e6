"""Sequence alignment used to match an observed segment to a routine's steps.

Longest-common-subsequence alignment tolerates exactly what real instances do: extra (noise) actions in
between, skipped optional steps, and a few steps done in another order (those count as missing/extra).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def lcs_align(steps: Sequence[str], seq: Sequence[str]) -> list[int | None]:
    """For each step, the index in `seq` aligned to it (None when the step is missing)."""
    n, m = len(steps), len(seq)
    if n == 0 or m == 0:
        return [None] * n
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        si = steps[i]
        for j in range(m - 1, -1, -1):
            if si == seq[j]:
                row[j] = below[j + 1] + 1
            else:
                a, b = below[j], row[j + 1]
                row[j] = a if a >= b else b
    out: list[int | None] = [None] * n
    i = j = 0
    while i < n and j < m:
        if steps[i] == seq[j]:
            out[i] = j
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """Dice coefficient on the LCS: 1 for equal sequences, 0 for nothing in common."""
    if not a and not b:
        return 1.0
    return 2.0 * lcs_length(a, b) / (len(a) + len(b))


def similarity_upper_bound(a: Counter[str], la: int, b: Counter[str], lb: int) -> float:
    """Cheap bound on `similarity` from label multisets, to skip most alignments."""
    if la + lb == 0:
        return 1.0
    common = sum((a & b).values())
    return 2.0 * common / (la + lb)
