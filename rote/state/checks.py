"""One check suite for every durable state machine (the idea of river's `checks/common.py`).

Each state machine rote keeps in a changelog (discovery's user state, the registry, the automation
monitors, the workflow analyzer, the report builder) is described once by a `StateCase`, and the same checks
run against all of them:

- `check_round_trip`: encode, decode, and both copies go on to behave identically on the rest of the stream
  (so a restarted worker continues exactly where the old one stopped);
- `check_redelivery`: an event delivered again (at-least-once delivery) changes nothing;
- `check_batch_equals_incremental`: where the machine has a batch form, it ends where one-at-a-time ends;
- `check_bounded`: the encoded state stays under the case's bound however long the stream;
- `check_hostile`: foreign and corrupted records (a pickle, raw and base64, garbage bytes, the right envelope
  with wrong data, every leaf replaced by a wrong type) are rejected with `StateError` and nothing else.
"""

from __future__ import annotations

import base64
import copy
import pickle
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rote.errors import StateError
from rote.state.codec import StateMachine, decode_json, decode_state, encode_json, encode_state

S = TypeVar("S", bound=StateMachine)


@dataclass(frozen=True, kw_only=True)
class StateCase(Generic[S]):
    """How to drive one state machine: make it, feed it, look at what it does."""

    name: str
    cls: type[S]
    new: Callable[[], S]
    #: feed one event; returns what the machine emitted (compared between copies)
    apply: Callable[[S, Any], Any]
    #: a realistic stream of events (deterministic for a seed)
    events: Callable[[int], Sequence[Any]]
    #: what the machine shows the world (its outputs, views, summaries); compared between copies
    view: Callable[[S], Any]
    #: keyword arguments `from_state` needs (configuration)
    context: dict[str, Any] = field(default_factory=dict)
    #: encoded size the state must stay under after `bound_events` events
    max_bytes: int = 900 * 1024
    bound_events: int = 2000
    #: the batch form (e.g. `learn_many`), if the machine has one
    apply_batch: Callable[[S, Sequence[Any]], Any] | None = None
    #: whether replaying an event already applied must change nothing (the machine de-duplicates)
    idempotent: bool = True
    #: what "the state" is for the redelivery check; defaults to the encoded state (a machine that counts
    #: duplicates for its metrics fingerprints without that counter)
    fingerprint: Callable[[S], Any] | None = None


def round_trip(case: StateCase[S], state: S) -> S:
    return decode_state(case.cls, encode_state(state), **case.context)


