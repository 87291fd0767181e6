"""The real worker (`rote worker`: every agent, default configuration) under load, measured from outside.

Throughput is what the consumer group commits: a backlog of per-user batches is produced, a worker is
started, and every 0.25 s the group's committed offsets on `user-actions` (converted to actions with the
exact number of actions in each committed record), the worker's CPU time and its count of actions taken
in (`rote_user_actions_total`) are sampled. The run is timed from the last sample before the worker took
its first action in (start-up and the group join are left out; up to one sample interval of idle time is
counted against the worker) to the first sample at which every action's offset is committed (commit after
processing: an action counts once it is durable). The worker's CPU time over the same window gives µs per
action. The rate between the first and the last commit that moved is reported beside it
(`commit_window_actions_per_s`): it leaves out whatever was processed before the first commit, so it
overstates a worker that commits rarely, and is not the headline.

Latency is measured at half the sustained rate: users send their actions as the producer API does (each
user's actions batched within a 50 ms linger), and for every candidate the task identifier publishes, the
latency is its broker timestamp minus the moment that user's latest action before it was sent (the action
whose processing emitted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rote.pipeline_bench.backlog import Backlog, make_backlog, user_actions
from rote.pipeline_bench.peers import BenchmarkError, produce
from rote.streams.fast import encode_batch
from rote.streams.topics import AUTOMATIONS, CANDIDATES, CATALOGUE, DEAD_LETTERS, TEST_RESULTS, USER_ACTIONS

_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: topics whose record counts a throughput leg reports beside its rate
OUTPUT_TOPICS = (CANDIDATES.name, AUTOMATIONS.name, TEST_RESULTS.name, DEAD_LETTERS.name)


@contextlib.contextmanager
def fresh_cluster(bootstrap: str | None) -> Iterator[tuple[str, str]]:
    """(bootstrap, kind) with empty catalogue topics: a new embedded broker, or the given cluster with its
    catalogue topics deleted and created again (never point the benchmark at a cluster in use)."""
    from rote.brokers import create_topics, start_broker

    with start_broker(bootstrap) as broker:
        if bootstrap is not None:
            _reset_topics(broker.bootstrap)
        create_topics(broker.bootstrap, CATALOGUE)
        yield broker.bootstrap, broker.kind


def _reset_topics(bootstrap: str) -> None:
    from rote.brokers.admin import admin_client

    with admin_client(bootstrap) as admin:
        names = [t for t in admin.list_topics() if t in {s.name for s in CATALOGUE} or t.startswith("bench-")]
        if names:
            admin.delete_topics(names)
    time.sleep(2)  # deletion is asynchronous on the brokers


@dataclass
class Worker:
    """A `rote worker` child process with its metrics port."""

    bootstrap: str
    workdir: Path
    app_id: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    #: a second worker of the same app gets its own directory (it then recovers from the changelogs)
    state_name: str = ""
    metrics_port: int = 0
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        from rote.brokers import free_port

        self.metrics_port = free_port()
        env = {
            **os.environ,
            "ROTE_APP_ID": self.app_id,
            "ROTE_STATE_DIR": str(self.workdir / (self.state_name or self.app_id)),
            "ROTE_RESULT_KEY": os.environ.get("ROTE_RESULT_KEY") or "bench-result-key-" + "k" * 24,
            "ROTE_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
        }
        log = (self.workdir / f"{self.app_id}.log").open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rote.cli", "worker", "--broker", f"kafka://{self.bootstrap}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker process (and its threads)."""
        assert self.popen is not None
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_mb(self) -> float:
        assert self.popen is not None
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def metric(self, name: str) -> float:
        """Sum of a metric's samples on the worker's endpoint (0 before it answers)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def wait_joined(self, timeout: float = 180.0) -> float:
        """Seconds until the worker takes actions in: one probe action is sent and must be learnt (group
        descriptions differ between brokers; an action taken in is proof on all of them)."""
        began = time.monotonic()
        probe = user_actions(0, 1, prefix="probe")
        asyncio.run(
            produce(self.bootstrap, USER_ACTIONS.name, [(b"probe-u0", encode_batch("probe-u0", probe))])
        )
        while time.monotonic() - began < timeout:
            if not self.alive():
                raise BenchmarkError(f"the worker exited (log: {self.workdir / self.app_id}.log)")
            if self.metric('rote_user_actions_total{outcome="accepted"}') >= 1:
                return time.monotonic() - began
            time.sleep(0.5)
        raise BenchmarkError(f"the worker took no action in within {timeout:.0f} s")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def _attach_profiler(worker: Worker) -> subprocess.Popen[bytes] | None:
    """With ROTE_BENCH_PROFILE=<file>, py-spy samples the worker for the whole leg (a flame graph of the
    real worker under load; docs/benchmarks.md's profile). Opt-in: py-spy is not a dependency."""
    target = os.environ.get("ROTE_BENCH_PROFILE")
    if not target or worker.popen is None:
        return None
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise BenchmarkError("ROTE_BENCH_PROFILE needs py-spy (pip install py-spy)")
    fmt = "speedscope" if target.endswith(".json") else "raw" if target.endswith(".txt") else "flamegraph"
    # non-blocking sampling at 100 Hz: blocking samples at 250 Hz slowed the worker fourfold
    args = ["record", "--pid", str(worker.popen.pid), "--nonblocking", "--rate", "100", "--format", fmt]
    return subprocess.Popen(
        [spy, *args, "--output", target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _committed(bootstrap: str, group: str) -> dict[int, int]:
    from kafka import KafkaAdminClient

    from rote.brokers.security import kafka_python_kwargs

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_python_kwargs())
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {
        tp.partition: m.offset for tp, m in offsets.items() if tp.topic == USER_ACTIONS.name and m.offset > 0
    }


def _records_on(bootstrap: str, topics: tuple[str, ...]) -> dict[str, int]:
    """Records each topic holds (end minus beginning offsets, over its partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    from rote.brokers.security import kafka_python_kwargs

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **kafka_python_kwargs())
    try:
        out = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends, begins = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
            out[topic] = sum(ends[tp] - begins[tp] for tp in tps)
        return out
    finally:
        consumer.close()


def throughput(bootstrap: str, backlog: Backlog, workdir: Path, *, timeout: float = 600.0) -> dict[str, Any]:
    """The real worker draining `backlog` (per-user batches): actions/s between commits, µs CPU per action."""
    placed = asyncio.run(produce(bootstrap, USER_ACTIONS.name, backlog.batches))
    # actions in each record, by partition and offset: committed offsets become action counts exactly
    per_part: dict[int, list[tuple[int, int]]] = {}
    for (partition, offset), (_key, value) in zip(placed, backlog.batches, strict=True):
        per_part.setdefault(partition, []).append((offset, json.loads(value)["actions"].__len__()))

    def actions_before(committed: dict[int, int]) -> int:
        return sum(n for p, recs in per_part.items() for off, n in recs if off < committed.get(p, 0))

    worker = Worker(bootstrap, workdir).start()
    profiler = _attach_profiler(worker)
    started = time.monotonic()
    samples: list[tuple[float, int, float, float]] = []  # (time, committed actions, worker cpu s, taken in)
    try:
        while time.monotonic() - started < timeout:
            if not worker.alive():
                raise BenchmarkError(f"the worker exited (log: {workdir / worker.app_id}.log)")
            done = actions_before(_committed(bootstrap, worker.app_id))
            # the metrics endpoint is read only until the first action is in (rendering it costs the
            # worker CPU that would count against it)
            began = bool(samples) and samples[-1][3] > 0
            taken = 1.0 if began else worker.metric('rote_user_actions_total{outcome="accepted"}')
            samples.append((time.monotonic(), done, worker.cpu_seconds(), taken))
            if done >= backlog.actions:
                break
            time.sleep(0.25)
        rss = worker.rss_mb()
        outputs = _records_on(bootstrap, OUTPUT_TOPICS)
        checkpoint_bytes = worker.metric('rote_state_checkpoint_bytes_sum{state="discovery"}')
        checkpoints = worker.metric('rote_state_checkpoint_bytes_count{state="discovery"}')
    finally:
        worker.stop()
        if profiler is not None:
            profiler.wait(timeout=60)
    if not samples or samples[-1][1] < backlog.actions:
        raise BenchmarkError(
            f"the worker committed {samples[-1][1] if samples else 0} of {backlog.actions} actions"
        )
    first_in = next(i for i, smp in enumerate(samples) if smp[3] > 0 or smp[1] > 0)
    begin = samples[first_in - 1] if first_in > 0 else (started, 0, 0.0, 0.0)
    end = samples[-1]
    span = end[0] - begin[0]
    moved = [smp for smp in samples if smp[1] > 0]
    c0, c1 = moved[0], moved[-1]
    return {
        "users": backlog.users,
        "actions": backlog.actions,
        "records": len(backlog.batches),
        "start_to_first_action_s": round(begin[0] - started, 2),
        "actions_per_s": round(backlog.actions / span, 1) if span > 0 else None,
        "cpu_us_per_action": round((end[2] - begin[2]) / backlog.actions * 1e6, 2),
        "commit_window_actions_per_s": round((c1[1] - c0[1]) / (c1[0] - c0[0]), 1)
        if c1[0] > c0[0] and c1[1] > c0[1]
        else None,
        "rss_mb": round(rss, 1),
        "discovery_checkpoint_bytes_mean": round(checkpoint_bytes / checkpoints, 1) if checkpoints else None,
        # what the agents downstream of discovery had to handle (part of the cost per action)
        "outputs": outputs,
    }


def latency(bootstrap: str, workdir: Path, *, users: int, rate: float, seconds: float) -> dict[str, Any]:
    """Candidates' latency at `rate` actions/s, sent the producer API's way (per user, 50 ms linger)."""
    worker = Worker(bootstrap, workdir).start()
    try:
        worker.wait_joined()
        sent_at: dict[str, list[float]] = {}
        published, ended = asyncio.run(
            _steady(bootstrap, users=users, rate=rate, seconds=seconds, sent_at=sent_at)
        )
    finally:
        worker.stop()
    lat: list[float] = []
    after: list[float] = []
    for user, at in published:
        times = [t for t in sent_at.get(user, []) if t <= at]
        if times:
            (lat if at <= ended else after).append((at - max(times)) * 1000.0)
    if not lat:
        raise BenchmarkError("no candidate was published while the actions were being sent")
    lat.sort()
    return {
        "rate_actions_per_s": round(rate, 1),
        "users": users,
        "seconds": seconds,
        "candidates": len(lat),
        "latency_p50_ms": round(statistics.median(lat), 1),
        "latency_p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
        "latency_max_ms": round(lat[-1], 1),
        # after the last send: the last actions wait out the lateness hold with no newer action to release
        # them (a pause after a routine), so they measure the hold, not the pipeline's steady latency
        "after_stream_end_candidates": len(after),
        "after_stream_end_max_ms": round(max(after), 1) if after else None,
    }


async def _steady(
    bootstrap: str, *, users: int, rate: float, seconds: float, sent_at: dict[str, list[float]]
) -> tuple[list[tuple[str, float]], float]:
    """Send at `rate` for `seconds`, then wait for the last candidates. Returns every candidate published
    (user, broker time) and when the last actions were on the broker."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from rote.brokers.security import aiokafka_kwargs

    per_user = max(1, int(rate * seconds / users) + 1)
    streams = {u: user_actions(u, per_user, prefix="lat") for u in range(users)}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **aiokafka_kwargs())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_kwargs())
    await producer.start()
    await consumer.start()
    published: list[tuple[str, float]] = []
    try:
        parts = [TopicPartition(CANDIDATES.name, p) for p in range(CANDIDATES.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)

        async def read() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    for m in msgs:
                        if m.value:
                            published.append((json.loads(m.value)["user_id"], m.timestamp / 1000.0))

        reader = asyncio.create_task(read())
        linger = 0.05  # the producer API's default: a user's actions of 50 ms go as one batch
        began = time.time()
        sent = 0  # actions each user has sent so far (users keep the same pace)
        tick = 0
        while time.time() - began < seconds:
            tick += 1
            due = min(per_user, int((time.time() - began) * rate / users))
            if due > sent:
                now = time.time()
                for actions in streams.values():
                    chunk = actions[sent:due]
                    user = chunk[0]["user_id"]
                    await producer.send(USER_ACTIONS.name, encode_batch(user, chunk), key=user.encode())
                    sent_at.setdefault(user, []).extend([now] * len(chunk))
                sent = due
            await asyncio.sleep(max(0.0, began + tick * linger - time.time()))
        await producer.flush()
        ended = time.time()
        await asyncio.sleep(8.0)  # candidates of the last actions (lateness hold, publish)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    finally:
        await consumer.stop()
        await producer.stop()
    return published, ended


def memory(bootstrap: str, workdir: Path, *, users: int, per_user: int) -> dict[str, Any]:
    """RSS of a worker holding `users` active users, per 10k users (RSS growth over an idle worker), and
    how long a replacement worker takes to recover their state from the changelogs (per 10k users: its
    time to take a probe action in, minus the first worker's on empty changelogs)."""
    backlog = make_backlog(users, per_user, batch=per_user, prefix="mem")
    worker = Worker(bootstrap, workdir).start()
    try:
        empty_join = worker.wait_joined()
        time.sleep(2)
        idle = worker.rss_mb()
        asyncio.run(produce(bootstrap, USER_ACTIONS.name, backlog.batches))
        deadline = time.monotonic() + 600
        while worker.metric('rote_user_actions_total{outcome="accepted"}') < backlog.actions + 1:
            if time.monotonic() > deadline or not worker.alive():
                raise BenchmarkError("the worker did not take the memory backlog in")
            time.sleep(0.5)
        time.sleep(2)
        loaded = worker.rss_mb()
        checkpoint_bytes = worker.metric('rote_state_checkpoint_bytes_sum{state="discovery"}')
        checkpoints = worker.metric('rote_state_checkpoint_bytes_count{state="discovery"}')
        while sum(_committed(bootstrap, worker.app_id).values()) < len(backlog.batches) + 1:
            if time.monotonic() > deadline:
                raise BenchmarkError("the worker did not commit the memory backlog")
            time.sleep(0.5)
    finally:
        worker.stop()
    successor = Worker(bootstrap, workdir, app_id=worker.app_id, state_name=f"{worker.app_id}-2").start()
    try:
        full_join = successor.wait_joined(timeout=600)
    finally:
        successor.stop()
    recovery = max(0.0, full_join - empty_join)
    return {
        "users": users,
        "actions_per_user": per_user,
        "rss_idle_mb": round(idle, 1),
        "rss_loaded_mb": round(loaded, 1),
        "rss_mb_per_10k_users": round((loaded - idle) / users * 10_000, 1),
        "discovery_checkpoint_bytes_mean": round(checkpoint_bytes / checkpoints, 1) if checkpoints else None,
        "join_empty_s": round(empty_join, 2),
        "join_recovering_s": round(full_join, 2),
        "recovery_s_per_10k_users": round(recovery / users * 10_000, 1),
    }


def with_workdir() -> contextlib.AbstractContextManager[str]:
    return tempfile.TemporaryDirectory(prefix="rote-bench-")
