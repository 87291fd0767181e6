"""Apache Kafka with SASL_SSL (SCRAM-SHA-512), TLS and rote's ACLs: who may write what, end to end.

The broker is the project's own fixture (Apache Kafka from the Maven jars, `KafkaConfig(admin_user=...)`),
its ACLs come from `rote.brokers.acls` (the same table `rote acls apply` writes), and every client goes
through `rote.brokers.security`, as in production.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from rote.brokers import KafkaBroker, KafkaConfig, acls, create_topics
from rote.brokers.security import KafkaSecurity
from rote.streams.topics import CATALOGUE, USER_ACTIONS

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

USERS = ("admin", "rote-producer", "rote-worker", "rote-sandbox", "rote-runner", "rote-run")
PRINCIPALS: dict[acls.Component, str] = {
    "producer": "rote-producer",
    "worker": "rote-worker",
    "sandbox": "rote-sandbox",
    "runner": "rote-runner",
    "run": "rote-run",
}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    passwords = {u: secrets.token_urlsafe(18) for u in USERS}
    cfg = KafkaConfig(
        scram_users=passwords, admin_user="admin", work_dir=tmp_path_factory.mktemp("secure-kafka")
    )
    try:
        broker = KafkaBroker(cfg).start()
    except Exception as exc:  # CI must have it; a dev machine without Java says why
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Apache Kafka unavailable: {exc}")
    try:
        admin = broker.admin_security()
        assert admin is not None
        acls.apply(broker.bootstrap, acls.table(PRINCIPALS), security=admin)
        create_topics(broker.bootstrap, CATALOGUE, security=admin)
        yield broker
    finally:
        broker.stop()


def _producer(broker: KafkaBroker, security: KafkaSecurity | None) -> KafkaProducer:
    kwargs = security.kafka_python_kwargs() if security else {}
    return KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        retries=0,
        request_timeout_ms=8000,
        max_block_ms=8000,
        **kwargs,
    )


def _send(producer: KafkaProducer, topic: str) -> None:
    producer.send(topic, key=b"k", value=b'{"probe": 1}').get(timeout=15)


def test_unauthenticated_and_wrong_password_clients_are_refused(secure_kafka: KafkaBroker) -> None:
    with pytest.raises(KafkaError):  # plain TCP to a SASL_SSL listener: no handshake, no metadata
        _send(_producer(secure_kafka, None), USER_ACTIONS.name)
    wrong = secure_kafka.client_security("rote-producer").with_(password="not-the-password")
    with pytest.raises(KafkaError):
        _send(_producer(secure_kafka, wrong), USER_ACTIONS.name)


def test_producer_principal_writes_user_actions_only(secure_kafka: KafkaBroker) -> None:
    producer = _producer(secure_kafka, secure_kafka.client_security("rote-producer"))
    try:
        _send(producer, USER_ACTIONS.name)  # allowed
        for topic in (
            "test-results",
            "candidates",
            "rote-discovery-state-changelog",
            "rote-registry-wal-changelog",
        ):
            with pytest.raises(KafkaError, match=r"(?i)authoriz"):
                _send(producer, topic)
    finally:
        producer.close(timeout=5)


def test_sandbox_principal_may_write_test_results_but_the_worker_may_not(secure_kafka: KafkaBroker) -> None:
    sandbox = _producer(secure_kafka, secure_kafka.client_security("rote-sandbox"))
    worker = _producer(secure_kafka, secure_kafka.client_security("rote-worker"))
    try:
        _send(sandbox, "test-results")
        _send(worker, "candidates")
        with pytest.raises(KafkaError, match=r"(?i)authoriz"):
            _send(worker, "test-results")
        with pytest.raises(KafkaError, match=r"(?i)authoriz"):
            _send(sandbox, "rote-registry-state-changelog")
    finally:
        sandbox.close(timeout=5)
        worker.close(timeout=5)


def test_rote_run_completes_end_to_end_with_credentials(secure_kafka: KafkaBroker, tmp_path: Path) -> None:
    run = secure_kafka.client_security("rote-run")
    assert run.password is not None and run.ca_file is not None
    password_file = tmp_path / "kafka-password"
    password_file.write_text(run.password)
    password_file.chmod(0o600)
    env = {
        **os.environ,
        "ROTE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ROTE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ROTE_KAFKA_USERNAME": "rote-run",
        "ROTE_KAFKA_PASSWORD_FILE": str(password_file),
        "ROTE_KAFKA_CA_FILE": str(run.ca_file),
    }
    env.pop("ROTE_KAFKA_PASSWORD", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rote.cli",
            "run",
            "--once",
            "--json",
            "--metrics-port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--broker",
            f"kafka://{secure_kafka.bootstrap}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert run.password not in proc.stdout + proc.stderr  # the secret never reaches the output
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not summary["timed_out"] and summary["error"] is None
    assert summary["candidates"] >= 2 and summary["tests_passed"] > 0
    assert summary["events_in"] > 2000 and summary["topics"]["user-actions"] >= 1  # batched
