"""Test streams harder than the benchmark logs: routines of different logs interleaved, noise injected.

The Bosco logs replay one routine family with instances back to back. A person's real stream mixes several
routines and does unrelated things in between. `mix` builds such a stream from labelled logs: it picks the
next instance from a random log (instance-level interleaving), inserts noise actions between events with
probability `noise_rate`, and re-times everything onto one clock, keeping each instance's own step timing.
Ground truth travels along (instance id per event; noise events have none), so the same metrics apply.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rote.streams.schemas import Target, UserAction

NOISE_ACTIONS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("Chrome", "clickLink", {"title": "News"}),
    ("Chrome", "scroll", {}),
    ("Outlook", "openMail", {"field": "inbox"}),
    ("Slack", "sendMessage", {"field": "general"}),
    ("Explorer", "openFolder", {"field": "Downloads"}),
    ("Excel", "selectCell", {"sheet": "Notes", "column": "Z"}),
    ("Chrome", "switchTab", {}),
    ("OS", "lockScreen", {}),
)


@dataclass(frozen=True, kw_only=True)
class Labelled:
    action: UserAction
    instance: str | None


def group_instances(actions: Sequence[UserAction], instance_of: dict[str, str]) -> list[list[UserAction]]:
    order: dict[str, list[UserAction]] = {}
    for a in actions:
        key = instance_of.get(a.event_id)
        if key is not None:
            order.setdefault(key, []).append(a)
    return list(order.values())


def mix(
    logs: Sequence[Sequence[Sequence[UserAction]]],
    *,
    seed: int = 7,
    noise_rate: float = 0.1,
    pause_seconds: float = 5.0,
    user_id: str = "mixed",
    start: datetime | None = None,
    prefix: str = "",
) -> list[Labelled]:
    """Interleave the instances of several logs (each a list of instances) and inject noise.

    `prefix` keeps event and instance ids apart when several mixed streams are concatenated.
    """
    rng = random.Random(seed)
    queues = [list(instances) for instances in logs]
    clock = start or datetime(2024, 1, 8, 9, 0, tzinfo=datetime.now().astimezone().tzinfo)
    out: list[Labelled] = []
    n = 0

    def noise() -> None:
        nonlocal clock, n
        app, action_type, target = rng.choice(NOISE_ACTIONS)
        clock += timedelta(seconds=rng.uniform(0.5, 4.0))
        n += 1
        out.append(
            Labelled(
                action=UserAction(
                    event_id=f"{prefix}noise-{n}",
                    user_id=user_id,
                    timestamp=clock,
                    app=app,
                    action_type=action_type,
                    target=Target(**target),
                    value=None,
                    source="synthetic",
                ),
                instance=None,
            )
        )

    k = 0
    while any(queues):
        li = rng.choice([i for i, q in enumerate(queues) if q])
        inst = queues[li].pop(0)
        k += 1
        prev_ts = inst[0].timestamp
        clock += timedelta(seconds=pause_seconds * rng.uniform(0.5, 1.5))
        for a in inst:
            clock += a.timestamp - prev_ts
            prev_ts = a.timestamp
            n += 1
            out.append(
                Labelled(
                    action=a.model_copy(
                        update={
                            "event_id": f"{prefix}{li}-{a.event_id}",
                            "user_id": user_id,
                            "timestamp": clock,
                        }
                    ),
                    instance=f"{prefix}{li}-{k}",
                )
            )
            while rng.random() < noise_rate:
                noise()
    return out
