"""The one place the executor's Kafka clients get their connection settings.

Every aiokafka client of `rote runner` (the request consumer, the registry feed, the producer) and of
`rote automations run` is built with `client_kwargs(bootstrap)`, so broker security (SASL/TLS, when the
project's settings helper for it lands in `rote.brokers`) is wired in here once for all of them.
"""

from __future__ import annotations

from typing import Any


def client_kwargs(bootstrap_servers: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client of the executor (today: the bootstrap servers only)."""
    return {"bootstrap_servers": bootstrap_servers}
