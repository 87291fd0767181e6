"""Value expressions: how a step's value is computed from parameters, earlier steps and constants.

An expression is a small JSON object (it travels inside `Automation.plan`), so the same data flow can be
rendered to Python, Bash and AppleScript and evaluated here to check it. The language is deliberately tiny
(constants, parameters, earlier step values, split-and-take, strip, case, concatenation, spreadsheet cell
references): every construct has a direct, injection-free rendering in each target, and synthesis over it
from a handful of examples stays fast and predictable.

Kinds:
  {"k": "const", "s": str}
  {"k": "param", "name": str}
  {"k": "step", "i": int}                         value produced by plan step i
  {"k": "split", "of": E, "sep": str, "idx": int} piece idx (negative from the end) of E split on sep
  {"k": "strip", "of": E}
  {"k": "lower" | "upper", "of": E}
  {"k": "concat", "parts": [E, ...]}
  {"k": "cellref", "col": str, "row": E, "offset": int}   e.g. col "A", row param "row" -> "A{row+offset}"
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rote.errors import RoteError

Expr = dict[str, Any]


class ExprError(RoteError):
    """An expression is malformed or cannot be evaluated on the given inputs."""


def const(s: str) -> Expr:
    return {"k": "const", "s": s}


def param(name: str) -> Expr:
    return {"k": "param", "name": name}


def step(i: int) -> Expr:
    return {"k": "step", "i": i}


def split(of: Expr, sep: str, idx: int) -> Expr:
    return {"k": "split", "of": of, "sep": sep, "idx": idx}


def concat(parts: Sequence[Expr]) -> Expr:
    merged: list[Expr] = []
    for p in parts:
        if p["k"] == "const" and merged and merged[-1]["k"] == "const":
            merged[-1] = const(merged[-1]["s"] + p["s"])
        else:
            merged.append(p)
    return merged[0] if len(merged) == 1 else {"k": "concat", "parts": merged}


def cellref(col: str, row: Expr, offset: int = 0) -> Expr:
    return {"k": "cellref", "col": col, "row": row, "offset": offset}


def split_piece(value: str, sep: str, idx: int) -> str | None:
    """Same semantics in every target runtime: None (an error at run time) when the piece is missing."""
    if not sep:
        return None
    pieces = value.split(sep)
    if -len(pieces) <= idx < len(pieces):
        return pieces[idx]
    return None


def cell_address(col: str, row: str, offset: int) -> str:
    try:
        n = int(row.strip())
    except ValueError:
        raise ExprError(f"row {row!r} is not a number") from None
    if n + offset < 1:
        raise ExprError(f"row {n}+{offset} is before the first row")
    return f"{col}{n + offset}"


def evaluate(e: Expr, *, params: Mapping[str, str], steps: Mapping[int, str | None]) -> str:
    """Evaluate `e`; raises ExprError when an input is missing or a split piece does not exist."""
    k = e.get("k")
    if k == "const":
        return str(e["s"])
    if k == "param":
        if e["name"] not in params:
            raise ExprError(f"missing parameter {e['name']!r}")
        return params[e["name"]]
    if k == "step":
        v = steps.get(int(e["i"]))
        if v is None:
            raise ExprError(f"step {e['i']} produced no value")
        return v
    if k == "split":
        piece = split_piece(evaluate(e["of"], params=params, steps=steps), e["sep"], int(e["idx"]))
        if piece is None:
            raise ExprError(f"no piece {e['idx']} when splitting on {e['sep']!r}")
        return piece
    if k == "strip":
        return evaluate(e["of"], params=params, steps=steps).strip()
    if k == "lower":
        return evaluate(e["of"], params=params, steps=steps).lower()
    if k == "upper":
        return evaluate(e["of"], params=params, steps=steps).upper()
    if k == "concat":
        return "".join(evaluate(p, params=params, steps=steps) for p in e["parts"])
    if k == "cellref":
        return cell_address(e["col"], evaluate(e["row"], params=params, steps=steps), int(e["offset"]))
    raise ExprError(f"unknown expression kind {k!r}")


def walk(e: Expr) -> Iterator[Expr]:
    yield e
    if "of" in e:
        yield from walk(e["of"])
    if e.get("k") == "concat":
        for p in e["parts"]:
            yield from walk(p)
    if e.get("k") == "cellref":
        yield from walk(e["row"])


def references(e: Expr) -> tuple[set[str], set[int]]:
    """Parameters and steps an expression reads: the data-flow edges of the plan."""
    params: set[str] = set()
    steps_: set[int] = set()
    for node in walk(e):
        if node["k"] == "param":
            params.add(node["name"])
        elif node["k"] == "step":
            steps_.add(int(node["i"]))
    return params, steps_


def describe(e: Expr) -> str:
    """A one-line human reading of an expression, for `rote automations show` and comments."""
    k = e["k"]
    if k == "const":
        return repr(e["s"])
    if k == "param":
        return f"${e['name']}"
    if k == "step":
        return f"step{e['i']}"
    if k == "split":
        return f"{describe(e['of'])}.split({e['sep']!r})[{e['idx']}]"
    if k in ("strip", "lower", "upper"):
        return f"{describe(e['of'])}.{k}()"
    if k == "concat":
        return " + ".join(describe(p) for p in e["parts"])
    if k == "cellref":
        off = f"{e['offset']:+d}" if e["offset"] else ""
        return f"{e['col']}{{{describe(e['row'])}{off}}}"
    return f"<{k}>"


def validate(e: Any, *, depth: int = 0) -> None:
    """Reject anything that is not a well-formed expression before it reaches a code template."""
    if depth > 12 or not isinstance(e, dict):
        raise ExprError("expression too deep or not an object")
    k = e.get("k")
    if k == "const":
        if not isinstance(e.get("s"), str):
            raise ExprError("const needs a string")
    elif k == "param":
        name = e.get("name")
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise ExprError(f"bad parameter name {name!r}")
    elif k == "step":
        if not isinstance(e.get("i"), int) or e["i"] < 0:
            raise ExprError("step needs a non-negative int")
    elif k == "split":
        if not isinstance(e.get("sep"), str) or not e["sep"] or not isinstance(e.get("idx"), int):
            raise ExprError("split needs a non-empty sep and an int idx")
        validate(e.get("of"), depth=depth + 1)
    elif k in ("strip", "lower", "upper"):
        validate(e.get("of"), depth=depth + 1)
    elif k == "concat":
        parts = e.get("parts")
        if not isinstance(parts, list) or not parts:
            raise ExprError("concat needs parts")
        for p in parts:
            validate(p, depth=depth + 1)
    elif k == "cellref":
        col = e.get("col")
        if not isinstance(col, str) or not col.isalpha() or not col.isascii() or not col.isupper():
            raise ExprError(f"bad column {col!r}")
        if not isinstance(e.get("offset"), int):
            raise ExprError("cellref needs an int offset")
        validate(e.get("row"), depth=depth + 1)
    else:
        raise ExprError(f"unknown expression kind {k!r}")
