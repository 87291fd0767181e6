"""A small producer API for applications that emit user-action events.

It validates each event before sending, so a bug in an emitting application surfaces as an exception at
its source rather than as a dead letter somewhere downstream, and redacts what people type (passwords,
e-mail addresses, card numbers ...: `rote.privacy`) before anything leaves the application. Events are
keyed by user id (the topic's partition key) so one user's actions stay in order.

Batching: each user's actions are held for at most `linger_seconds` (or until `max_batch` of them) and
sent as one `UserActionBatch` message. A Kafka message and a stream-processing step cost far more than one
action's work, so batching is what lets one worker keep up with thousands of people (docs/benchmarks.md);
with `linger_seconds=0` every action is sent at once, as a single `UserAction`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from rote.errors import BrokerError
from rote.privacy import redact_action
from rote.streams.fast import encode_batch
from rote.streams.schemas import UserAction, decode, encode
from rote.streams.topics import USER_ACTIONS

#: Actions per batch message at most (the task identifier accepts up to streams.schemas.MAX_BATCH_ACTIONS).
DEFAULT_MAX_BATCH = 500
#: How long an action may wait for others of its user before its batch is sent.
DEFAULT_LINGER_SECONDS = 0.05


class ActionProducer:
    """Send validated, redacted `UserAction` events to `user-actions` with kafka-python, batched per user.

    >>> with ActionProducer("localhost:9092") as p:          # doctest: +SKIP
    ...     p.send({"event_id": "e1", "user_id": "ana", "timestamp": "2024-05-01T09:00:00Z",
    ...             "app": "Excel", "action_type": "copyCell", "target": {"cell": "A2"}, "value": "John"})
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = USER_ACTIONS.name,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
        max_batch: int = DEFAULT_MAX_BATCH,
        **kafka_options: Any,
    ) -> None:
        from rote.brokers.security import kafka_python_kwargs

        if not 1 <= max_batch <= 2000:
            raise ValueError("max_batch must be within 1..2000")
        self.topic = topic
        self.linger_seconds = max(0.0, linger_seconds)
        self.max_batch = max_batch
        options = {
            "acks": "all",
            "linger_ms": 5,
            "retries": 5,
            "max_request_size": 4 * 1024 * 1024,
            **kafka_python_kwargs(),
            **kafka_options,
        }
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), **options)
        self._pending: list[Any] = []
        self._buffers: dict[str, list[UserAction]] = {}
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.linger_seconds > 0:
            self._flusher = threading.Thread(target=self._flush_lingering, name="rote-producer", daemon=True)
            self._flusher.start()

    def send(self, event: UserAction | Mapping[str, Any]) -> UserAction:
        """Validate, redact and queue one event (sent within the linger); raises
        `rote.errors.ValidationError` with the reason if it is invalid. Returns what will be sent."""
        action = event if isinstance(event, UserAction) else decode(UserAction, dict(event))
        action = redact_action(action)  # rote.privacy: nothing typed into a password field leaves the app
        if self.linger_seconds == 0:
            with self._lock:
                self._pending.append(
                    self._producer.send(self.topic, key=action.user_id.encode(), value=encode(action))
                )
            return action
        with self._lock:
            buf = self._buffers.setdefault(action.user_id, [])
            if not buf:
                self._since[action.user_id] = time.monotonic()
            buf.append(action)
            if len(buf) >= self.max_batch:
                self._send_user(action.user_id)
        return action

    def send_many(self, events: Iterable[UserAction | Mapping[str, Any]]) -> int:
        n = 0
        for event in events:
            self.send(event)
            n += 1
        return n

    def _send_user(self, user_id: str) -> None:
        """Send one user's buffered actions as one message (caller holds the lock)."""
        actions = self._buffers.pop(user_id, [])
        self._since.pop(user_id, None)
        if not actions:
            return
        value = encode(actions[0]) if len(actions) == 1 else encode_batch(user_id, actions)
        self._pending.append(self._producer.send(self.topic, key=user_id.encode(), value=value))

    def _flush_lingering(self) -> None:
        while not self._closed.wait(self.linger_seconds / 2):
            now = time.monotonic()
            with self._lock:
                for user_id in [u for u, t in self._since.items() if now - t >= self.linger_seconds]:
                    self._send_user(user_id)

    def flush(self, timeout: float | None = None) -> None:
        """Send every held action and wait until all are acknowledged; raises `BrokerError` if any was not.

        kafka-python's own flush returns even when deliveries failed, so each send's result is checked.
        """
        with self._lock:
            for user_id in list(self._buffers):
                self._send_user(user_id)
            pending, self._pending = self._pending, []
        self._producer.flush(timeout=timeout)
        failed = []
        for future in pending:
            try:
                future.get(timeout=timeout or 30)
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise BrokerError(f"{len(failed)} of {len(pending)} messages were not delivered: {failed[0]!r}")

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout=timeout)
        finally:
            self._closed.set()
            if self._flusher is not None:
                self._flusher.join(timeout=5)
            self._producer.close(timeout=timeout)

    def __enter__(self) -> ActionProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
