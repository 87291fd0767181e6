"""The state codec: JSON data in a versioned envelope, decoded into builtins only, then validated.

Wire form of one state record::

    {"kind": "<STATE_KIND>", "v": <STATE_VERSION>, "data": <to_state()>}

Why JSON through msgspec and not pickle: decoding yields only dicts, lists, strings, numbers, booleans and
None, so a record written by an attacker can at worst be *wrong data*, which `from_state` rejects with a
`StateError`; it can never name a class or a function to call. msgspec is used because this codec sits on
the worker's hot path (a checkpoint per user every few thousand actions): it encodes and decodes several
times faster than the standard library.

Versioning: `from_state` receives data of the version that wrote it. A state class that changes its layout
bumps `STATE_VERSION` and may define `migrate_state(version, data) -> data` for older records; a record
newer than the code (a rollback), of another kind, or without a migration is a `StateError`, never a guess.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, Self, TypeVar, cast

import msgspec

from rote.errors import StateError

#: Largest state record accepted or produced. Per-key state is bounded far below this (tens of kB);
#: the cap keeps one bad key from ever approaching Kafka's message size limit (1 MiB by default).
MAX_STATE_BYTES = 900 * 1024

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

T = TypeVar("T")


class StateMachine(Protocol):
    """What a durable state class provides (see the module docstring)."""

    STATE_KIND: ClassVar[str]
    STATE_VERSION: ClassVar[int]

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Self: ...


S = TypeVar("S", bound=StateMachine)


def encode_json(data: Any) -> bytes:
    """Plain JSON data to bytes. A non-finite float is written as null (msgspec's rule; JSON has no NaN),
    which the state's decoder then refuses: the event schemas refuse Infinity, NaN and out-of-range
    durations at the edge (`streams.schemas.Event`), so no state fed by validated events holds one."""
    try:
        return _encoder.encode(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StateError(f"state is not plain JSON data: {exc}") from None


def decode_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """Bytes to builtins only (dict, list, str, int, float, bool, None); anything else is a StateError."""
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError) as exc:
        raise StateError(f"not JSON: {str(exc)[:200]}") from None


def state_envelope(obj: StateMachine) -> dict[str, Any]:
    """The record `encode_state` writes, as data (for embedding in a larger record)."""
    return {"kind": obj.STATE_KIND, "v": obj.STATE_VERSION, "data": obj.to_state()}


def encode_state(obj: StateMachine) -> bytes:
    raw = encode_json(state_envelope(obj))
    if len(raw) > MAX_STATE_BYTES:
        raise StateError(f"{obj.STATE_KIND} state is {len(raw)} bytes, over the {MAX_STATE_BYTES} cap")
    return raw


def decode_state(cls: type[S], raw: bytes | bytearray | memoryview, **context: Any) -> S:
    """Decode one record written by `encode_state` for `cls`; any other input is a StateError.

    `context` goes to `from_state` as keyword arguments: configuration the state machine runs with (a cost
    model, detector settings), which is code's business, not the changelog's.
    """
    if len(raw) > MAX_STATE_BYTES:
        raise StateError(f"record is {len(raw)} bytes, over the {MAX_STATE_BYTES} cap")
    return state_from_envelope(cls, decode_json(raw), **context)


def state_from_envelope(cls: type[S], envelope: Any, **context: Any) -> S:
    """Build `cls` from decoded envelope data (see `state_envelope`), validating kind and version."""
    env = StateReader(envelope, where=cls.STATE_KIND)
    kind = env.str("kind")
    if kind != cls.STATE_KIND:
        raise StateError(f"record holds {kind!r} state, expected {cls.STATE_KIND!r}")
    version = env.int("v")
    data = env.dict("data")
    if version != cls.STATE_VERSION:
        migrate: Callable[[int, dict[str, Any]], dict[str, Any]] | None = getattr(cls, "migrate_state", None)
        if version > cls.STATE_VERSION or migrate is None:
            raise StateError(f"{kind} state version {version} cannot be read by version {cls.STATE_VERSION}")
        data = migrate(version, data)
    try:
        # Implementations take their configuration as optional keyword-only arguments.
        return cast(S, cast(Any, cls).from_state(data, **context))
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # from_state implementations validate with StateReader; this is the net under any check they miss.
        raise StateError(f"{kind} state is malformed: {type(exc).__name__}: {str(exc)[:200]}") from None


class StateReader:
    """Strict typed access to one decoded JSON object, with the path in every error.

    `from_state` implementations read through this so a wrong type anywhere is a StateError naming where,
    e.g. ``registry.entries.a1.version: expected int, got str``.
    """

    __slots__ = ("data", "where")

    def __init__(self, data: Any, *, where: builtins.str) -> None:
        if not isinstance(data, dict):
            raise StateError(f"{where}: expected an object, got {type(data).__name__}")
        self.data: builtins.dict[builtins.str, Any] = data
        self.where = where

    def _get(self, key: builtins.str) -> Any:
        try:
            return self.data[key]
        except KeyError:
            raise StateError(f"{self.where}.{key}: missing") from None

    def _bad(self, key: builtins.str, want: builtins.str, got: Any) -> StateError:
        return StateError(f"{self.where}.{key}: expected {want}, got {type(got).__name__}")

    def has(self, key: builtins.str) -> builtins.bool:
        return key in self.data

    def str(self, key: builtins.str) -> builtins.str:
        v = self._get(key)
        if not isinstance(v, str):
            raise self._bad(key, "str", v)
        return v

    def opt_str(self, key: builtins.str) -> builtins.str | None:
        v = self.data.get(key)
        if v is not None and not isinstance(v, str):
            raise self._bad(key, "str or null", v)
        return v

    def int(self, key: builtins.str) -> builtins.int:
        v = self._get(key)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._bad(key, "int", v)
        return v

    def opt_int(self, key: builtins.str) -> builtins.int | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._bad(key, "int or null", v)
        return v

    def float(self, key: builtins.str) -> builtins.float:
        v = self._get(key)
        if not isinstance(v, builtins.int | builtins.float) or isinstance(v, bool):
            raise self._bad(key, "number", v)
        return float(v)

    def opt_float(self, key: builtins.str) -> builtins.float | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, builtins.int | builtins.float) or isinstance(v, bool):
            raise self._bad(key, "number or null", v)
        return float(v)

    def bool(self, key: builtins.str) -> builtins.bool:
        v = self._get(key)
        if not isinstance(v, bool):
            raise self._bad(key, "bool", v)
        return v

    def list(self, key: builtins.str) -> builtins.list[Any]:
        v = self._get(key)
        if not isinstance(v, list):
            raise self._bad(key, "list", v)
        return v

    def dict(self, key: builtins.str) -> builtins.dict[builtins.str, Any]:
        v = self._get(key)
        if not isinstance(v, dict):
            raise self._bad(key, "object", v)
        return v

    def obj(self, key: builtins.str) -> StateReader:
        return StateReader(self._get(key), where=f"{self.where}.{key}")

    def objs(self, key: builtins.str) -> builtins.list[StateReader]:
        return [StateReader(v, where=f"{self.where}.{key}[{i}]") for i, v in enumerate(self.list(key))]

    def strs(self, key: builtins.str) -> builtins.list[builtins.str]:
        out = self.list(key)
        for i, v in enumerate(out):
            if not isinstance(v, str):
                raise StateError(f"{self.where}.{key}[{i}]: expected str, got {type(v).__name__}")
        return out

    def floats(self, key: builtins.str) -> builtins.list[builtins.float]:
        out = self.list(key)
        for i, v in enumerate(out):
            if not isinstance(v, builtins.int | builtins.float) or isinstance(v, bool):
                raise StateError(f"{self.where}.{key}[{i}]: expected number, got {type(v).__name__}")
        return [builtins.float(v) for v in out]

    def ints(self, key: builtins.str) -> builtins.list[builtins.int]:
        out = self.list(key)
        for i, v in enumerate(out):
            if not isinstance(v, int) or isinstance(v, bool):
                raise StateError(f"{self.where}.{key}[{i}]: expected int, got {type(v).__name__}")
        return out

    def mapping(
        self, key: builtins.str, value: Callable[[Any, builtins.str], T]
    ) -> builtins.dict[builtins.str, T]:
        """An object whose values are each converted by `value(v, path)`."""
        d = self.dict(key)
        return {k: value(v, f"{self.where}.{key}.{k}") for k, v in d.items()}


def model_state(model: Any, data: Any, where: str) -> Any:
    """Re-validate an event kept in state (a pydantic schema model) from its JSON data.

    Events are validated exactly as at ingress, so state can hold them without trusting the changelog.
    """
    from pydantic import ValidationError as PydanticValidationError

    if not isinstance(data, Mapping):
        raise StateError(f"{where}: expected an object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise StateError(f"{where}.{loc}: {first.get('msg', 'invalid')}") from None
