"""The one place the executor's Kafka clients get their connection settings.

Every aiokafka client of `rote runner` (the request consumer, the registry feed, the producer) and of
`rote automations run` is built with `client_kwargs(bootstrap)`, so broker security (SASL/TLS from
`rote.brokers.security`) is wired in here once for all of them.
"""

from __future__ import annotations

from typing import Any


def client_kwargs(bootstrap_servers: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client of the executor: servers and this process's security."""
    from rote.brokers.security import aiokafka_kwargs

    return {"bootstrap_servers": bootstrap_servers, **aiokafka_kwargs()}
