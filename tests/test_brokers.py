"""rote.brokers against real brokers: Tansu and Apache Kafka, through kafka-python, aiokafka and faust.

The process-control tests at the top need no broker; everything marked `integration` runs once per
broker through the parametrized `broker` fixture (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from rote.brokers import (
    KafkaBroker,
    KafkaConfig,
    TansuBroker,
    TansuConfig,
    create_topics,
    ensure_kafka_jars,
    faust_url,
    free_port,
    live_processes,
    split_bootstrap,
    start_broker,
    tansu_binary,
)
from rote.brokers._process import BrokerUnavailable, ManagedProcess
from rote.brokers.admin import admin_client
from rote.brokers.kafka import _megabytes, new_cluster_id, server_properties
from rote.errors import BrokerError
from rote.streams.topics import CATALOGUE, Cleanup, TopicSpec


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _spec(name: str, partitions: int, cleanup: Cleanup = Cleanup.DELETE) -> TopicSpec:
    return TopicSpec(
        name=name,
        schema="Test",
        key="id",
        partitions=partitions,
        retention_ms=3_600_000 if cleanup is Cleanup.DELETE else None,
        cleanup=cleanup,
        description="test topic",
    )


#: Tansu answers a new group's first JoinGroup only after half the session timeout (kafka-python's
#: default of 45 s means 22 s); 6 s is the smallest session Kafka accepts (group.min.session.timeout.ms).
FAST_GROUP_JOIN: dict[str, int] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------------
# No broker needed
# ------------------------------------------------------------------------------------------------


def test_split_bootstrap_accepts_lists_and_schemes() -> None:
    assert split_bootstrap("kafka://a:1,b:2") == [("a", 1), ("b", 2)]
    assert split_bootstrap(" 127.0.0.1:9092 ") == [("127.0.0.1", 9092)]
    for bad in ("", "host", "host:port", ":9092"):
        with pytest.raises(BrokerError):
            split_bootstrap(bad)


def test_faust_url_uses_semicolons() -> None:
    class B:
        bootstrap = "a:1,b:2"
        kind = "kafka"

    assert faust_url(B()) == "kafka://a:1;b:2"


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = server_properties(
        host="127.0.0.1",
        port=1234,
        controller_port=1235,
        data_dir=tmp_path,
        overrides={"num.io.threads": "4"},
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:1235"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1234"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.io.threads"] == "4"  # overrides win
    assert props["log.dirs"] == str(tmp_path)


def test_heap_sizes_and_cluster_ids() -> None:
    assert _megabytes("512m") == 512
    assert _megabytes("2g") == 2048
    with pytest.raises(BrokerError):
        _megabytes("lots")
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and "=" not in i for i in ids)


def test_cached_jars_are_used_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = tmp_path / "kafka-9.9.9" / "libs"
    libs.mkdir(parents=True)
    for name in ("kafka_2.13-9.9.9.jar", "kafka-clients-9.9.9.jar"):
        (libs / name).write_bytes(b"PK")
    (libs / ".complete").write_text("kafka_2.13-9.9.9.jar\nkafka-clients-9.9.9.jar\n")
    monkeypatch.setenv("PATH", "")  # no mvn: a cache hit must not need it
    assert ensure_kafka_jars(tmp_path, version="9.9.9") == libs
    # A missing jar makes the cache incomplete, and then Maven is required.
    (libs / "kafka-clients-9.9.9.jar").unlink()
    with pytest.raises(BrokerUnavailable, match="Maven"):
        ensure_kafka_jars(tmp_path, version="9.9.9")


def test_stop_escalates_to_sigkill_and_takes_the_group(tmp_path: Path) -> None:
    # A parent that ignores SIGTERM, with a child in the same process group.
    script = "trap '' TERM; sleep 300 & echo $! > child.pid; wait"
    proc = ManagedProcess(["bash", "-c", script], log_path=tmp_path / "p.log", cwd=tmp_path)
    assert proc in live_processes()
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    code = proc.stop(timeout=0.5)
    assert code == -signal.SIGKILL
    assert _wait_dead(child)
    assert proc not in live_processes()


def test_broker_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    # A Python parent starts a managed child and is then killed outright: atexit cannot run, so only
    # the parent-death signal can take the child down.
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from rote.brokers._process import ManagedProcess
        p = ManagedProcess(["sleep", "300"], log_path=Path({str(tmp_path / "c.log")!r}))
        print(p.pid, flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    assert _wait_dead(child)


def test_start_broker_rejects_unknown_urls() -> None:
    with pytest.raises(BrokerError, match="unknown broker URL"), start_broker("amqp://localhost:5672"):
        pass


def test_external_broker_that_does_not_answer_fails_fast() -> None:
    port = free_port()  # nothing listens here
    url = f"kafka://127.0.0.1:{port}"
    with pytest.raises(BrokerError, match="not ready"), start_broker(url, ready_timeout=1):
        pass


# ------------------------------------------------------------------------------------------------
# Tansu lifecycle (its own short-lived brokers, not the session one)
# ------------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.tansu
def test_tansu_starts_answers_and_leaves_nothing_running(tmp_path: Path) -> None:
    try:
        broker = TansuBroker(TansuConfig(work_dir=tmp_path))
        broker.start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    pid = broker._process.pid if broker._process else -1
    host, port = split_bootstrap(broker.bootstrap)[0]
    with admin_client(broker.bootstrap) as admin:
        assert admin.describe_cluster()["brokers"]
    broker.stop()
    assert not broker.running
    assert _wait_dead(pid)
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=1):
        pass
    assert (tmp_path / "tansu.log").read_text().strip(), "the log file keeps Tansu's output"


@pytest.mark.integration
@pytest.mark.tansu
def test_tansu_on_a_taken_port_fails_with_its_log(tmp_path: Path) -> None:
    try:
        tansu_binary()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = TansuBroker(TansuConfig(port=port, work_dir=tmp_path, start_timeout=15))
        with pytest.raises(BrokerError, match="tansu") as info:
            broker.start()
    assert str(tmp_path) in str(info.value)  # the error says where the log is
    assert not broker.running
    assert not [p for p in live_processes() if p.log_path.parent == tmp_path]


@pytest.mark.integration
@pytest.mark.tansu
def test_start_broker_embedded_is_tansu_and_stops() -> None:
    try:
        with start_broker(None) as broker:
            assert broker.kind == "tansu"
            running = broker
            assert isinstance(running, TansuBroker) and running.running
            # The same address works as an external broker URL.
            with start_broker(f"kafka://{broker.bootstrap}") as external:
                assert external.bootstrap == broker.bootstrap
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    assert not running.running


# ------------------------------------------------------------------------------------------------
# Both brokers
# ------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_catalogue_topics_created_idempotently(broker: Any) -> None:
    create_topics(broker.bootstrap, CATALOGUE)
    create_topics(broker.bootstrap, CATALOGUE)  # a second run changes nothing and does not fail
    with admin_client(broker.bootstrap) as admin:
        described = {t["name"]: t for t in admin.describe_topics([t.name for t in CATALOGUE])}
    for spec in CATALOGUE:
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name


@pytest.mark.integration
@pytest.mark.kafka
def test_catalogue_topic_configs_on_kafka(kafka_broker: Any) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    create_topics(kafka_broker.bootstrap, CATALOGUE)
    with admin_client(kafka_broker.bootstrap) as admin:
        for spec in CATALOGUE:
            response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name)])
            text = json.dumps(response, default=str)
            assert f'"{spec.cleanup.value}"' in text, spec.name
            if spec.retention_ms is not None:
                assert f'"{spec.retention_ms}"' in text, spec.name


@pytest.mark.integration
def test_partition_mismatch_is_an_error(broker: Any) -> None:
    name = _unique("mismatch")
    create_topics(broker.bootstrap, [_spec(name, 2)])
    with pytest.raises(BrokerError, match="partitions"):
        create_topics(broker.bootstrap, [_spec(name, 3)])


@pytest.mark.integration
def test_round_trip_kafka_python(broker: Any) -> None:
    topic = _unique("rt-kp")
    create_topics(broker.bootstrap, [_spec(topic, 3)])
    sent: dict[str, list[int]] = {f"user-{i}": [] for i in range(7)}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(140):
        key = f"user-{i % 7}"
        producer.send(topic, key=key.encode(), value=json.dumps({"seq": i}).encode())
        sent[key].append(i)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=_unique("g"),
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
        **FAST_GROUP_JOIN,
    )
    got: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for message in consumer:
        key = message.key.decode()
        got[key].append(json.loads(message.value)["seq"])
        partitions[key].add(message.partition)
        if sum(map(len, got.values())) == 140:
            break
    consumer.close()
    assert got == sent  # everything arrived, in order per key
    assert all(len(p) == 1 for p in partitions.values())  # one key, one partition
    assert len(set().union(*partitions.values())) > 1  # and the keys were spread


@pytest.mark.integration
def test_round_trip_aiokafka(broker: Any) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _unique("rt-aio")
    create_topics(broker.bootstrap, [_spec(topic, 4)])

    async def run() -> Counter[str]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(200):
                await producer.send(topic, key=f"k{i % 5}".encode(), value=str(i).encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=_unique("g"),
            auto_offset_reset="earliest",
            **FAST_GROUP_JOIN,
        )
        await consumer.start()
        seen: Counter[str] = Counter()
        try:
            async with asyncio.timeout(30):
                while sum(seen.values()) < 200:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        seen.update(r.key.decode() for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()
        return seen

    assert asyncio.run(run()) == Counter({f"k{i}": 40 for i in range(5)})


#: What makes a faust worker start in seconds instead of ~30 s on these brokers (see docs/brokers.md).
FAST_FAUST: dict[str, Any] = {
    "store": "memory://",
    "web_enabled": False,
    "topic_disable_leader": True,
    "consumer_auto_offset_reset": "earliest",
    "table_standby_replicas": 0,
    "topic_partitions": 4,
    # Tansu answers a new group's first JoinGroup after half the session timeout (30 s by default).
    # 6 s is also Kafka's group.min.session.timeout.ms, so it is accepted by both.
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "broker_request_timeout": 15.0,
    "broker_commit_interval": 0.5,
}


@pytest.mark.integration
@pytest.mark.slow
def test_faust_agent_and_table(broker: Any, tmp_path: Path) -> None:
    import faust

    tag = uuid.uuid4().hex[:8]
    events = 120
    source_name, output_name = f"fa-in-{tag}", f"fa-out-{tag}"
    # Source topics must exist before the worker starts: faust only declares its own internal topics,
    # and a missing source is left out of the assignment until the next metadata refresh (minutes).
    create_topics(broker.bootstrap, [_spec(source_name, 4), _spec(output_name, 4)])

    # datadir: faust otherwise makes "<app id>-data" in the current directory.
    app = faust.App(f"rote-test-{tag}", broker=faust_url(broker), datadir=str(tmp_path), **FAST_FAUST)
    source = app.topic(source_name, key_type=str, value_serializer="json", partitions=4)
    output = app.topic(output_name, key_type=str, value_serializer="json", partitions=4)
    counts = app.Table(f"counts-{tag}", default=int, partitions=4)
    done = asyncio.Event()
    processed = 0

    @app.agent(source)
    async def count(stream: Any) -> None:
        nonlocal processed
        async for key, value in stream.items():
            counts[key] += 1
            await output.send(key=key, value={"seq": value["seq"], "count": counts[key]})
            processed += 1
            if processed >= events:
                done.set()

    async def run() -> tuple[dict[str, int], list[dict[str, Any]]]:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        await app.start()
        try:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                for i in range(events):
                    await producer.send(
                        source_name, key=f"user-{i % 4}".encode(), value=json.dumps({"seq": i}).encode()
                    )
                await producer.flush()
            finally:
                await producer.stop()
            await asyncio.wait_for(done.wait(), timeout=120)
            table = {key: counts[key] for key in (f"user-{u}" for u in range(4))}
            consumer = AIOKafkaConsumer(
                output_name, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", group_id=None
            )
            await consumer.start()
            out: list[dict[str, Any]] = []
            try:
                async with asyncio.timeout(30):
                    while len(out) < events:
                        batch = await consumer.getmany(timeout_ms=1000)
                        out.extend(json.loads(r.value) for rs in batch.values() for r in rs)
            finally:
                await consumer.stop()
            return table, out
        finally:
            await app.stop()

    table, out = asyncio.run(run())
    assert table == {f"user-{u}": events // 4 for u in range(4)}
    assert sorted(o["seq"] for o in out) == list(range(events))
    assert max(o["count"] for o in out) == events // 4


@pytest.mark.integration
@pytest.mark.kafka
def test_kafka_broker_reports_its_version_and_config(kafka_broker: Any) -> None:
    with admin_client(kafka_broker.bootstrap) as admin:
        cluster = admin.describe_cluster()
    assert len(cluster["brokers"]) == 1
    if isinstance(kafka_broker, KafkaBroker):  # the jar path (the container maps its port)
        assert isinstance(kafka_broker.config, KafkaConfig)
        assert cluster["cluster_id"] == kafka_broker.cluster_id
        assert cluster["brokers"][0]["port"] == split_bootstrap(kafka_broker.bootstrap)[0][1]
