"""Benchmark: the discovery hot loop in process, the encoded state per user, and cost against history.

Hot loop: the bundled real log (Leno et al.'s StudentRecord, 2,409 Action Logger events) is replayed several
times back to back as one user's stream (fresh event ids, shifted clock); the action objects are built before
the clock starts and handed to `RoutineDiscoverer.learn_many` in batches of 500, as the agent does. We report
microseconds per action (median over repeats).

State: bytes of the JSON encoding of `UserState.to_state()` (what a changelog stores per user), after the
whole replay (a long history) and for users with a short one.

Scaling: the same number of actions as 10 users x 5,000 and as 1,000 users x 50 (interleaved by user in
batches): the cost per action must not grow with history.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from rote.discovery.config import DiscoveryConfig
from rote.discovery.miner import RoutineDiscoverer
from rote.discovery.model import UserState
from rote.importers import bundled_log, load_actions
from rote.streams.schemas import UserAction


def _replayed(base: list[UserAction], n: int, user: str) -> list[UserAction]:
    span = base[-1].timestamp - base[0].timestamp + timedelta(minutes=5)
    out: list[UserAction] = []
    k = 0
    while len(out) < n:
        shift = span * k
        for a in base:
            if len(out) >= n:
                break
            out.append(
                a.model_copy(
                    update={
                        "event_id": f"{user}-{k}-{a.event_id}",
                        "user_id": user,
                        "timestamp": a.timestamp + shift,
                    }
                )
            )
        k += 1
    return out


def _run(
    disc: RoutineDiscoverer, feeds: dict[str, list[UserAction]], batch: int
) -> tuple[float, dict[str, UserState]]:
    states = {u: disc.new_state(u) for u in feeds}
    longest = max(len(f) for f in feeds.values())
    t0 = time.perf_counter()
    for lo in range(0, longest, batch):
        for u, feed in feeds.items():
            chunk = feed[lo : lo + batch]
            if chunk:
                disc.learn_many(states[u], chunk)
    return time.perf_counter() - t0, states


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    path, fmt = bundled_log()
    base = load_actions(path, fmt=fmt)
    cfg = DiscoveryConfig()
    disc = RoutineDiscoverer(cfg)
    repeats = 3 if quick else 5
    n = len(base) * (2 if quick else 6)
    stream = _replayed(base, n, "bench")
    per_action = []
    sizes = []
    for _ in range(repeats):
        secs, states = _run(disc, {"bench": stream}, 500)
        per_action.append(secs / len(stream) * 1e6)
        sizes.append(states["bench"].encoded_size())
    long_user = _replayed(base, 25_000 if not quick else 10_000, "long")
    _, long_states = _run(disc, {"long": long_user}, 500)
    total = 20_000 if quick else 50_000
    few = {f"f{i}": _replayed(base, total // 10, f"f{i}") for i in range(10)}
    many = {f"m{i}": _replayed(base, total // 1000, f"m{i}") for i in range(1000)}
    few_s, _ = _run(disc, few, 50)
    many_s, many_states = _run(disc, many, 50)
    short_sizes = [s.encoded_size() for s in list(many_states.values())[:100]]
    return {
        "discovery_us_per_action": round(statistics.median(per_action), 2),
        "discovery_us_per_action_max": round(max(per_action), 2),
        "discovery_actions_per_second": round(1e6 / statistics.median(per_action), 1),
        "stream_actions": len(stream),
        "repeats": repeats,
        "state_bytes_after_replay": int(statistics.median(sizes)),
        "state_bytes_long_history": long_states["long"].encoded_size(),
        "long_history_actions": len(long_user),
        "state_bytes_short_history_median": int(statistics.median(short_sizes)),
        "us_per_action_10_users_x_long": round(few_s / total * 1e6, 2),
        "us_per_action_1000_users_x_short": round(many_s / total * 1e6, 2),
        "scaling_ratio": round((few_s / total) / (many_s / total), 3),
    }
