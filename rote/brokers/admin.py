"""Talking to a broker as an administrator: is it up, and do the catalogue's topics exist."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaConfigurationError

from rote.brokers._process import ManagedProcess, port_open
from rote.errors import BrokerError
from rote.streams.topics import TopicSpec

if TYPE_CHECKING:
    from rote.brokers.security import KafkaSecurity

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """'h1:9092,h2:9092' -> [(h1, 9092), (h2, 9092)]; a bare or kafka:// prefix is accepted."""
    out: list[tuple[str, int]] = []
    for part in bootstrap.split(","):
        item = part.strip()
        if "://" in item:
            item = item.split("://", 1)[1]
        item = item.rstrip("/")
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BrokerError(f"bad bootstrap address {part!r}: expected host:port")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise BrokerError(f"empty bootstrap address {bootstrap!r}")
    return out


@contextlib.contextmanager
def admin_client(
    bootstrap: str, *, request_timeout: float = 10.0, security: KafkaSecurity | None = None
) -> Iterator[KafkaAdminClient]:
    """An admin client with this process's Kafka security, or with `security` when given."""
    from rote.brokers.security import current

    ms = max(1000, int(request_timeout * 1000))

    client = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="rote-admin",
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
        **(security or current()).kafka_python_kwargs(),
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _cluster_ready(
    bootstrap: str, request_timeout: float, security: KafkaSecurity | None = None
) -> tuple[bool, str]:
    with admin_client(bootstrap, request_timeout=request_timeout, security=security) as admin:
        cluster: dict[str, Any] = admin.describe_cluster()
    brokers = [b for b in cluster.get("brokers", []) if not b.get("is_fenced", False)]
    if not brokers:
        return False, f"no unfenced broker in cluster metadata yet: {cluster}"
    return True, ""


def wait_ready(
    bootstrap: str,
    *,
    timeout: float,
    process: ManagedProcess | None = None,
    what: str = "broker",
    security: KafkaSecurity | None = None,
) -> float:
    """Block until the cluster answers a metadata request with a live broker; returns seconds waited.

    A TCP accept is not enough: Kafka opens its port before the broker is unfenced, and a client that
    arrives then gets empty metadata. Watching the process at the same time turns a crash at start-up
    into an immediate error with the log, instead of a timeout a minute later.
    """
    start = time.monotonic()
    deadline = start + timeout
    addresses = split_bootstrap(bootstrap)
    last = "port not open yet"
    while True:
        if process is not None and not process.alive():
            raise BrokerError(
                f"{what} exited with code {process.returncode} before it was ready "
                f"(log: {process.log_path}):\n{process.log_tail()}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = f"\n{process.log_tail()}" if process is not None else ""
            where = f" (log: {process.log_path})" if process is not None else ""
            raise BrokerError(f"{what} at {bootstrap} not ready after {timeout:.0f} s: {last}{where}{tail}")
        if any(port_open(host, port, timeout=min(0.5, remaining)) for host, port in addresses):
            try:
                ok, last = _cluster_ready(
                    bootstrap, request_timeout=min(2.0, max(1.0, remaining)), security=security
                )
            except KafkaConfigurationError:
                raise
            except Exception as exc:  # any other client error just means "not yet"
                ok, last = False, f"{type(exc).__name__}: {exc}"
            if ok:
                return time.monotonic() - start
        time.sleep(0.1)


def create_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    replication: int = 1,
    timeout: float = 30.0,
    security: KafkaSecurity | None = None,
) -> None:
    """Create the topics from the catalogue that are missing; leave the ones that exist.

    Idempotent so that every `rote run` and every test can call it. An existing topic with a different
    partition count is an error rather than something to paper over: the key-to-partition mapping,
    and so which worker owns which user's state, depends on it.
    """
    wanted = {spec.name: spec for spec in specs}
    if not wanted:
        return
    with admin_client(bootstrap, request_timeout=timeout, security=security) as admin:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            request = {
                name: {
                    "num_partitions": wanted[name].partitions,
                    "replication_factor": replication,
                    "configs": wanted[name].config(),
                }
                for name in missing
            }
            response = admin.create_topics(request, timeout_ms=int(timeout * 1000), raise_errors=False)
            errors = [
                f"{t['name']}: {t.get('error_message') or t['error_code']}"
                for t in response.get("topics", [])
                if t.get("error_code") not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if errors:
                raise BrokerError(f"could not create topics on {bootstrap}: {'; '.join(errors)}")
            log.info("created topics %s on %s", ", ".join(missing), bootstrap)
        try:
            admin.wait_for_topics(list(wanted), timeout_ms=int(timeout * 1000))
        except Exception as exc:
            raise BrokerError(f"topics not ready on {bootstrap}: {exc}") from exc
        described = admin.describe_topics(list(wanted))
    mismatched = [
        f"{t['name']} has {len(t['partitions'])} partitions, the catalogue says "
        f"{wanted[t['name']].partitions}"
        for t in described
        if t["name"] in wanted and len(t["partitions"]) != wanted[t["name"]].partitions
    ]
    if mismatched:
        raise BrokerError("existing topics do not match the catalogue: " + "; ".join(mismatched))
