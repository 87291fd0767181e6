"""Integer columns as short strings: the compact part of the state encoding.

Why: most of a user's state is integers (label indices of sequences, transition counts, event times). As
JSON numbers each costs its digits plus a comma; packed into a fixed-width little-endian array (the
narrowest width that holds the column) and base64-encoded, a label index costs 1.33 characters. Packing
and unpacking are single C-level calls (`array`), so checkpointing a state stays cheap.

Form: one base64 string whose first byte names the array type code (``B H I Q`` unsigned, ``b h i q``
signed). Integers beyond 64 bits (never produced by rote itself; a producer's row number could be) are
written as a plain JSON list instead, which `unpack` accepts too. Anything else is a `StateError`.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import Any

from rote.errors import StateError

_SIZES = {code: array(code).itemsize for code in "BHIQbhiq"}
_UNSIGNED = [(code, 1 << (8 * _SIZES[code])) for code in "BHIQ"]
_SIGNED = [(code, 1 << (8 * _SIZES[code] - 1)) for code in "bhiq"]
_BIG = sys.byteorder == "big"


def _code(xs: list[int]) -> str | None:
    lo, hi = min(xs), max(xs)
    if lo >= 0:
        for code, limit in _UNSIGNED:
            if hi < limit:
                return code
        return None
    for code, limit in _SIGNED:
        if -limit <= lo and hi < limit:
            return code
    return None


def pack(xs: list[int]) -> str | list[int]:
    """A list of integers as a packed string (or, beyond 64 bits, the list itself)."""
    if not xs:
        return ""
    code = _code(xs)
    if code is None:
        return list(xs)
    arr = array(code, xs)
    if _BIG:
        arr.byteswap()
    return base64.b64encode(code.encode() + arr.tobytes()).decode("ascii")


#: Small non-negative integers (label indices) as characters: "~" then one character each, from "0" up,
#: skipping the backslash (JSON would escape it). The first 78 are one byte of UTF-8, the next ~1,900 two.
_CHAR0 = 0x30
_SKIP = 0x5C
_CHAR_LIMIT = 0xD000 - _CHAR0  # below the surrogates


def pack_indices(xs: list[int]) -> str | list[int]:
    """Indices into a small table (label sequences) as one character each (see above), else `pack`."""
    if not xs:
        return ""
    if min(xs) < 0 or max(xs) >= _CHAR_LIMIT:
        return pack(xs)
    return "~" + "".join([chr(x + _CHAR0 + (x + _CHAR0 >= _SKIP)) for x in xs])


def _unchars(data: str, what: str) -> list[int]:
    out = []
    for ch in data[1:]:
        c = ord(ch)
        if c == _SKIP or c < _CHAR0 or c >= _CHAR0 + _CHAR_LIMIT + 1:
            raise StateError(f"invalid discovery state: {what} has a bad character")
        out.append(c - _CHAR0 - (c > _SKIP))
    return out


def unpack(data: Any, what: str) -> list[int]:
    """The integers of `pack`'s (or `pack_indices`'s) output; a StateError naming `what` otherwise."""
    if type(data) is str and data.startswith("~"):
        return _unchars(data, what)
    if type(data) is list:
        if not all(type(x) is int for x in data):
            raise StateError(f"invalid discovery state: {what} must hold integers")
        return data
    if type(data) is not str:
        raise StateError(f"invalid discovery state: {what} must be packed integers")
    if not data:
        return []
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise StateError(f"invalid discovery state: {what} is not base64") from None
    code = chr(raw[0]) if raw else ""
    size = _SIZES.get(code)
    if size is None or (len(raw) - 1) % size:
        raise StateError(f"invalid discovery state: {what} has a bad packing")
    arr = array(code)
    arr.frombytes(raw[1:])
    if _BIG:
        arr.byteswap()
    return arr.tolist()


def bounded(xs: list[int], lo: int, hi: int, what: str) -> list[int]:
    """`xs` if every value is in [lo, hi) (indices into a table), else a StateError."""
    if xs and (min(xs) < lo or max(xs) >= hi):
        raise StateError(f"invalid discovery state: {what} out of range")
    return xs


#: `pack_small` keeps values in [-_SMALL, _SMALL) in 16 bits; the others are listed apart.
_SMALL = 1 << 15


def pack_small(xs: list[int]) -> list[Any]:
    """Integers that are mostly small (time deltas in ms): [16-bit packed, [index, value, ...]]: each
    value outside the 16-bit range is written as -32768 in the packed part and given in the list."""
    big: list[int] = []
    small = list(xs)
    for k, x in enumerate(xs):
        if not -_SMALL < x < _SMALL:
            big += [k, x]
            small[k] = -_SMALL
    arr = array("h", small)
    if _BIG:
        arr.byteswap()
    return [base64.b64encode(b"h" + arr.tobytes()).decode("ascii") if small else "", big]


def unpack_small(data: Any, what: str) -> list[int]:
    if type(data) is not list or len(data) != 2:
        raise StateError(f"invalid discovery state: {what} must be [packed, exceptions]")
    xs = unpack(data[0], what)
    big = data[1]
    if type(big) is not list or len(big) % 2 or not all(type(x) is int for x in big):
        raise StateError(f"invalid discovery state: {what} exceptions")
    for k in range(0, len(big), 2):
        i = big[k]
        if not 0 <= i < len(xs) or xs[i] != -_SMALL:
            raise StateError(f"invalid discovery state: {what} exception out of place")
        xs[i] = big[k + 1]
    return xs
