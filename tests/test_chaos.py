"""Scale out and survive crashes (issue 16): workers and sandbox runners SIGKILLed under load, on Kafka.

Two `rote worker`s and two `rote sandbox serve` share Apache Kafka (KRaft, from the Maven jars) while 20
users' actions arrive. A worker is SIGKILLed at random moments five times (and replaced), and a sandbox
runner is SIGKILLed while tests run (and replaced). Afterwards:

- every valid action is counted exactly once in the discovery state (`/users/` of the live workers),
- no (candidate id, version) and no generated (automation id, version) was published twice,
- every test request has exactly one result id per (case, language): a retry replaced, never added,
- the consumer lag is back to zero,
- and the time each kill took to recover from is printed.

`ROTE_CHAOS_BROKERS=3` runs the same test on a three-node cluster with replication 3 and also stops and
restarts one broker under load (the documented manual run: docs/operations.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from rote.brokers import create_topics, free_port
from rote.importers import bundled_log, iter_records
from rote.streams.fast import encode_batch
from rote.streams.topics import AUTOMATIONS, CANDIDATES, CATALOGUE, DEAD_LETTERS, TEST_RESULTS, USER_ACTIONS

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROTE = [sys.executable, "-m", "rote.cli"]
APP = "rote-chaos"
USERS = 20
PER_USER = 480  # the first 480 actions of the bundled log per user: ~9,600 actions, both routines start
KEY = "chaos-test-result-key-" + "k" * 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, kafka_broker: Any) -> Iterator[Any]:
    """The session's Apache Kafka, or a fresh three-node cluster with ROTE_CHAOS_BROKERS=3."""
    if os.environ.get("ROTE_CHAOS_BROKERS", "1") == "3":
        from rote.brokers.kafka_cluster import ClusterConfig, KafkaCluster

        with KafkaCluster(ClusterConfig(nodes=3, work_dir=tmp_path_factory.mktemp("cluster"))) as c:
            yield c
    else:
        yield kafka_broker


