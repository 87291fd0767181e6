"""Kafka-compatible brokers for `rote run` and the tests: embedded Tansu, Apache Kafka from jars, or yours.

Everything that needs a broker goes through `start_broker(url)`, so the choice between a throw-away
local broker and a real cluster is one setting, and the rest of rote only ever sees a bootstrap
address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rote.brokers import acls, security
from rote.brokers._process import BrokerUnavailable, free_port, live_processes
from rote.brokers.admin import create_topics, split_bootstrap, wait_ready
from rote.brokers.kafka import KAFKA_VERSION, KafkaBroker, KafkaConfig, ensure_kafka_jars
from rote.brokers.tansu import TansuBroker, TansuConfig, tansu_binary
from rote.errors import BrokerError

__all__ = [
    "EMBEDDED",
    "KAFKA_VERSION",
    "LOCAL_KAFKA",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "ExternalBroker",
    "KafkaBroker",
    "KafkaConfig",
    "TansuBroker",
    "TansuConfig",
    "acls",
    "create_topics",
    "ensure_kafka_jars",
    "faust_url",
    "free_port",
    "live_processes",
    "security",
    "split_bootstrap",
    "start_broker",
    "tansu_binary",
    "wait_ready",
]

#: `start_broker` URLs that start a broker rather than connect to one.
EMBEDDED = "embedded"
LOCAL_KAFKA = "apache-kafka"


@runtime_checkable
class Broker(Protocol):
    """What the rest of rote needs from a broker: where it is, and what it is (for logs and reports)."""

    @property
    def bootstrap(self) -> str:
        """'host:port[,host:port]', as Kafka clients take it."""
        ...

    @property
    def kind(self) -> str:
        """'tansu' or 'kafka'."""
        ...


@dataclass(frozen=True, kw_only=True)
class ExternalBroker:
    """A cluster someone else runs; rote connects to it and never stops it."""

    bootstrap: str
    kind: str = "kafka"


def faust_url(broker: Broker) -> str:
    """The broker as faust's `broker=` setting wants it: 'kafka://h1:p1;h2:p2'."""
    return "kafka://" + ";".join(f"{host}:{port}" for host, port in split_bootstrap(broker.bootstrap))


@contextlib.contextmanager
def start_broker(url: str | None, *, ready_timeout: float = 30.0) -> Iterator[Broker]:
    """The broker named by `url`, running for as long as the `with` block.

    None, "embedded" or "tansu" start Tansu on a free loopback port; "apache-kafka" starts Apache
    Kafka from the cached jars; "kafka://host:port[,host:port]" (or a bare host:port list) is an
    existing cluster, which must answer within `ready_timeout` seconds.
    """
    name = (url or EMBEDDED).strip()
    if name.lower() in (EMBEDDED, "tansu"):
        with TansuBroker() as tansu:
            yield tansu
        return
    if name.lower() == LOCAL_KAFKA:
        with KafkaBroker() as kafka:
            yield kafka
        return
    scheme = name.split("://", 1)[0].lower() if "://" in name else "kafka"
    if scheme != "kafka":
        raise BrokerError(
            f"unknown broker URL {url!r}: use 'embedded', '{LOCAL_KAFKA}' or 'kafka://host:port'"
        )
    bootstrap = ",".join(f"{host}:{port}" for host, port in split_bootstrap(name))
    wait_ready(bootstrap, timeout=ready_timeout, what=f"Kafka at {bootstrap}")
    yield ExternalBroker(bootstrap=bootstrap)
