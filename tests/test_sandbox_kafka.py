"""Two `rote sandbox serve` processes in one consumer group on Apache Kafka: they share the work, and when
one is SIGKILLed in the middle of a test the other redoes its requests under the same result ids.

Real everything: the runners are the CLI in their own processes, with real jails, on the Apache Kafka
broker the session fixture starts (KRaft, from the Maven jars). Each test uses its own group and its own
automation ids, since the broker is shared by the whole session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_sandbox_service import make_automation

from rote.sandbox_runner.proc import processes_of
from rote.sandbox_runner.service import requests_of
from rote.security.verdicts import sign, verify_result
from rote.streams import topics
from rote.streams.schemas import Automation, GeneratedSource, TestResult, decode, encode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the jail needs root and bubblewrap"
    ),
]

KEY = "kafka-test-result-key-0123456789abcdef"
ROTE = Path(sys.executable).with_name("rote")
SESSION_TIMEOUT = 6.0  # Kafka's group.min.session.timeout.ms: the fastest a dead runner is noticed


class Runner:
    """One `rote sandbox serve` process."""

    def __init__(self, bootstrap: str, group: str, log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.metrics_port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                str(ROTE),
                "sandbox",
                "serve",
                "--bootstrap",
                bootstrap,
                "--group",
                group,
                "--concurrency",
                "1",
                "--session-timeout",
                str(SESSION_TIMEOUT),
                "--metrics-port",
                str(self.metrics_port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != "ROTE_METRICS_ADDR"}, "ROTE_RESULT_KEY": KEY},
        )
        self.name = f"{socket.gethostname()}:{self.proc.pid}"

    def jail_running(self) -> bool:
        """A bubblewrap of this runner is alive: a test is in the middle of running."""
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            comm, _, rest = stat.partition(") ")
            if comm.endswith("(bwrap") and int(rest.split()[1]) == self.proc.pid:
                return True
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


@pytest.fixture()
def runners(kafka_broker: Any, tmp_path: Path) -> Iterator[tuple[str, list[Runner]]]:
    from rote.brokers.admin import create_topics

    bootstrap = kafka_broker.bootstrap
    create_topics(bootstrap, [topics.AUTOMATIONS, topics.TEST_RESULTS, topics.METRICS, topics.DEAD_LETTERS])
    group = f"sbx-kafka-{uuid.uuid4().hex[:8]}"
    started = [Runner(bootstrap, group, tmp_path / f"runner{i}.log") for i in range(2)]
    try:
        _wait_for_members(bootstrap, group, 2)
        yield group, started
    finally:
        for r in started:
            r.stop()


def _wait_for_members(bootstrap: str, group: str, n: int, timeout: float = 60.0) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        desc: Any = None
        while time.monotonic() < deadline:
            try:
                desc = admin.describe_groups([group])[group]
            except KafkaError as exc:  # the group coordinator is still being elected: ask again
                desc = exc
                time.sleep(0.5)
                continue
            if desc.get("group_state") == "Stable" and len(desc.get("members", [])) == n:
                return
            time.sleep(0.5)
        raise AssertionError(f"group {group} never had {n} stable members: {desc}")
    finally:
        admin.close()


def _listening(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket listens on at `port` (/proc/net/tcp, state 0A = LISTEN)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        addr, _, hexport = fields[1].partition(":")
        if fields[3] == "0A" and int(hexport, 16) == port:
            out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


def _publish(bootstrap: str, automations: list[Automation]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for i, a in enumerate(automations):
            # One partition after another, so both runners' partitions get work.
            part = i % topics.AUTOMATIONS.partitions
            producer.send(topics.AUTOMATIONS.name, encode(a), key=a.automation_id.encode(), partition=part)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _collect(bootstrap: str, ids: set[str], want: set[str], timeout: float) -> list[tuple[float, TestResult]]:
    """Every result on `test-results` for the automation ids `ids`, with its arrival time, until every id in
    `want` has arrived (or the time is up)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topics.TEST_RESULTS.name,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    got: list[tuple[float, TestResult]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not want <= {r.result_id for _, r in got}:
            for record in consumer:
                res = decode(TestResult, record.value)
                if res.automation_id in ids:
                    got.append((time.monotonic(), res))
    finally:
        consumer.close()
    return got


def test_two_runners_share_the_work(kafka_broker: Any, runners: tuple[str, list[Runner]]) -> None:
    _group, pair = runners
    run = uuid.uuid4().hex[:6]
    autos = [sign(make_automation(f"a-share-{run}-{i}"), KEY.encode()) for i in range(8)]
    want = {q.result_id for a in autos for q in requests_of(a)}
    _publish(kafka_broker.bootstrap, autos)
    got = _collect(kafka_broker.bootstrap, {a.automation_id for a in autos}, want, timeout=180)
    results = [r for _, r in got]
    assert {r.result_id for r in results} == want  # one result per request, under the request's id
    assert len(want) == 8 * 6
    assert all(verify_result(r, KEY.encode()) for r in results)
    # Metrics bind on loopback unless configured: the kernel's own table of listening sockets says so.
    for p in pair:
        assert f"metrics on 127.0.0.1:{p.metrics_port}" in " ".join(p.log.read_text().split())
        assert _listening(p.metrics_port) == {"127.0.0.1"}
    by_runner = {r.runner for r in results}
    assert by_runner == {p.name for p in pair}, by_runner  # both worked
    # Without a crash nothing is tested twice.
    assert len(results) == len(want)


def _slow(automation_id: str, seconds: float) -> Automation:
    """An automation whose Python test takes `seconds` (one case, one language): long enough to be
    killed in the middle of. Its source names it, so the test can see which one a jail is running."""
    base = make_automation(automation_id)
    src = f"# {automation_id}\nimport time\ntime.sleep({seconds})\n"
    changed = base.model_copy(
        update={
            "sources": {
                "python": GeneratedSource(language="python", source=src, supported=True, static_check="ok")
            },
            "test_cases": base.test_cases[:1],
            "created_at": datetime.now(UTC),
        }
    )
    return sign(changed, KEY.encode())  # signed as the generator signs what it renders (this runner's key)


def _running_automation(r: Runner, ids: list[str]) -> tuple[str, int] | None:
    """Which of `ids` the runner's jail is testing now, and the jail's uid, read from its workspace."""
    for ws in Path("/run/rote-sandbox/ws").glob(f"{r.proc.pid}-*"):
        try:
            text = (ws / "automation.py").read_text()
        except OSError:
            continue
        for aid in ids:
            if f"# {aid}\n" in text:
                return aid, int(ws.name.split("-")[1])
    return None


def test_a_runner_killed_mid_test_has_its_requests_redone(
    kafka_broker: Any, runners: tuple[str, list[Runner]]
) -> None:
    _group, (victim, survivor) = runners
    run = uuid.uuid4().hex[:6]
    autos = [_slow(f"a-kill-{run}-{i}", 3.0) for i in range(4)]
    ids = [a.automation_id for a in autos]
    want = {q.result_id for a in autos for q in requests_of(a)}
    _publish(kafka_broker.bootstrap, autos)
    deadline = time.monotonic() + 60
    found = None
    while time.monotonic() < deadline and found is None:
        if victim.jail_running():
            found = _running_automation(victim, ids)
        time.sleep(0.05)
    assert found is not None, "the victim never started a test"
    interrupted, uid = found
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.proc.wait()
    # Its jail died with it (bubblewrap's --die-with-parent, then pid 1 takes its namespace down).
    for _ in range(100):
        if not list(processes_of(uid)):
            break
        time.sleep(0.05)
    assert not list(processes_of(uid)), f"the killed runner's jail (uid {uid}) outlived it"
    got = _collect(kafka_broker.bootstrap, set(ids), want, timeout=120)
    results = [r for _, r in got]
    assert {r.result_id for r in results} == want, "a request was lost"
    assert all(verify_result(r, KEY.encode()) for r in results)
    redone = [r for r in results if r.automation_id == interrupted]
    assert redone and all(r.runner == survivor.name for r in redone), redone
    (expected_id,) = {
        q.result_id for q in requests_of(next(a for a in autos if a.automation_id == interrupted))
    }
    assert {r.result_id for r in redone} == {expected_id}
    # The survivor took over once the group noticed the death (a session timeout), and finished.
    last = max(t for t, r in got if r.automation_id == interrupted)
    recovery = last - killed_at
    print(
        f"\nkilled mid-test: {interrupted}; its result from the survivor {recovery:.1f} s after the SIGKILL"
    )
    assert recovery >= SESSION_TIMEOUT * 0.5
