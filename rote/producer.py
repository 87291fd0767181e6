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
        options = {"acks": "all", "linger_ms": 5, "retries": 5, **kafka_options}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), **options)

    def send(self, event: UserAction | Mapping[str, Any]) -> UserAction:
        """Validate and send one event; raises `rote.errors.ValidationError` with the reason if invalid."""
        action = event if isinstance(event, UserAction) else decode(UserAction, dict(event))
        self._producer.send(self.topic, key=action.user_id.encode(), value=encode(action))
        return action

    def send_many(self, events: Iterable[UserAction | Mapping[str, Any]]) -> int:
        n = 0
        for event in events:
            self.send(event)
            n += 1
        return n

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)
        self._producer.close(timeout=timeout)

    def __enter__(self) -> ActionProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
