"""A small producer API for applications that emit user-action events.

It validates each event before sending, so a bug in an emitting application surfaces as an exception at
its source rather than as a dead letter somewhere downstream. Events are keyed by user id (the topic's
partition key) so one user's actions stay in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from rote.errors import BrokerError
from rote.privacy import redact_action
from rote.streams.schemas import UserAction, decode, encode
from rote.streams.topics import USER_ACTIONS


class ActionProducer:
    """Send validated `UserAction` events to `user-actions` with kafka-python.

    >>> with ActionProducer("localhost:9092") as p:          # doctest: +SKIP
    ...     p.send({"event_id": "e1", "user_id": "ana", "timestamp": "2024-05-01T09:00:00Z",
    ...             "app": "Excel", "action_type": "copyCell", "target": {"cell": "A2"}, "value": "John"})
    """

    def __init__(
        self, bootstrap_servers: str, *, topic: str = USER_ACTIONS.name, **kafka_options: Any
    ) -> None:
        self.topic = topic
        from rote.brokers.security import kafka_python_kwargs

        options = {"acks": "all", "linger_ms": 5, "retries": 5, **kafka_python_kwargs(), **kafka_options}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), **options)
        self._pending: list[Any] = []

    def send(self, event: UserAction | Mapping[str, Any]) -> UserAction:
        """Validate and send one event; raises `rote.errors.ValidationError` with the reason if invalid."""
        action = event if isinstance(event, UserAction) else decode(UserAction, dict(event))
        action = redact_action(action)  # rote.privacy: nothing typed into a password field leaves the app
        self._pending.append(
            self._producer.send(self.topic, key=action.user_id.encode(), value=encode(action))
        )
        return action

    def send_many(self, events: Iterable[UserAction | Mapping[str, Any]]) -> int:
        n = 0
        for event in events:
            self.send(event)
            n += 1
        return n

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event sent so far is acknowledged; raises `BrokerError` if any was not.

        kafka-python's own flush returns even when deliveries failed, so each send's result is checked.
        """
        self._producer.flush(timeout=timeout)
        pending, self._pending = self._pending, []
        failed = []
        for future in pending:
            try:
                future.get(timeout=timeout or 30)
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise BrokerError(f"{len(failed)} of {len(pending)} events were not delivered: {failed[0]!r}")

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout=timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> ActionProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
