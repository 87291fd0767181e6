"""Replaying a UI log onto `user-actions`, with the demo's malformed events mixed in.

The file has been read whole before the broker started (`rote.importers.read_log`), so a file that cannot be
used never gets this far. Rows the importer rejected go straight to `dead-letters` with the importer's own
reason (file, line, cause) rather than onto `user-actions` to be rejected again with a vaguer one; valid
rows go to `user-actions`; an event the broker refuses is dead-lettered too, and the replay goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

from rote import metrics
from rote.brokers.security import aiokafka_kwargs
from rote.importers import ImportedLog, ImportedRecord, dead_letter, metric_reason
from rote.pipeline.options import Progress, RunOptions
from rote.pipeline.watch import bar as _bar
from rote.streams.fast import encode_batch
from rote.streams.schemas import encode
from rote.streams.topics import DEAD_LETTERS, USER_ACTIONS

log = logging.getLogger("rote.replay")

#: Malformed payloads a real producer fleet sends sooner or later, one of each kind.
MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("truncated JSON", b'{"event_id": "bad-1", "user_id": "demo", "timest'),
    ("not UTF-8", b"\xff\xfe\x00garbage"),
    ("JSON array", b'[{"event_id": "bad-3"}]'),
    ("missing fields", b'{"event_id": "bad-4", "app": "Excel"}'),
    (
        "bad timestamp",
        b'{"event_id": "bad-5", "user_id": "demo", "timestamp": "yesterday", "app": "Excel",'
        b' "action_type": "copy"}',
    ),
)


async def _reject(producer: Any, rec: ImportedRecord, imported: ImportedLog, state: Progress) -> None:
    """Dead-letter a row the importer (or the broker) refused, with its reason, and count it."""
    letter = dead_letter(rec, imported.path)
    await producer.send(DEAD_LETTERS.name, encode(letter), key=USER_ACTIONS.name.encode())
    metrics.DEAD_LETTERS.labels(topic=USER_ACTIONS.name, reason=metric_reason(rec.kind)).inc()
    state.import_rejected += 1


#: Actions per batch message on `user-actions` (the producer API and `rote produce` use the same bound).
BATCH_ACTIONS = 500
#: ... and payload bytes per batch, well under the broker's 1 MiB default message limit.
BATCH_BYTES = 512 * 1024


async def replay_log(bootstrap: str, imported: ImportedLog, options: RunOptions, state: Progress) -> None:
    """Send the log's valid rows as per-user batches (`UserActionBatch`), its rejected rows to dead-letters.

    Consecutive rows of one user go out as one batch message (up to `BATCH_ACTIONS`), as the producer API
    sends them; with `--speed` the log's own pace is kept, so each row goes out on its own at its time.
    """
    from aiokafka import AIOKafkaProducer

    records = imported.records
    state.replay_total = len(records) + (len(MALFORMED) if options.inject else 0)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024, **aiokafka_kwargs()
    )
    await producer.start()
    pending: list[ImportedRecord] = []
    pending_bytes = 0

    async def flush() -> None:
        nonlocal pending_bytes
        batch, pending[:] = list(pending), []
        pending_bytes = 0
        if batch:
            await _send_batch(producer, batch, imported, options, state)

    try:
        bar = _bar(state, "replay", state.replay_total)
        prev: datetime | None = None
        bad = list(MALFORMED) if options.inject else []
        stride = max(1, len(records) // (len(bad) + 1))
        for i, rec in enumerate(records):
            if rec.error is not None:
                await _reject(producer, rec, imported, state)
            else:
                ts = _timestamp(rec.payload)
                if options.speed > 0 and prev is not None and ts is not None:
                    await flush()
                    await asyncio.sleep(max(0.0, (ts - prev).total_seconds() / options.speed))
                prev = ts or prev
                size = len(json.dumps(rec.payload))
                if pending and (
                    _user(pending[0], options) != _user(rec, options)
                    or len(pending) >= BATCH_ACTIONS
                    or pending_bytes + size > BATCH_BYTES
                ):
                    await flush()
                pending.append(rec)
                pending_bytes += size
            injected = False
            if bad and i % stride == stride - 1:
                await flush()
                _label, payload = bad.pop(0)
                await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
                state.injected_bad += 1
                injected = True
            bar(1 + injected)  # the row, and the malformed event sent after it if one was
        await flush()
        for _label, payload in bad:
            await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
            state.injected_bad += 1
            bar(1)
        await producer.flush()
    finally:
        await producer.stop()
    state.replay_done = True


def _user(rec: ImportedRecord, options: RunOptions) -> str:
    return str(rec.payload.get("user_id") or options.user_id)


async def _send_batch(
    producer: Any, batch: list[ImportedRecord], imported: ImportedLog, options: RunOptions, state: Progress
) -> None:
    """One user's rows as one batch message. If the broker refuses a batch, its rows go one by one, so a
    row the broker cannot take (over its size limit) is dead-lettered alone and the others still go."""
    from aiokafka.errors import KafkaError

    user = _user(batch[0], options)
    try:
        body = encode_batch(user, [rec.payload for rec in batch]) if len(batch) > 1 else None
        if body is None:
            body = json.dumps(batch[0].payload).encode()
        await producer.send(USER_ACTIONS.name, body, key=user.encode())
        state.produced += len(batch)
        return
    except KafkaError as exc:
        if len(batch) == 1:  # e.g. over the broker's message size: this event, not the replay
            rec = batch[0]
            log.warning("%s line %s: the broker refused the event: %s", imported.path.name, rec.line, exc)
            await _reject(producer, _refused(rec, exc), imported, state)
            return
    for rec in batch:
        await _send_batch(producer, [rec], imported, options, state)


def _refused(rec: ImportedRecord, exc: Exception) -> ImportedRecord:
    body = json.dumps(rec.payload).encode()
    return ImportedRecord(
        line=rec.line,
        payload=rec.payload,
        error=f"line {rec.line}: the broker refused it ({type(exc).__name__}: {exc})",
        kind="too large" if "size" in type(exc).__name__.lower() else "invalid event",
        raw=body[:65536],
        raw_size=len(body),
    )


def _timestamp(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("timestamp")
    if not isinstance(raw, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return None
