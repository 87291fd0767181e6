"""The deploy files log every component in over TLS with its own principal and platform secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from rote.brokers.acls import DEFAULT_PRINCIPALS

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
ROTE = [sys.executable, "-m", "rote.cli"]


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_generated_kafka_users_and_topics_are_fresh() -> None:
    for args, name in (
        (["acls", "strimzi"], "kafka-users.yaml"),
        (["acls", "strimzi", "--topics"], "kafka-topics.yaml"),
    ):
        out = subprocess.run([*ROTE, *args], capture_output=True, text=True, check=True).stdout
        assert out == (K8S / name).read_text(), f"deploy/k8s/{name} is stale: rote {' '.join(args)} > it"


def test_every_component_logs_in_with_its_own_principal_over_tls() -> None:
    users = {d["metadata"]["name"] for d in _docs("kafka-users.yaml")}
    assert users == set(DEFAULT_PRINCIPALS.values())
    components = {
        "worker.yaml": "rote-worker",
        "sandbox-runner.yaml": "rote-sandbox",
        "runner.yaml": "rote-runner",
    }
    for name, principal in components.items():
        pod = next(d for d in _docs(name) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ROTE_BROKER"].endswith(":9093"), name  # the TLS listener
        assert (
            env["ROTE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            and env["ROTE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        )
        assert env["ROTE_KAFKA_USERNAME"] == principal
        assert "ROTE_KAFKA_PASSWORD" not in env  # a file from a Secret, never a literal
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        password_dir = str(Path(env["ROTE_KAFKA_PASSWORD_FILE"]).parent)
        assert volumes[mounts[password_dir]]["secret"]["secretName"] == principal  # Strimzi's user Secret
        ca_dir = str(Path(env["ROTE_KAFKA_CA_FILE"]).parent)
        assert volumes[mounts[ca_dir]]["secret"]["secretName"] == "rote-kafka-cluster-ca-cert"
        assert env["ROTE_RESULT_KEY_FILE"], name


def test_the_cluster_takes_only_tls_scram_clients_and_enforces_acls() -> None:
    kafka = next(d for d in _docs("kafka.yaml") if d["kind"] == "Kafka")["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert kafka["listeners"] and all(
        lst["tls"] is True and lst["authentication"]["type"] == "scram-sha-512" for lst in kafka["listeners"]
    )
    assert kafka["config"]["auto.create.topics.enable"] is False


def test_compose_logs_in_over_sasl_ssl_with_secrets() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    for name in ("worker", "sandbox-runner", "runner"):
        env = compose["services"][name]["environment"]
        assert env["ROTE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["ROTE_KAFKA_PASSWORD_FILE"].startswith("/run/secrets/"), name
        assert "ROTE_KAFKA_PASSWORD" not in env
    props = dict(
        line.split("=", 1)
        for line in (REPO / "deploy" / "kafka" / "server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    clients = [lst for lst in props["listeners"].split(",") if not lst.startswith("CONTROLLER")]
    assert clients == ["SASL_SSL://:9093"] and props["advertised.listeners"] == "SASL_SSL://kafka:9093"
    assert props["listeners"].count("CONTROLLER://localhost:") == 1  # the controller stays in the container
    assert 'password="${file:' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
