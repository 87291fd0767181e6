"""The benchmark's input: real user actions (the bundled log) as many users, in rote's wire forms.

Every user replays the same recording under its own user and event ids, so each has the routines a real
person's log has (discovery does real work: segments, variants, candidates), and the keys spread over the
partitions. The same actions are produced two ways: one action per record (what the transport legs and
the issue's baseline read) and per-user batches of `batch` actions (what rote's producers send).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from rote.streams.fast import encode_batch


@cache
def _base() -> tuple[dict[str, Any], ...]:
    from rote.importers import bundled_log, iter_records

    path, fmt = bundled_log()
    return tuple(r.payload for r in iter_records(path, fmt=fmt) if r.error is None)


@dataclass(frozen=True, kw_only=True)
class Backlog:
    users: int
    per_user: int
    #: (key, value) records, one action each, interleaved across users as they would arrive
    singles: list[tuple[bytes, bytes]]
    #: (key, value) records, each a `UserActionBatch` of one user's consecutive actions
    batches: list[tuple[bytes, bytes]]

    @property
    def actions(self) -> int:
        return self.users * self.per_user


@cache
def _span_seconds() -> float:
    """How long the recording lasts, plus a minute: a repeat starts that much later."""
    stamps = [datetime.fromisoformat(p["timestamp"]) for p in _base()]
    return (max(stamps) - min(stamps)).total_seconds() + 60.0


def user_actions(user: int, per_user: int, *, prefix: str = "bench") -> list[dict[str, Any]]:
    """One user's first `per_user` actions: the recording, repeated if it is shorter, each repeat later
    in time than the one before (a long history is a person doing the same work on later days, not the
    same events again, which discovery would take as late or duplicate and skip cheaply)."""
    base = _base()
    name = f"{prefix}-u{user}"
    out = []
    for i in range(per_user):
        p = dict(base[i % len(base)])
        cycle = i // len(base)
        if cycle:
            shifted = datetime.fromisoformat(p["timestamp"]) + timedelta(seconds=cycle * _span_seconds())
            p["timestamp"] = shifted.isoformat()
        p["user_id"] = name
        p["event_id"] = f"{name}-{i}"
        out.append(p)
    return out


def make_backlog(users: int, per_user: int, *, batch: int = 500, prefix: str = "bench") -> Backlog:
    import json

    per = {u: user_actions(u, per_user, prefix=prefix) for u in range(users)}
    singles: list[tuple[bytes, bytes]] = []
    batches: list[tuple[bytes, bytes]] = []
    for start in range(0, per_user, batch):
        for actions in per.values():
            key = actions[0]["user_id"].encode()
            chunk = actions[start : start + batch]
            batches.append((key, encode_batch(actions[0]["user_id"], chunk)))
            singles.extend((key, json.dumps(a).encode()) for a in chunk)
    return Backlog(users=users, per_user=per_user, singles=singles, batches=batches)
