"""Benchmark: discovery throughput in process, and memory per 10k active users.

Throughput: the bundled real log (Leno et al.'s StudentRecord, 2,409 Action Logger events) is replayed
several times back to back as one user's stream (fresh event ids, shifted clock) through
`RoutineDiscoverer.learn_one` with the default, bounded configuration; events/s is the median over repeats.

Memory: `users` synthetic active users each receive the first `events_per_user` events of the same log (so
each has a discovered routine, an open segment, a de-duplication window and kept instances). We report the
median pickled state size (what a Faust table's changelog stores per user) and the tracemalloc growth of the
live states, both scaled to 10,000 users.
"""

from __future__ import annotations

import pickle
import statistics
import time
import tracemalloc
from datetime import timedelta
from typing import Any

from rote.discovery.miner import DiscoveryConfig, RoutineDiscoverer, UserState
from rote.importers import bundled_log, load_actions
from rote.streams.schemas import UserAction


def _replayed(base: list[UserAction], times: int, user: str) -> list[UserAction]:
    span = base[-1].timestamp - base[0].timestamp + timedelta(minutes=5)
    out: list[UserAction] = []
    for k in range(times):
        shift = span * k
        out.extend(
            a.model_copy(
                update={
                    "event_id": f"{user}-{k}-{a.event_id}",
                    "user_id": user,
                    "timestamp": a.timestamp + shift,
                }
            )
            for a in base
        )
    return out


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    path, fmt = bundled_log()
    base = load_actions(path, fmt=fmt)
    cfg = DiscoveryConfig()
    repeats = 3 if quick else 5
    times = 2 if quick else 6
    stream = _replayed(base, times, "bench")
    rates = []
    candidates = 0
    for _ in range(repeats):
        disc = RoutineDiscoverer(cfg)
        state = disc.new_state("bench")
        t0 = time.perf_counter()
        for a in stream:
            candidates += len(disc.learn_one(state, a))
        candidates += len(disc.flush(state))
        rates.append(len(stream) / (time.perf_counter() - t0))

    users = 100 if quick else 500
    per_user = 600
    disc = RoutineDiscoverer(cfg)
    feeds = [_replayed(base[:per_user], 1, f"u{i}") for i in range(users)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states: list[UserState] = []
    for i, feed in enumerate(feeds):
        st = disc.new_state(f"u{i}")
        for a in feed:
            disc.learn_one(st, a)
        states.append(st)
    live = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    sizes = [len(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)) for s in states]
    return {
        "discovery_events_per_second": round(statistics.median(rates), 1),
        "discovery_events_per_second_min": round(min(rates), 1),
        "stream_events": len(stream),
        "repeats": repeats,
        "candidates_emitted": candidates // repeats,
        "users": users,
        "events_per_user": per_user,
        "state_pickled_bytes_median": int(statistics.median(sizes)),
        "state_pickled_mb_per_10k_users": round(statistics.median(sizes) * 10_000 / 1e6, 1),
        "state_live_mb_per_10k_users": round(live / users * 10_000 / 1e6, 1),
        "routines_per_user": round(statistics.mean(len(s.variants) for s in states), 2),
    }
