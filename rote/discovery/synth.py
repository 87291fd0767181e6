"""Labelled interleaved logs for tests and tuning, built from the Bosco logs.

The shared interleaved logs carry only routine models (and may not be copied into the repository), so to
test what matters -- are the right events of the right routine found -- we make our own: routine *types*
are taken from labelled logs, and their instances are interleaved
at the **event level**: up to `concurrency` instances are in progress at once, each next event comes from
the instance in focus with probability `stickiness`, else focus moves to another open instance or a new one
starts. Unrelated noise actions are inserted with probability `noise_rate` per event. Everything is re-timed
onto one clock keeping each instance's own step timing, and every event carries its routine type and its
instance (noise: none). Deterministic for a seed.

What a routine type is: **one variant** of a Bosco log, the instances that share its most common label
sequence (`one_variant`). A Bosco log is a family of procedures (log7 has 14 variants: with and without a
cancel, another field order...); each variant is a different sequence of steps, so a different automation,
and rote reports each as its own routine. Taking a whole log as one type would score a discovered routine
against the union of all its variants' labels, which no single procedure has. The Bosco logs share many
actions across types (the same log-in, the same "open the spreadsheet"), which is what makes the
interleaving hard.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rote.discovery.abstraction import ActionAbstraction
from rote.discovery.streams import NOISE_ACTIONS
from rote.streams.schemas import Target, UserAction


@dataclass(frozen=True, kw_only=True)
class SynthEvent:
    action: UserAction
    routine: str | None
    instance: str | None


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    seed: int = 1
    #: instances per routine type
    per_type: int = 60
    #: instances in progress at once, at most
    concurrency: int = 2
    #: chance that the next event continues the instance in focus
    stickiness: float = 0.8
    #: chance of an unrelated action after each event
    noise_rate: float = 0.1
    user_id: str = "synth"


def one_variant(
    instances: Sequence[Sequence[UserAction]], abstraction: ActionAbstraction | None = None
) -> list[Sequence[UserAction]]:
    """The instances of the most common label sequence among `instances` (first seen among equals): one
    routine type (see the module docstring)."""
    ab = abstraction or ActionAbstraction()
    keys = [tuple(ab.label(a) for a in inst) for inst in instances]
    counts: dict[tuple[str, ...], int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    if not counts:
        return []
    top = max(counts, key=lambda k: counts[k])
    return [inst for inst, k in zip(instances, keys, strict=True) if k == top]


def interleave(
    types: Mapping[str, Sequence[Sequence[UserAction]]],
    config: SynthConfig | None = None,
    *,
    start: datetime | None = None,
) -> list[SynthEvent]:
    """Interleave the instances of several routine types at the event level (see the module docstring)."""
    cfg = config or SynthConfig()
    rng = random.Random(cfg.seed)
    queue: list[tuple[str, Sequence[UserAction]]] = []
    for name in sorted(types):
        queue += [(name, inst) for inst in list(types[name])[: cfg.per_type] if inst]
    rng.shuffle(queue)
    clock = start or datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
    out: list[SynthEvent] = []
    open_: list[tuple[str, str, list[UserAction]]] = []  # (type, instance id, remaining events)
    focus = -1
    n_inst = 0
    n_noise = 0

    def noise() -> None:
        nonlocal clock, n_noise
        app, action_type, target = rng.choice(NOISE_ACTIONS)
        clock += timedelta(seconds=rng.uniform(0.5, 4.0))
        n_noise += 1
        action = UserAction(
            event_id=f"noise-{n_noise}",
            user_id=cfg.user_id,
            timestamp=clock,
            app=app,
            action_type=action_type,
            target=Target(**target),
            source="synthetic",
        )
        out.append(SynthEvent(action=action, routine=None, instance=None))

    prev_ts: dict[str, datetime] = {}
    while queue or open_:
        can_open = bool(queue) and len(open_) < cfg.concurrency
        if focus < 0 or rng.random() >= cfg.stickiness:
            # move focus: to another open instance, or start a new one
            if can_open and (not open_ or rng.random() < 0.5):
                kind, inst = queue.pop()
                n_inst += 1
                open_.append((kind, f"{kind}#{n_inst}", list(inst)))
                focus = len(open_) - 1
            elif open_:
                focus = rng.randrange(len(open_))
        kind, iid, rest = open_[focus]
        a = rest.pop(0)
        step = a.timestamp - prev_ts[iid] if iid in prev_ts else timedelta(seconds=rng.uniform(1.0, 5.0))
        prev_ts[iid] = a.timestamp
        clock += max(timedelta(milliseconds=1), min(step, timedelta(minutes=5)))
        moved = a.model_copy(
            update={"event_id": f"{iid}-{len(rest)}", "user_id": cfg.user_id, "timestamp": clock}
        )
        out.append(SynthEvent(action=moved, routine=kind, instance=iid))
        if not rest:
            open_.pop(focus)
            focus = -1
        while rng.random() < cfg.noise_rate:
            noise()
    return out


def write_csv(events: Sequence[SynthEvent], path: Path, abstraction: ActionAbstraction | None = None) -> None:
    """The shared interleaved logs' process-mining layout, plus the truth: `routine_type`, `instance`."""
    ab = abstraction or ActionAbstraction()
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case:concept:name", "concept:name", "time:timestamp", "routine_type", "instance"])
        for e in events:
            w.writerow(
                [1, ab.label(e.action), e.action.timestamp.isoformat(), e.routine or "", e.instance or ""]
            )
