"""Programming by example: find the expression that turns earlier step values into a step's value.

People rarely paste a value verbatim: they split an address into street, city and postcode, re-type
"11/03/1986" as "11-03-1986", join first and last name. The discoverer only says a value is "derived"
(maybe with a source step); to replay it we need the actual transformation. We search the expression
language of `exprs` for the cheapest concatenation of pieces (sub-strings of earlier values reached by at
most two split-and-take operations) and constants that reproduces the value in *every* training instance
at once. The search is a dynamic programme over the tuple of cursor positions in all examples, so a
partial program that stops matching any example is dropped immediately, and equal states are solved once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from rote.generator import exprs
from rote.generator.exprs import Expr

#: Separators people split values on (most specific first, so ", " wins over "," at equal cost).
SEPARATORS: tuple[str, ...] = (", ", ",", " ", "/", "-", ".", "@", ":", ";", "|", "_", "\t", "\n")
#: Pieces are taken from the start (0..5) or the end (-1..-3) of a split.
INDICES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, -1, -2, -3)
#: Longer targets only get whole-atom matches: the DP is quadratic in the target's length.
MAX_DP_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class SynthesisConfig:
    max_pieces: int = 9
    nested_splits: bool = True
    constant_piece_cost: float = 2.0
    #: Per character, so a long constant that merely happens to match the examples ("-1986" when every
    #: training date is from 1986) loses against a piece of the source plus a short separator.
    constant_char_cost: float = 0.5
    #: Per step away from the nearest end: "the 2nd piece" generalises better than "the 6th".
    index_cost: float = 0.04
    #: Per separator character beyond the first: "," then strip() also survives "a,b", "a,  b" and a
    #: non-breaking space after the comma, where splitting on ", " breaks.
    separator_cost: float = 0.15
    atom_cost: float = 1.0
    depth_cost: float = 0.1
    hint_bonus: float = 0.05
    #: Pieces one plan may weigh in all (`AtomCache.work`) before only the hint and the nearest earlier
    #: steps are split, once (`split_sources`; every source still gives its whole value).
    #: Why: a source's nested pieces number up to ~10,000 and every later step weighed them, so a 300-step
    #: candidate with separator-rich values (a hostile one, 150 kB) took 255 s to generate and held up every
    #: other candidate (now 3 s). Real routines stay far below it (the Bosco and Leno logs' longest, the
    #: 91-step Reimbursement routine, weighs 8,400), so their plans do not change.
    plan_work_budget: int = 2_000_000
    split_sources: int = 8


@dataclass(frozen=True)
class _Atom:
    expr_json: str
    cost: float
    values: tuple[str, ...]


def _idx_cost(idx: int, config: SynthesisConfig) -> float:
    return config.index_cost * (idx if idx >= 0 else -idx - 1)


def _sep_cost(sep: str, config: SynthesisConfig) -> float:
    return config.separator_cost * (len(sep) - 1)


_Piece = tuple[Expr, float, tuple[str, ...]]


class AtomCache:
    """One plan's sources' pieces, by (step, its values, hinted, depth): made once, not once per later step
    that might take from them; and the pieces weighed so far (`SynthesisConfig.plan_work_budget`)."""

    def __init__(self) -> None:
        self.memo: dict[tuple[int, tuple[str, ...], bool, int], list[_Piece]] = {}
        self.work = 0


def _source_atoms(
    j: int, level0: tuple[str, ...], hinted: bool, depth: int, config: SynthesisConfig
) -> list[tuple[Expr, float, tuple[str, ...]]]:
    """Source j's pieces: its whole value and its case and whitespace forms (depth 0), with the pieces of
    one split (1), with those of a split of a piece (2)."""
    out: list[tuple[Expr, float, tuple[str, ...]]] = []
    base_cost = config.atom_cost - (config.hint_bonus if hinted else 0.0)
    root = exprs.step(j)
    out.append((root, base_cost, level0))
    out.append(({"k": "strip", "of": root}, base_cost + config.depth_cost, tuple(v.strip() for v in level0)))
    out.append(({"k": "lower", "of": root}, base_cost + config.depth_cost, tuple(v.lower() for v in level0)))
    out.append(({"k": "upper", "of": root}, base_cost + config.depth_cost, tuple(v.upper() for v in level0)))
    if depth < 1:
        return out
    level1: list[tuple[Expr, tuple[str, ...]]] = []
    for sep in SEPARATORS:
        if sep not in level0[0]:
            continue
        for idx in INDICES:
            pieces = [exprs.split_piece(v, sep, idx) for v in level0]
            if any(p is None for p in pieces):
                continue
            vec = tuple(p for p in pieces if p is not None)
            e = exprs.split(root, sep, idx)
            c1 = base_cost + config.depth_cost + _idx_cost(idx, config) + _sep_cost(sep, config)
            out.append((e, c1, vec))
            out.append(({"k": "strip", "of": e}, c1 + config.depth_cost, tuple(v.strip() for v in vec)))
            level1.append((e, vec))
    if depth < 2:
        return out
    for e1, vec1 in level1:
        c1 = base_cost + config.depth_cost + _idx_cost(int(e1["idx"]), config) + _sep_cost(e1["sep"], config)
        for sep in SEPARATORS:
            if sep not in vec1[0]:
                continue
            for idx in INDICES:
                pieces = [exprs.split_piece(v, sep, idx) for v in vec1]
                if any(p is None for p in pieces):
                    continue
                out.append(
                    (
                        exprs.split(e1, sep, idx),
                        c1 + config.depth_cost + _idx_cost(idx, config) + _sep_cost(sep, config),
                        tuple(p for p in pieces if p is not None),
                    )
                )
    return out


def _atoms(
    targets: Sequence[str],
    sources: Mapping[int, Sequence[str]],
    config: SynthesisConfig,
    hint: int | None,
    atom_cache: AtomCache | None = None,
) -> list[tuple[Expr, float, tuple[str, ...]]]:
    """The pieces reachable from the source values that occur in the targets, one per distinct value
    vector (cheapest kept). Only pieces found in every target can be part of a program for them, so the
    others are left out here rather than carried through the search."""
    best: dict[tuple[str, ...], tuple[Expr, float]] = {}
    cache = AtomCache() if atom_cache is None else atom_cache
    n = len(targets)
    full = 2 if config.nested_splits else 1
    rank: dict[int, int] = {}
    if cache.work > config.plan_work_budget:
        # over budget: the hint, then the nearest steps are split, once (`SynthesisConfig.split_sources`)
        rank = {j: r for r, j in enumerate(sorted(sources, key=lambda j: (j != hint, -j)))}
    for j in sorted(sources):  # lowest step first: of equal pieces, the earliest source's is kept
        depth = full
        if rank:
            depth = 0 if rank[j] >= config.split_sources else 1
        key = (j, tuple(sources[j]), j == hint, depth)
        made = cache.memo.get(key)
        if made is None:
            made = cache.memo[key] = _source_atoms(j, key[1], j == hint, depth, config)
        cache.work += len(made)
        for e, cost, values in made:
            if not values[0] or values[0] not in targets[0]:
                continue
            if n > 1 and not all(values[i] in targets[i] for i in range(1, n)):
                continue
            cur = best.get(values)
            if cur is None or cost < cur[1]:
                best[values] = (e, cost)
    return [(e, c, v) for v, (e, c) in best.items()]


def synthesize(
    targets: Sequence[str],
    sources: Mapping[int, Sequence[str]],
    *,
    config: SynthesisConfig | None = None,
    hint: int | None = None,
    atom_cache: AtomCache | None = None,
) -> Expr | None:
    """The cheapest expression over `sources` (step index -> value per example) giving every target.

    Returns None when no program with at least one piece taken from a source fits all examples: a
    value made only of constants is the caller's "constant" case, anything else is a genuine input.
    """
    cfg = config or SynthesisConfig()
    n = len(targets)
    if n == 0 or any(len(v) != n for v in sources.values()):
        return None
    atoms = _atoms(targets, sources, cfg, hint, atom_cache)
    if not atoms:
        return None
    by_value0: dict[str, list[int]] = {}
    for a_idx, (_, _, vals) in enumerate(atoms):
        by_value0.setdefault(vals[0], []).append(a_idx)
    t0 = targets[0]
    if len(t0) > MAX_DP_CHARS:
        for e, _, vals in sorted(atoms, key=lambda a: a[1]):
            if list(vals) == list(targets):
                return e
        return None
    max_len0 = max(len(v) for v in by_value0)

    INF = float("inf")

    @cache
    def best(state: tuple[int, ...], budget: int) -> tuple[float, tuple[tuple[str, int, int], ...], bool]:
        """(cost, pieces, uses_atom) completing every example from `state`; pieces are
        ("a", atom index, 0) or ("c", start in t0, end in t0)."""
        if all(state[i] == len(targets[i]) for i in range(n)):
            return (0.0, (), False)
        if budget == 0 or any(state[i] >= len(targets[i]) for i in range(n)):
            return (INF, (), False)
        p0 = state[0]
        result: tuple[float, tuple[tuple[str, int, int], ...], bool] = (INF, (), False)
        for length in range(1, min(max_len0, len(t0) - p0) + 1):
            for a_idx in by_value0.get(t0[p0 : p0 + length], ()):
                _, cost, vals = atoms[a_idx]
                if all(targets[i].startswith(vals[i], state[i]) for i in range(1, n)):
                    nxt = tuple(state[i] + len(vals[i]) for i in range(n))
                    sub = best(nxt, budget - 1)
                    if cost + sub[0] < result[0]:
                        result = (cost + sub[0], (("a", a_idx, 0), *sub[1]), True)
        for length in range(1, len(t0) - p0 + 1):
            c = t0[p0 : p0 + length]
            if not all(targets[i].startswith(c, state[i]) for i in range(1, n)):
                break  # a longer constant cannot match where this one already fails
            nxt = tuple(state[i] + length for i in range(n))
            sub = best(nxt, budget - 1)
            if sub[1] and sub[1][0][0] == "c":
                continue  # constants are maximal runs; two in a row is the same program, costed twice
            cost = cfg.constant_piece_cost + cfg.constant_char_cost * length + sub[0]
            if cost < result[0]:
                result = (cost, (("c", p0, p0 + length), *sub[1]), sub[2])
        return result

    cost, pieces, uses_atom = best(tuple(0 for _ in range(n)), cfg.max_pieces)
    best.cache_clear()
    if cost == INF or not uses_atom:
        return None
    parts: list[Expr] = []
    for kind, a, b in pieces:
        parts.append(atoms[a][0] if kind == "a" else exprs.const(t0[a:b]))
    return exprs.concat(parts)
