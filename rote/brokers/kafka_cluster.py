"""Apache Kafka as a cluster of several KRaft nodes (each broker and controller), from the same jars.

Why a cluster: what replication 3 promises (a broker stopped and restarted loses nothing, and the clients
carry on meanwhile) can only be checked against three brokers. The crash tests run on one broker in CI
(two cores); this class is their documented three-broker variant (docs/operations.md), and it starts,
stops and restarts single nodes so a test can take one down under load.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rote.brokers._process import ManagedProcess, free_port
from rote.brokers.admin import wait_ready
from rote.brokers.kafka import (
    _LOG4J2,
    KAFKA_VERSION,
    MIN_JAVA,
    BrokerUnavailable,
    ensure_kafka_jars,
    java_binary,
    java_major,
    new_cluster_id,
    server_properties,
)
from rote.errors import BrokerError


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    nodes: int = 3
    host: str = "127.0.0.1"
    version: str = KAFKA_VERSION
    cache_dir: Path | None = None
    work_dir: Path | None = None
    heap: str = "384m"
    start_timeout: float = 180.0
    stop_timeout: float = 30.0
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    work: Path
    process: ManagedProcess | None = None


class KafkaCluster:
    """N combined broker+controller nodes on loopback with replication defaults of min(3, N)."""

    kind = "kafka-cluster"

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        if self.config.nodes < 1:
            raise BrokerError("a cluster needs at least one node")
        self.cluster_id = new_cluster_id()
        self.nodes: list[_Node] = []
        self._work: Path | None = None
        self._own_work = False
        self._java = ""
        self._classpath = ""

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.config.host}:{n.port}" for n in self.nodes)

    def _props(self, node: _Node) -> dict[str, str]:
        cfg = self.config
        voters = ",".join(f"{n.node_id}@{cfg.host}:{n.controller_port}" for n in self.nodes)
        rf = str(min(3, cfg.nodes))
        isr = str(min(2, cfg.nodes))
        props = server_properties(
            host=cfg.host,
            port=node.port,
            controller_port=node.controller_port,
            data_dir=node.work / "data",
            overrides={},
        )
        props.update(
            {
                "node.id": str(node.node_id),
                "controller.quorum.voters": voters,
                "default.replication.factor": rf,
                "min.insync.replicas": isr,
                "offsets.topic.replication.factor": rf,
                "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": isr,
                "share.coordinator.state.topic.replication.factor": rf,
                "share.coordinator.state.topic.min.isr": isr,
                "unclean.leader.election.enable": "false",
            }
        )
        props.update(cfg.overrides)
        return props

    def start(self) -> KafkaCluster:
        cfg = self.config
        self._java = java_binary()
        if java_major(self._java) < MIN_JAVA:
            raise BrokerUnavailable(f"Apache Kafka needs Java {MIN_JAVA}+")
        self._classpath = str(ensure_kafka_jars(cfg.cache_dir, version=cfg.version) / "*")
        if cfg.work_dir is None:
            self._work = Path(tempfile.mkdtemp(prefix="rote-kafka-cluster-"))
            self._own_work = True
        else:
            self._work = cfg.work_dir
            self._work.mkdir(parents=True, exist_ok=True)
        ports: set[int] = set()

        def fresh() -> int:
            while True:
                p = free_port(cfg.host)
                if p not in ports:
                    ports.add(p)
                    return p

        self.nodes = [
            _Node(node_id=i + 1, port=fresh(), controller_port=fresh(), work=self._work / f"node-{i + 1}")
            for i in range(cfg.nodes)
        ]
        for node in self.nodes:
            node.work.mkdir(parents=True, exist_ok=True)
            self._write_config(node)
            self._format(node)
        for node in self.nodes:  # all at once: a controller quorum needs a majority before anyone is ready
            self._launch(node)
        try:
            wait_ready(self.bootstrap, timeout=cfg.start_timeout, what="the Apache Kafka cluster")
        except BrokerError:
            self.stop()
            raise
        return self

    def _write_config(self, node: _Node) -> None:
        (node.work / "log4j2.properties").write_text(_LOG4J2.format(log=node.work / "server.log"))
        props = self._props(node)
        (node.work / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _format(self, node: _Node) -> None:
        argv = [self._java, "-Xmx256m", "-cp", self._classpath, "kafka.tools.StorageTool", "format"]
        argv += ["-t", self.cluster_id, "-c", str(node.work / "server.properties")]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=node.work)
        if result.returncode != 0:
            raise BrokerError(f"kafka-storage format of node {node.node_id} failed:\n{result.stderr[-2000:]}")

    def _launch(self, node: _Node) -> None:
        node.process = ManagedProcess(
            [
                self._java,
                f"-Xmx{self.config.heap}",
                "-XX:+UseG1GC",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node.work / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node.work}",
                "-cp",
                self._classpath,
                "kafka.Kafka",
                str(node.work / "server.properties"),
            ],
            log_path=node.work / "stdout.log",
            cwd=node.work,
        )

    def stop_node(self, node_id: int, *, kill: bool = False) -> float:
        """Stop one node (SIGTERM, or SIGKILL with `kill`); returns seconds taken."""
        node = self.nodes[node_id - 1]
        began = time.monotonic()
        if node.process is not None:
            node.process.stop(timeout=0.1 if kill else self.config.stop_timeout)
            node.process = None
        return time.monotonic() - began

    def start_node(self, node_id: int) -> float:
        """Start a stopped node on its own data (no format); returns seconds until it answers."""
        node = self.nodes[node_id - 1]
        if node.process is not None and node.process.alive():
            return 0.0
        began = time.monotonic()
        self._launch(node)
        wait_ready(
            f"{self.config.host}:{node.port}", timeout=self.config.start_timeout, what=f"node {node_id}"
        )
        return time.monotonic() - began

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(Exception):
                    node.process.stop(timeout=self.config.stop_timeout)
                node.process = None
        if self._own_work and self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
