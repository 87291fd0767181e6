"""Parameter analysis: where each step's value comes from.

The generator can only automate a step whose value it can produce. Three cases matter:

* ``constant`` -- the same value every time (a fixed password, the "Submit" button's value): hard-code it.
* ``derived`` -- the value equals the value of an earlier step of the same instance (copy -> paste, read
  cell -> fill field, the id typed then used as a file name): wire it through, the person need not supply it.
* ``variable`` -- anything else: an input of the automation (or a lookup nobody has explained yet).

Derived wins over constant when both hold, because a value that flows from a step keeps working when the
source changes; a constant is just what was observed. Comparison ignores surrounding whitespace and case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rote.privacy.tokens import holds_marker
from rote.streams.schemas import StepParameter

#: Share of instances in which a relation must hold (real logs have the odd typo or re-typed field).
DEFAULT_AGREEMENT = 0.8
MAX_EXAMPLES = 5


def _norm(v: str | None) -> str | None:
    if v is None:
        return None
    t = v.strip().casefold()
    return t or None


def analyse(
    values: Sequence[Sequence[str | None]],
    *,
    agreement: float = DEFAULT_AGREEMENT,
    min_instances: int = 2,
) -> list[StepParameter | None]:
    """`values[i][k]` is step k's value in instance i; returns one parameter per step (None: no value)."""
    return [
        None if p is None else StepParameter(**p)
        for p in analyse_data(values, agreement=agreement, min_instances=min_instances)
    ]


def analyse_data(
    values: Sequence[Sequence[str | None]],
    *,
    agreement: float = DEFAULT_AGREEMENT,
    min_instances: int = 2,
) -> list[dict[str, Any] | None]:
    """`analyse` as plain data (the candidate builder validates the whole candidate at once)."""
    if not values:
        return []
    n_steps = max(len(v) for v in values)
    rows = [list(v) + [None] * (n_steps - len(v)) for v in values]
    norm = [[_norm(x) for x in row] for row in rows]
    index: list[dict[str, list[int]]] = []
    for row in norm:
        where: dict[str, list[int]] = {}
        for j, x in enumerate(row):
            # a marker (`<password>`) keeps no equality: no step is derived from or into one
            if x is not None and not holds_marker(x):
                where.setdefault(x, []).append(j)
        index.append(where)
    out: list[dict[str, Any] | None] = []
    for k in range(n_steps):
        present = [i for i, row in enumerate(norm) if row[k] is not None]
        if not present:
            out.append(None)
            continue
        raw_examples = [rows[i][k] for i in present]
        examples = _examples(raw_examples)
        source = (
            _derived_source(norm, index, k, present, agreement) if len(present) >= min_instances else None
        )
        first = norm[present[0]][k]
        if source is not None:
            out.append({"kind": "derived", "source_step": source, "examples": examples})
        elif (
            len(present) >= min_instances
            and not holds_marker(first)  # `<password>` each time is not the same password each time
            and all(norm[i][k] == first for i in present)
        ):
            out.append({"kind": "constant", "constant": raw_examples[0], "examples": examples[:1]})
        else:
            out.append({"kind": "variable", "examples": examples})
    return out


def _examples(raw: list[str | None]) -> list[str]:
    """The most common values, most common first (first seen first among equals), at most MAX_EXAMPLES."""
    counts: dict[str, int] = {}
    for x in raw:
        if x is not None:
            counts[x] = counts.get(x, 0) + 1
    if len(counts) <= 1:
        return list(counts)
    return [x for x, _ in Counter(counts).most_common(MAX_EXAMPLES)]


def _derived_source(
    norm: list[list[str | None]],
    index: list[dict[str, list[int]]],
    k: int,
    present: list[int],
    agreement: float,
) -> int | None:
    """The latest earlier step whose value equals step k's value in at least `agreement` of instances.

    Only steps that share the value in some instance can qualify, so they are found through each instance's
    value -> steps index (linear in the instances, not quadratic in the steps).
    """
    same: dict[int, int] = {}
    for i in present:
        for j in index[i].get(norm[i][k] or "", ()):
            if j >= k:
                break
            same[j] = same.get(j, 0) + 1
    if not same:
        return None
    n = len(present)
    need = max(1, agreement * n)
    best: int | None = None
    best_share = 0.0
    for j in sorted(same, reverse=True):
        share = same[j] / n
        if share < agreement or share <= best_share + 1e-9:
            continue
        both = sum(1 for i in present if norm[i][j] is not None)
        if both < need:
            continue
        best, best_share = j, share
    return best
