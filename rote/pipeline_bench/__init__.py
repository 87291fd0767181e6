"""`rote bench --only pipeline`: the real worker's throughput, latency and memory, beside its references.

In one run, on one broker (a fresh embedded Tansu per leg by default, or `--broker kafka://…`, whose
catalogue topics the benchmark deletes and recreates) and the same data (the bundled real log as many
users), it measures:

- `raw_getmany_per_s`: records/s raw aiokafka `getmany` reads, one action per record (the issue's
  baseline), and `faust_trivial_per_s`: a Faust agent that only counts them;
- `peer_quix_stateful_per_s`: Quix Streams doing JSON decode + a per-key state update (when installed);
- `real_worker_actions_per_s`: `rote worker` (every agent, default configuration) draining per-user batches
  (as rote's producers send them), from the first commit to the last, with µs of worker CPU per action;
- `latency_p50_ms` / `latency_p99_ms`: from the action that emits a candidate to the candidate, at half the
  sustained rate, while actions are being sent (the candidates of each user's last actions, released by
  discovery's lateness hold after the last send, are counted apart);
- `rss_mb_per_10k_users`: the worker's RSS growth per 10,000 active users;
- a sweep over users x history (10 x 5,000, 100 x 500, 1,000 x 50) and its max/min throughput ratio.

Method and numbers: docs/benchmarks.md. These machines are shared and noisy: the transport and framework
legs are interleaved with the worker's, and every figure comes with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rote.pipeline_bench.backlog import make_backlog
from rote.pipeline_bench.peers import (
    BenchmarkError,
    child,
    faust_child,
    produce,
    quix_available,
    quix_child,
    raw_getmany,
)
from rote.pipeline_bench.worker import fresh_cluster, latency, memory, throughput, with_workdir

__all__ = ["BenchmarkError", "measure", "run_benchmark"]


def _transport(
    bootstrap: str, backlog: Any, repeats: int, workdir: Path, note: Callable[[str], None]
) -> dict[str, Any]:
    """Raw getmany, a trivial Faust agent and Quix on the same single-action records, interleaved."""
    from rote.brokers import create_topics
    from rote.streams.topics import USER_ACTIONS, Cleanup, TopicSpec

    spec = TopicSpec(
        name="bench-singles",
        schema=USER_ACTIONS.schema,
        key=USER_ACTIONS.key,
        partitions=USER_ACTIONS.partitions,
        retention_ms=7 * 86_400_000,  # Quix reads the topic config and wants a retention
        cleanup=Cleanup.DELETE,
        description="bench",
    )
    create_topics(bootstrap, [spec])
    asyncio.run(produce(bootstrap, spec.name, backlog.singles))
    n = len(backlog.singles)
    raw, faust, quix = [], [], []
    for i in range(repeats):
        note(f"raw getmany {i + 1}/{repeats}")
        raw.append(asyncio.run(raw_getmany(bootstrap, spec.name, spec.partitions, n))["first_to_last_s"])
        note(f"trivial faust agent {i + 1}/{repeats}")
        faust.append(child("faust", bootstrap, spec.name, n, workdir)["first_to_last_s"])
        if quix_available():
            note(f"quix streams {i + 1}/{repeats}")
            quix.append(child("quix", bootstrap, spec.name, n, workdir)["first_to_last_s"])

    def rate(spans: list[float]) -> float | None:
        return round(n / statistics.median(spans), 1) if spans and statistics.median(spans) > 0 else None

    return {
        "records": n,
        "repeats": repeats,
        "raw_getmany_per_s": rate(raw),
        "faust_trivial_per_s": rate(faust),
        "peer_quix_stateful_per_s": rate(quix),
    }


def measure(
    *,
    users: int = 100,
    per_user: int = 1000,
    repeats: int = 3,
    sweep: tuple[tuple[int, int], ...] = ((10, 5000), (100, 500), (1000, 50)),
    memory_users: int = 2000,
    latency_seconds: float = 40.0,
    bootstrap: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every leg of the benchmark (see the module docstring)."""
    note = progress or (lambda _msg: None)
    load0 = os.getloadavg()[0]
    backlog = make_backlog(users, per_user)
    out: dict[str, Any] = {"users": users, "actions": backlog.actions, "batch_actions": 500}
    worker_runs: list[dict[str, Any]] = []
    with with_workdir() as tmp:
        workdir = Path(tmp)
        with fresh_cluster(bootstrap) as (boot, kind):
            out["broker"] = kind
            note("transport and framework legs")
            out["transport"] = _transport(boot, backlog, repeats, workdir, note)
        for i in range(repeats):  # the worker drains the same backlog on a fresh cluster each time
            note(f"real worker {i + 1}/{repeats}")
            with fresh_cluster(bootstrap) as (boot, _kind):
                worker_runs.append(throughput(boot, backlog, workdir))
        rates = [r["actions_per_s"] for r in worker_runs if r["actions_per_s"]]
        sustained = statistics.median(rates) if rates else 0.0
        note("latency at half the sustained rate")
        with fresh_cluster(bootstrap) as (boot, _kind):
            # At least 50 actions/s per user (and half the sustained rate): a user's routines start showing
            # after a few hundred actions (discovery's warm-up), so candidates come within the run.
            out["latency"] = latency(
                boot, workdir, users=users, rate=max(50.0 * users, sustained / 2), seconds=latency_seconds
            )
        note("memory per active user")
        with fresh_cluster(bootstrap) as (boot, _kind):
            out["memory"] = memory(boot, workdir, users=memory_users, per_user=50)
        sweep_rows = []
        for u, h in sweep:
            note(f"sweep {u} users x {h} actions")
            with fresh_cluster(bootstrap) as (boot, _kind):
                row = throughput(boot, make_backlog(u, h, prefix=f"sw{u}"), workdir)
            sweep_rows.append(
                {
                    "users": u,
                    "actions_per_user": h,
                    "actions_per_s": row["actions_per_s"],
                    "cpu_us_per_action": row["cpu_us_per_action"],
                }
            )
    sweep_rates = [r["actions_per_s"] for r in sweep_rows if r["actions_per_s"]]
    cpus = [r["cpu_us_per_action"] for r in worker_runs if r["cpu_us_per_action"]]
    transport = out["transport"]
    real = round(sustained, 1) if sustained else None
    out.update(
        {
            "real_worker": {
                "runs": worker_runs,
                "actions_per_s_median": real,
                "cpu_us_per_action_median": statistics.median(cpus) if cpus else None,
            },
            "sweep": {
                "rows": sweep_rows,
                "max_over_min": round(max(sweep_rates) / min(sweep_rates), 2) if sweep_rates else None,
            },
            # the keys the throughput issue names
            "real_worker_actions_per_s": real,
            "raw_getmany_per_s": transport["raw_getmany_per_s"],
            "peer_quix_stateful_per_s": transport["peer_quix_stateful_per_s"],
            "faust_trivial_per_s": transport["faust_trivial_per_s"],
            "real_worker_vs_raw_getmany": round(real / transport["raw_getmany_per_s"], 3)
            if real and transport["raw_getmany_per_s"]
            else None,
            "latency_p50_ms": out["latency"]["latency_p50_ms"],
            "latency_p99_ms": out["latency"]["latency_p99_ms"],
            "rss_mb_per_10k_users": out["memory"]["rss_mb_per_10k_users"],
            "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        }
    )
    return out


def run_benchmark(*, quick: bool, broker: str | None = None) -> dict[str, Any]:
    if quick:
        return {
            "name": "pipeline",
            "quick": True,
            **measure(
                users=20,
                per_user=500,
                repeats=1,
                sweep=((5, 1000), (100, 50)),
                memory_users=300,
                latency_seconds=20.0,
                bootstrap=broker,
            ),
        }
    return {"name": "pipeline", "quick": False, **measure(bootstrap=broker)}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rote.pipeline_bench")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the benchmark and print its JSON")
    run.add_argument("--quick", action="store_true")
    run.add_argument("--broker", default=None, help="kafka://HOST:PORT (default: embedded Tansu)")
    for leg in ("faust", "quix"):
        c = sub.add_parser(f"{leg}-child", help=f"internal: one {leg} leg")
        c.add_argument("--bootstrap", required=True)
        c.add_argument("--topic", required=True)
        c.add_argument("--events", type=int, required=True)
        c.add_argument("--workdir", type=Path, required=True)
        c.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "faust-child":
        faust_child(args.bootstrap, args.topic, args.events, args.workdir, args.out)
    elif args.cmd == "quix-child":
        quix_child(args.bootstrap, args.topic, args.events, args.workdir, args.out)
    else:
        broker = args.broker.removeprefix("kafka://") if args.broker else None
        print(json.dumps(run_benchmark(quick=args.quick, broker=broker), indent=2))
    return 0
