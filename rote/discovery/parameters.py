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
    if not values:
        return []
    n_steps = max(len(v) for v in values)
    rows = [list(v) + [None] * (n_steps - len(v)) for v in values]
    norm = [[_norm(x) for x in row] for row in rows]
    out: list[StepParameter | None] = []
    for k in range(n_steps):
        present = [i for i, row in enumerate(norm) if row[k] is not None]
        if not present:
            out.append(None)
            continue
        raw_examples = [rows[i][k] for i in present]
        examples = [str(x) for x, _ in Counter(raw_examples).most_common(MAX_EXAMPLES) if x is not None]
        source = _derived_source(norm, k, present, agreement) if len(present) >= min_instances else None
        distinct = Counter(norm[i][k] for i in present)
        if source is not None:
            out.append(StepParameter(kind="derived", source_step=source, examples=examples))
        elif len(present) >= min_instances and len(distinct) == 1:
            out.append(StepParameter(kind="constant", constant=raw_examples[0], examples=examples[:1]))
        else:
            out.append(StepParameter(kind="variable", examples=examples))
    return out


def _derived_source(norm: list[list[str | None]], k: int, present: list[int], agreement: float) -> int | None:
    """The latest earlier step whose value equals step k's value in at least `agreement` of instances."""
    best: int | None = None
    best_share = 0.0
    for j in range(k - 1, -1, -1):
        both = [i for i in present if norm[i][j] is not None]
        if len(both) < max(1, agreement * len(present)):
            continue
        same = sum(norm[i][j] == norm[i][k] for i in both)
        share = same / len(present)
        if share >= agreement and share > best_share + 1e-9:
            best, best_share = j, share
    return best
