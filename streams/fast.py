"""The worker's ingress decoder for `user-actions`: msgspec on the hot path, pydantic as the final word.

`user-actions` is the one topic with volume (every click of every person), so its events are decoded with
msgspec structs mirroring `UserAction` and `Target` (several times faster than pydantic, and one decode
per batch message). The pydantic models in `streams.schemas` stay the single source of truth: the limits
and the checks that are not types (the plausible-time window, the attributes cap) are imported from there,
the mirror is strict (it never accepts what pydantic would coerce), and whatever it rejects is re-judged by
pydantic, whose verdict stands. So the fast path can only ever be *narrower* than the schema, never wider;
tests/test_streams_fast.py checks that on generated payloads.

Wire forms on `user-actions` (both accepted, validated action by action):

- one `UserAction` object (schema v1), as every producer sent so far;
- a `UserActionBatch`: ``{"kind": "user-action-batch", "schema_version": 1, "user_id": ..., "actions":
  [UserAction, ...]}``, one user's actions in time order (what the producer API, `rote produce` and the
  replay send). An invalid action in a batch is dead-lettered alone, with its own bytes and reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from rote.errors import ValidationError
from rote.streams.schemas import (
    MAX_ACTION_SECONDS,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_CHARS,
    MAX_BATCH_ACTIONS,
    MAX_TEXT_CHARS,
    MAX_VALUE_CHARS,
    UserAction,
    decode,
    implausible_time,
    plausible_time_window,
)

BATCH_KIND = "user-action-batch"
#: A control message on `user-actions`: close this user's open segments now (the worker's idle timer and
#: the end of a one-shot replay send it, so the flush happens in stream order and is made durable).
FLUSH_KIND = "user-flush"

#: Timestamps with more than 6 fractional digits: msgspec rounds them, pydantic truncates. Messages holding
#: one take the path where pydantic decides (found by the equivalence property test). The pattern is looser
#: than a timestamp on purpose: a value such as "3.1415926" also takes the slow path, which is only slower,
#: and the search costs ~0.25 µs per action instead of ~3 µs for the anchored form.
_SUSPECT = re.compile(rb"\.\d{7}")

_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
_Value = Annotated[str, msgspec.Meta(max_length=MAX_VALUE_CHARS)]
_Duration = Annotated[float, msgspec.Meta(ge=0, le=MAX_ACTION_SECONDS)]
_Attributes = Annotated[dict[str, str], msgspec.Meta(max_length=MAX_ATTRIBUTES)]


class FastTarget(msgspec.Struct, frozen=True, omit_defaults=True):
    """Mirror of `streams.schemas.Target` (same fields, limits and defaults)."""

    field: _Text | None = None
    element: _Text | None = None
    element_type: _Text | None = None
    workbook: _Text | None = None
    sheet: _Text | None = None
    cell: _Text | None = None
    column: _Text | None = None
    row: int | None = None
    url: _Text | None = None
    file: _Text | None = None
    title: _Text | None = None


_EMPTY_TARGET = FastTarget()


class FastAction(msgspec.Struct, frozen=True, omit_defaults=True):
    """Mirror of `streams.schemas.UserAction`; attribute names match, so pure logic takes either."""

    event_id: _Id
    user_id: _Id
    timestamp: datetime
    app: _NonEmpty
    action_type: _NonEmpty
    schema_version: int = 1
    session_id: _Text | None = None
    device: _Text | None = None
    target: FastTarget = _EMPTY_TARGET
    value: _Value | None = None
    duration_seconds: _Duration | None = None
    source: _Text | None = None
    attributes: _Attributes = msgspec.field(default_factory=dict)


class _Envelope(msgspec.Struct):
    """Just enough of a message to tell a batch from a single action, without decoding the actions."""

    kind: str | None = None
    schema_version: int | None = None
    user_id: str | None = None
    actions: list[msgspec.Raw] | None = None


class _TypedBatch(msgspec.Struct):
    """A batch whose every action is valid decodes in one pass (the common case, and the fast one)."""

    kind: str
    user_id: str | None = None
    schema_version: int | None = None
    actions: list[FastAction] = msgspec.field(default_factory=list)


_action_decoder = msgspec.json.Decoder(FastAction)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_batch_decoder = msgspec.json.Decoder(_TypedBatch)
_encoder = msgspec.json.Encoder()


@dataclass
class Rejected:
    """One action (or a whole message) that is not valid: its own bytes and why."""

    raw: bytes
    reason: str
    field: str | None = None


@dataclass
class Decoded:
    """A `user-actions` message: its valid actions (in message order) and what was rejected."""

    actions: list[FastAction] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    batch: bool = False
    #: a `user-flush` control message: the user whose open segments to close
    flush: str | None = None


def _window() -> tuple[datetime, datetime]:
    """The plausible-time window as two instants (read once per message, not per action)."""
    earliest, skew = plausible_time_window()
    return earliest, datetime.now(UTC) + skew


def _post_check(action: FastAction, window: tuple[datetime, datetime] | None = None) -> FastAction:
    """The checks that are not types (shared with the pydantic model's validators)."""
    ts = action.timestamp
    if ts.tzinfo is None:
        raise ValidationError("timestamp: Input should have timezone info", field="timestamp")
    if ts.tzinfo is not UTC:
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ValidationError("timestamp: Value error, out of range in UTC", field="timestamp") from None
    earliest, latest = window or _window()
    if not earliest <= ts <= latest:
        reason = implausible_time(ts) or "timestamp is outside the plausible window"
        raise ValidationError(f"timestamp: Value error, {reason}", field="timestamp")
    attributes = action.attributes
    if attributes:
        size = sum(map(len, attributes)) + sum(map(len, attributes.values()))  # C loops: ~5x a genexpr
        if size > MAX_ATTRIBUTES_CHARS:
            raise ValidationError(
                f"attributes: Value error, attributes hold {size} characters, over the cap of "
                f"{MAX_ATTRIBUTES_CHARS}",
                field="attributes",
            )
    if action.schema_version != 1:
        raise ValidationError("schema_version: Input should be 1", field="schema_version")
    return action if ts is action.timestamp else msgspec.structs.replace(action, timestamp=ts)


def from_model(action: UserAction) -> FastAction:
    """A validated pydantic action as the fast struct (the fallback path's result)."""
    data = action.model_dump(mode="python", exclude_none=True)
    if not data.get("target"):
        data.pop("target", None)  # the shared empty target, as the fast decoder gives
    return msgspec.convert(data, FastAction, strict=False)


def decode_action(raw: bytes, window: tuple[datetime, datetime] | None = None) -> FastAction:
    """One action: msgspec first; what it refuses goes to pydantic, whose verdict (and reason) stands."""
    if not _SUSPECT.search(raw):
        try:
            return _post_check(_action_decoder.decode(raw), window)
        except (msgspec.ValidationError, msgspec.DecodeError, ValidationError, OverflowError, RecursionError):
            pass
    return _post_check(from_model(decode(UserAction, raw)), window)


def decode_message(raw: bytes) -> Decoded:
    """A whole `user-actions` message (one action or a batch); never raises for bad input.

    Producers write this topic: a message that makes a decoder raise something else than a validation
    error (an integer of 4,301 digits, a time out of range in UTC: both crashed the worker in a loop
    before they were caught where they arise) is rejected whole here, so no input can stop the agent."""
    try:
        return _decode_message(raw)
    except (ValueError, OverflowError, TypeError, RecursionError, MemoryError) as exc:
        why = f"undecodable message ({type(exc).__name__}: {str(exc)[:120]})"
        return Decoded(rejected=[Rejected(raw=raw, reason=why)])


def _decode_message(raw: bytes) -> Decoded:
    out = Decoded()
    window = _window()
    fast = _decode_whole_batch(raw, window)
    if fast is not None:
        return fast
    try:
        env = _envelope_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        env = None
    if env is not None and env.kind == FLUSH_KIND:
        if env.user_id:
            out.flush = env.user_id
        else:
            out.rejected.append(Rejected(raw=raw, reason="user_id: a user-flush message names its user"))
        return out
    if env is None or env.kind != BATCH_KIND:
        try:
            out.actions.append(decode_action(raw, window))
        except ValidationError as exc:
            out.rejected.append(Rejected(raw=raw, reason=exc.reason, field=exc.field))
        return out
    out.batch = True
    if env.schema_version not in (None, 1):
        out.rejected.append(
            Rejected(raw=raw, reason=f"schema_version: batch version {env.schema_version} is unknown")
        )
        return out
    items = env.actions or []
    if not items or len(items) > MAX_BATCH_ACTIONS:
        out.rejected.append(
            Rejected(
                raw=raw, reason=f"actions: a batch holds 1 to {MAX_BATCH_ACTIONS} actions, got {len(items)}"
            )
        )
        return out
    for i, item in enumerate(items):
        piece = bytes(item)
        try:
            action = decode_action(piece, window)
        except ValidationError as exc:
            out.rejected.append(Rejected(raw=piece, reason=f"actions[{i}].{exc.reason}", field=exc.field))
            continue
        if env.user_id is not None and action.user_id != env.user_id:
            why = f"actions[{i}].user_id: {action.user_id!r} differs from its batch's {env.user_id!r}"
            out.rejected.append(Rejected(raw=piece, reason=why, field="user_id"))
            continue
        out.actions.append(action)
    return out


def _decode_whole_batch(raw: bytes, window: tuple[datetime, datetime]) -> Decoded | None:
    """A valid batch in one msgspec pass; None sends the message down the action-by-action path."""
    if _SUSPECT.search(raw):
        return None
    try:
        batch = _batch_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if (
        batch.kind != BATCH_KIND
        or batch.schema_version not in (None, 1)
        or not 1 <= len(batch.actions) <= MAX_BATCH_ACTIONS
    ):
        return None
    try:
        actions = [_post_check(a, window) for a in batch.actions]
    except ValidationError:
        return None
    if batch.user_id is not None and any(a.user_id != batch.user_id for a in actions):
        return None
    return Decoded(actions=actions, batch=True)


def encode_batch(user_id: str, actions: Iterable[FastAction | UserAction | dict[str, Any]]) -> bytes:
    """One `UserActionBatch` message (what producers send and what the task identifier logs)."""
    items = [a if isinstance(a, FastAction | dict) else from_model(a) for a in actions]
    return _encoder.encode({"kind": BATCH_KIND, "schema_version": 1, "user_id": user_id, "actions": items})


def encode_flush(user_id: str) -> bytes:
    return _encoder.encode({"kind": FLUSH_KIND, "user_id": user_id})


def encode_action(action: FastAction) -> bytes:
    return _encoder.encode(action)