class Proc:
    """One rote process (worker or sandbox runner) with its ports and log."""

    def __init__(self, kind: str, bootstrap: str, tmp: Path, n: int, replication: int) -> None:
        self.kind, self.n = kind, n
        self.metrics_port, self.web_port = free_port(), free_port()
        self.log = tmp / f"{kind}-{n}.log"
        env = {
            **os.environ,
            "ROTE_APP_ID": APP,
            "ROTE_STATE_DIR": str(tmp / f"{kind}-{n}"),
            "ROTE_RESULT_KEY": KEY,
            "ROTE_WEB_PORT": str(self.web_port),
            "ROTE_REPLICATION": str(replication),
            "ROTE_REPORT_INTERVAL_SECONDS": "10",
            "PYTHONUNBUFFERED": "1",
        }
        if kind == "worker":
            argv = [
                *ROTE,
                "worker",
                "--broker",
                f"kafka://{bootstrap}",
                "--metrics-port",
                str(self.metrics_port),
            ]
        else:
            argv = [
                *ROTE,
                "sandbox",
                "serve",
                "--bootstrap",
                bootstrap,
                "--group",
                f"{APP}-sandbox",
                "--metrics-port",
                str(self.metrics_port),
                "--concurrency",
                "1",
            ]
        with self.log.open("ab") as fh:
            self.popen = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own meanwhile
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def users(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/users/", timeout=10) as resp:
            data: dict[str, dict[str, int]] = json.loads(resp.read())["users"]
            return data


def _supervise(procs: list[Proc], bootstrap: str, tmp: Path, replication: int, exits: list[str]) -> None:
    """The restart policy compose and Kubernetes give rote's processes (`restart: unless-stopped`): one that
    exited on its own is started again. A worker stops on purpose when a partition's first event after a
    rebalance is past its committed offset (agents/ordering.py); the restart is what processes that event."""
    for i, p in enumerate(procs):
        code = p.popen.poll()
        if code is not None:
            exits.append(f"{p.kind}-{p.n} exited with status {code}")
            procs[i] = Proc(p.kind, bootstrap, tmp, p.n + 100, replication)


def _committed(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {(tp.topic, tp.partition): m.offset for tp, m in offsets.items() if tp.topic in topics}


def _ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def _lag(bootstrap: str, group: str, topics: list[str]) -> int:
    done = _committed(bootstrap, group, topics)
    return sum(max(0, end - max(done.get(tp, 0), 0)) for tp, end in _ends(bootstrap, topics).items())


def _read(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = [(m.key, m.value) for m in consumer]
    consumer.close()
    return out


def _dead_lettered_actions(bootstrap: str) -> list[dict[str, Any]]:
    """This test's users' actions on `dead-letters` (a valid action must never end there)."""
    out = []
    for _, v in _read(bootstrap, DEAD_LETTERS.name, DEAD_LETTERS.partitions):
        dl = json.loads(v) if v else {}
        key = base64.b64decode(dl.get("key_b64") or "")
        if dl.get("source_topic") == USER_ACTIONS.name and key.startswith(b"chaos-user-"):
            out.append(dl)
    return out


def _diagnose(bootstrap: str, tmp: Path) -> str:
    """What a failure needs: the dead letters of this test's actions and the workers' warnings."""
    dead = [(d.get("agent"), d.get("reason")) for d in _dead_lettered_actions(bootstrap)]
    lines = [f"dead-lettered actions: {dead}"]
    for log in sorted(tmp.glob("worker-*.log")):
        text = log.read_text(errors="replace").splitlines()
        hits = [
            t for t in text if any(w in t for w in ("ERROR", "Traceback", "rejected", "Error:", "WARNING"))
        ]
        lines.append(f"{log.name}: {len(text)} lines; {len(hits)} warnings, the last: {hits[-15:]}")
    return "\n".join(lines)


def test_workers_and_runners_killed_under_load_lose_and_double_nothing(cluster: Any, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap
    replication = 3 if "," in bootstrap else 1
    create_topics(bootstrap, CATALOGUE, replication=replication)
    path, fmt = bundled_log()
    base = [r.payload for r in iter_records(path, fmt=fmt) if r.error is None][:PER_USER]
    rng = random.Random(16)

    # ---- the traffic: 20 users, each in batches of 40 actions, spread over about a minute
    sent = 0
    producing = threading.Event()

    def produce() -> None:
        nonlocal sent
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 << 20
        )
        for i in range(0, PER_USER, 40):
            for u in range(USERS):
                user = f"chaos-user-{u}"
                chunk = [
                    {**p, "user_id": user, "event_id": f"{user}-{p['event_id']}"} for p in base[i : i + 40]
                ]
                producer.send(USER_ACTIONS.name, key=user.encode(), value=encode_batch(user, chunk))
                sent += len(chunk)
            producer.flush()
            time.sleep(2.5)
        producer.close()
        producing.set()

    workers = [Proc("worker", bootstrap, tmp_path, n, replication) for n in (1, 2)]
    runners = [Proc("sandbox", bootstrap, tmp_path, n, replication) for n in (1, 2)]
    recoveries: list[tuple[str, float]] = []
    exits: list[str] = []

    def wait(seconds: float) -> None:
        """Sleep, restarting any process that exited on its own meanwhile (`_supervise`)."""
        end = time.monotonic() + seconds
        while True:
            _supervise(workers, bootstrap, tmp_path, replication, exits)
            _supervise(runners, bootstrap, tmp_path, replication, exits)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    try:
        wait(20)  # both workers joined before the traffic starts
        feeder = threading.Thread(target=produce, daemon=True)
        feeder.start()

        # ---- five worker kills at random moments while actions arrive
        for k in range(5):
            wait(rng.uniform(6, 12))
            i = rng.randrange(len(workers))
            before = sum(_committed(bootstrap, APP, [USER_ACTIONS.name]).values())
            workers[i].kill()
            killed_at = time.monotonic()
            workers[i] = Proc("worker", bootstrap, tmp_path, 10 + k, replication)
            # recovered: the group commits user-actions past where it stood at the kill
            deadline = killed_at + 240
            while time.monotonic() < deadline:
                if sum(_committed(bootstrap, APP, [USER_ACTIONS.name]).values()) > before or (
                    producing.is_set() and _lag(bootstrap, APP, [USER_ACTIONS.name]) == 0
                ):
                    break
                wait(0.5)
            recoveries.append((f"worker kill {k + 1}", time.monotonic() - killed_at))
            if k == 2 and isinstance(getattr(cluster, "nodes", None), list):
                stopped = time.monotonic()  # the three-broker variant: one broker down and back under load
                cluster.stop_node(2)
                wait(10)
                cluster.start_node(2)
                recoveries.append(("broker 2 stopped and restarted", time.monotonic() - stopped))

        # ---- a sandbox runner killed while tests run (automations exist by now), then replaced
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _read(
            bootstrap, TEST_RESULTS.name, TEST_RESULTS.partitions
        ):
            wait(2)
        runners[0].kill()
        killed_at = time.monotonic()
        runners[0] = Proc("sandbox", bootstrap, tmp_path, 10, replication)
        feeder.join(timeout=600)
        assert producing.is_set()

        # ---- settle: every group caught up and quiet
        topics = [
            s.name
            for s in CATALOGUE
            if s.name not in ("optimization-reports", "dead-letters", "run-requests")
        ]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if (
                _lag(bootstrap, APP, topics) == 0
                and _lag(bootstrap, f"{APP}-sandbox", [AUTOMATIONS.name]) == 0
            ):
                break
            wait(2)
        recoveries.append(("sandbox runner kill", time.monotonic() - killed_at))
        assert _lag(bootstrap, APP, topics) == 0, "the workers did not catch up"
        assert _lag(bootstrap, f"{APP}-sandbox", [AUTOMATIONS.name]) == 0, (
            "the sandbox runners did not catch up"
        )
        wait(5)

        # ---- every valid action counted exactly once in the discovery state
        per_user: dict[str, dict[str, int]] = {}
        last: dict[str, dict[str, int]] | None = None
        views: list[dict[str, dict[str, int]]] = []
        deadline = time.monotonic() + 120  # the views answer from what each worker has recovered
        while time.monotonic() < deadline:
            per_user = {}
            try:
                views = [w.users() for w in workers]
            except OSError:  # a worker restarted by `wait` is not serving yet
                wait(5)
                continue
            for view in views:
                for user, row in view.items():
                    assert user not in per_user, f"{user} is held by two workers"
                    per_user[user] = row
            if len(per_user) == USERS and per_user == last:  # all held, and the same twice (recovered)
                break
            last = per_user
            print("users held per worker:", [len(v) for v in views])
            wait(5)
        counted = sum(r["events"] + r["held"] for r in per_user.values())
        holders = {user: w.n for w, view in zip(workers, views, strict=True) for user in view}
    finally:
        for p in [*workers, *runners]:
            p.stop()

    for what, seconds in recoveries:
        print(f"recovery: {what}: {seconds:.1f} s")
    for what in exits:
        print(f"restarted: {what}")
    assert sent == USERS * PER_USER
    assert len(per_user) == USERS
    short = {u: (r, holders.get(u)) for u, r in per_user.items() if r["events"] + r["held"] != PER_USER}
    assert counted == sent, (
        f"{counted} actions in the discovery state for {sent} sent; short users (row, worker): {short}\n"
        + _diagnose(bootstrap, tmp_path)
    )
    assert not _dead_lettered_actions(bootstrap), _diagnose(bootstrap, tmp_path)

    # ---- nothing published twice
    cands = [json.loads(v) for _, v in _read(bootstrap, CANDIDATES.name, CANDIDATES.partitions) if v]
    dupes = [k for k, n in Counter((c["candidate_id"], c["version"]) for c in cands).items() if n > 1]
    assert cands and not dupes, f"candidate versions published twice: {dupes}"
    autos = [json.loads(v) for _, v in _read(bootstrap, AUTOMATIONS.name, AUTOMATIONS.partitions) if v]
    generated = Counter((a["automation_id"], a["version"]) for a in autos if a["state"] == "generated")
    assert generated and max(generated.values()) == 1, f"automation versions generated twice: {generated}"

    # ---- one result per test request: ids derived from the request, so a redone test replaced its result
    results = [json.loads(v) for _, v in _read(bootstrap, TEST_RESULTS.name, TEST_RESULTS.partitions) if v]
    by_request: dict[tuple[str, int, str | None, str], set[str]] = {}
    for r in results:
        by_request.setdefault((r["automation_id"], r["version"], r["case_id"], r["language"]), set()).add(
            r["result_id"]
        )
    assert by_request and all(len(ids) == 1 for ids in by_request.values()), by_request
    tested = {(a, v) for a, v, _, _ in by_request}
    assert tested <= set(generated), "a result for an automation version that was never generated"
