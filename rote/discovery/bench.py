"""Benchmark: the discovery hot loop in process, the encoded state per user, and cost against history.

What is timed is exactly what the task identifier does per message: `RoutineDiscoverer.learn_many` over one
user's batch of msgspec `FastAction` structs (`rote.streams.fast.decode_message` builds them, before the
clock starts, from `UserActionBatch` messages of 500 actions, as producers send them).

Hot loop: the bundled real log (Leno et al.'s StudentRecord, 2,409 Action Logger events) is replayed several
times back to back as one user's stream (fresh event ids, shifted clock). We report microseconds per action
as CPU time of this process (`time.process_time`: the machine is shared, so wall time mostly measures the
neighbours) and as wall time, medians over repeats.

State: bytes of the encoded `UserState.to_state()` (what a changelog stores per user), after the replay, the
largest seen along a long history (sampled after every batch), and for users with a short one; plus the cost
of one `to_state` (a checkpoint).

Scaling: the same number of actions as 10 users x 5,000 and as 1,000 users x 50 (interleaved by user in
batches of 50): the cost per action must not grow with history (issue 15: within 2x).
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import msgspec

from rote.discovery.config import DiscoveryConfig
from rote.discovery.miner import RoutineDiscoverer
from rote.discovery.model import UserState
from rote.importers import bundled_log, load_actions
from rote.streams.fast import FastAction, decode_message, encode_batch
from rote.streams.schemas import UserAction

_encode = msgspec.json.Encoder().encode


def _replayed(base: list[UserAction], n: int, user: str) -> list[FastAction]:
    """`n` actions of `base` replayed back to back for `user`, as decoded `UserActionBatch` messages."""
    span = base[-1].timestamp - base[0].timestamp + timedelta(minutes=5)
    actions: list[UserAction] = []
    k = 0
    while len(actions) < n:
        shift = span * k
        for a in base:
            if len(actions) >= n:
                break
            actions.append(
                a.model_copy(
                    update={
                        "event_id": f"{user}-{k}-{a.event_id}",
                        "user_id": user,
                        "timestamp": a.timestamp + shift,
                    }
                )
            )
        k += 1
    out: list[FastAction] = []
    for lo in range(0, len(actions), 500):
        decoded = decode_message(encode_batch(user, actions[lo : lo + 500]))
        if decoded.rejected:
            raise RuntimeError(f"benchmark actions rejected: {decoded.rejected[0].reason}")
        out += decoded.actions
    return out


def _run(
    disc: RoutineDiscoverer, feeds: dict[str, list[FastAction]], batch: int, *, sample: bool = False
) -> tuple[float, float, dict[str, UserState], int, int]:
    """CPU and wall seconds of learning the feeds (batches of `batch`, users interleaved), the states, the
    candidates emitted, and (with `sample`) the largest encoded state seen after a batch (not timed)."""
    states = {u: disc.new_state(u) for u in feeds}
    longest = max(len(f) for f in feeds.values())
    cpu = wall = 0.0
    emitted = largest = 0
    for lo in range(0, longest, batch):
        c0, w0 = time.process_time(), time.perf_counter()
        for u, feed in feeds.items():
            chunk = feed[lo : lo + batch]
            if chunk:
                emitted += len(disc.learn_many(states[u], chunk))
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if sample:
            largest = max(largest, *(len(_encode(s.to_state())) for s in states.values()))
    return cpu, wall, states, emitted, largest


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    path, fmt = bundled_log()
    base = load_actions(path, fmt=fmt)
    disc = RoutineDiscoverer(DiscoveryConfig())
    repeats = 3 if quick else 5
    n = len(base) * (2 if quick else 6)
    stream = _replayed(base, n, "bench")
    cpu_us: list[float] = []
    wall_us: list[float] = []
    sizes: list[int] = []
    emitted = 0
    states: dict[str, UserState] = {}
    for _ in range(repeats):
        cpu, wall, states, emitted, _ = _run(disc, {"bench": stream}, 500)
        cpu_us.append(cpu / len(stream) * 1e6)
        wall_us.append(wall / len(stream) * 1e6)
        sizes.append(len(_encode(states["bench"].to_state())))
    bench_state = states["bench"]
    t0 = time.process_time()
    for _ in range(20):
        bench_state.to_state()
    to_state_us = (time.process_time() - t0) / 20 * 1e6
    routines = len(disc.result(bench_state).heads())

    long_n = 10_000 if quick else 25_000
    long_user = _replayed(base, long_n, "long")
    _, _, long_states, _, long_largest = _run(disc, {"long": long_user}, 500, sample=True)

    total = 20_000 if quick else 50_000
    few = {f"f{i}": _replayed(base, total // 10, f"f{i}") for i in range(10)}
    many = {f"m{i}": _replayed(base, total // 1000, f"m{i}") for i in range(1000)}
    few_cpu, _, _, _, _ = _run(disc, few, 50)
    many_cpu, _, many_states, _, _ = _run(disc, many, 50)
    short_sizes = [len(_encode(s.to_state())) for s in list(many_states.values())[:100]]
    med = statistics.median(cpu_us)
    return {
        "discovery_us_per_action": round(med, 2),
        "discovery_us_per_action_max": round(max(cpu_us), 2),
        "discovery_wall_us_per_action": round(statistics.median(wall_us), 2),
        "discovery_actions_per_second": round(1e6 / med, 1),
        "clock": "CPU time of this process (time.process_time); wall time beside it",
        "stream_actions": len(stream),
        "repeats": repeats,
        "routines_per_user": routines,
        "candidates_emitted": emitted,
        "state_bytes_after_replay": int(statistics.median(sizes)),
        "to_state_us": round(to_state_us, 1),
        "state_bytes_long_history": len(_encode(long_states["long"].to_state())),
        "state_bytes_long_history_max": long_largest,
        "long_history_actions": len(long_user),
        "state_bytes_short_history_median": int(statistics.median(short_sizes)),
        "state_budget_bytes": DiscoveryConfig().state_budget_bytes,
        "us_per_action_10_users_x_long": round(few_cpu / total * 1e6, 2),
        "us_per_action_1000_users_x_short": round(many_cpu / total * 1e6, 2),
        "scaling_ratio": round(few_cpu / many_cpu, 3),
    }