def check_round_trip(case: StateCase[S], *, seed: int = 0, n: int = 300) -> None:
    events = list(case.events(seed))[:n]
    for cut in sorted({0, 1, len(events) // 3, len(events) // 2, len(events) - 1}):
        a = case.new()
        for ev in events[:cut]:
            case.apply(a, ev)
        b = round_trip(case, a)
        assert encode_state(b) == encode_state(a), (
            f"{case.name}: encoding changed across a round trip at {cut}"
        )
        for i, ev in enumerate(events[cut:], start=cut):
            out_a, out_b = case.apply(a, ev), case.apply(b, ev)
            assert out_a == out_b, f"{case.name}: outputs differ at event {i} after a round trip at {cut}"
        assert case.view(a) == case.view(b), f"{case.name}: views differ after a round trip at {cut}"


def check_redelivery(case: StateCase[S], *, seed: int = 0, n: int = 300) -> None:
    if not case.idempotent:
        return
    events = list(case.events(seed))[:n]
    rng = random.Random(seed)
    fingerprint = case.fingerprint or encode_state
    a = case.new()
    for i, ev in enumerate(events):
        case.apply(a, ev)
        if i % 7 == 3:
            before = fingerprint(a)
            again = events[rng.randrange(0, i + 1)] if i % 14 == 3 else ev
            out = case.apply(a, again)
            assert not out, f"{case.name}: a redelivered event produced output at {i}"
            assert fingerprint(a) == before, f"{case.name}: a redelivered event changed the state at {i}"


def check_batch_equals_incremental(case: StateCase[S], *, seed: int = 0, n: int = 400) -> None:
    if case.apply_batch is None:
        return
    events = list(case.events(seed))[:n]
    one, many = case.new(), case.new()
    for ev in events:
        case.apply(one, ev)
    rng = random.Random(seed)
    i = 0
    while i < len(events):
        k = rng.randint(1, 60)
        case.apply_batch(many, events[i : i + k])
        i += k
    assert encode_state(one) == encode_state(many), f"{case.name}: batches end elsewhere than one at a time"
    assert case.view(one) == case.view(many), f"{case.name}: batch and incremental views differ"


def check_bounded(case: StateCase[S], *, seed: int = 0) -> int:
    """Feed `bound_events` events; returns the largest encoded size seen (asserted under the bound)."""
    events = list(case.events(seed))[: case.bound_events]
    a = case.new()
    largest = 0
    for i, ev in enumerate(events):
        case.apply(a, ev)
        if i % 97 == 0 or i == len(events) - 1:
            largest = max(largest, len(encode_state(a)))
    assert largest <= case.max_bytes, f"{case.name}: state reached {largest} bytes (bound {case.max_bytes})"
    return largest


class _Exploit:
    """What an attacker writes to a changelog: a pickle that would run a command when loaded."""

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("echo pwned-by-state >&2",))


def hostile_records(case: StateCase[S], *, seed: int = 0) -> Iterator[bytes]:
    """Foreign and corrupted records for `case.cls`: each must be rejected with StateError."""
    payload = pickle.dumps(_Exploit())
    yield payload
    yield base64.b64encode(payload)
    yield b""
    yield b"\x00\xff\xfe garbage"
    yield b"[" * 50_000
    yield b'{"kind": "%s", "v": 1}' % case.cls.STATE_KIND.encode()
    yield encode_json({"kind": "something-else", "v": 1, "data": {}})
    yield encode_json({"kind": case.cls.STATE_KIND, "v": case.cls.STATE_VERSION + 1, "data": {}})
    yield encode_json({"kind": case.cls.STATE_KIND, "v": case.cls.STATE_VERSION, "data": []})
    yield encode_json({"kind": case.cls.STATE_KIND, "v": case.cls.STATE_VERSION, "data": {}})
    # a valid record with one leaf at a time replaced by a value of the wrong type
    a = case.new()
    for ev in list(case.events(seed))[:60]:
        case.apply(a, ev)
    good = decode_json(encode_state(a))
    rng = random.Random(seed)
    paths = list(_leaves(good["data"], ()))
    rng.shuffle(paths)
    for path in paths[:80]:
        bad = copy.deepcopy(good)
        node = bad["data"]
        for p in path[:-1]:
            node = node[p]
        old = node[path[-1]]
        node[path[-1]] = _wrong(old)
        yield encode_json(bad)


def _leaves(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    if path:
        yield path


def _wrong(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return {"__class__": "os.system"}
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return "not a list"
    if isinstance(value, dict):
        return 42
    return True


def check_hostile(case: StateCase[S], *, seed: int = 0) -> int:
    """Every hostile record fails with StateError (or, if a mutation happens to be harmless, decodes into
    a state that still encodes); returns how many were tried."""
    tried = 0
    for raw in hostile_records(case, seed=seed):
        tried += 1
        try:
            state = decode_state(case.cls, raw, **case.context)
        except StateError:
            continue
        # A mutation the schema tolerates (e.g. a string where any string will do) must still give a state
        # that behaves: it encodes again and takes events.
        encode_state(state)
        for ev in list(case.events(seed + 1))[:5]:
            case.apply(state, ev)
    return tried


ALL_CHECKS: tuple[Callable[..., Any], ...] = (
    check_round_trip,
    check_redelivery,
    check_batch_equals_incremental,
    check_bounded,
    check_hostile,
)
