"""Replaying a UI log onto `user-actions`, with the demo's malformed events mixed in."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rote.pipeline.options import Progress, RunOptions
from rote.pipeline.watch import bar as _bar
from rote.streams.topics import USER_ACTIONS

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


async def replay_log(bootstrap: str, path: Path, fmt: str, options: RunOptions, state: Progress) -> None:
    from aiokafka import AIOKafkaProducer

    from rote.importers import iter_records

    records = list(iter_records(path, fmt=fmt, user_id=options.user_id))  # type: ignore[arg-type]
    state.replay_total = len(records) + (len(MALFORMED) if options.inject else 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        bar = _bar(options, "replay", state.replay_total)
        prev: datetime | None = None
        bad = list(MALFORMED) if options.inject else []
        stride = max(1, len(records) // (len(bad) + 1))
        for i, rec in enumerate(records):
            ts = _timestamp(rec.payload)
            if options.speed > 0 and prev is not None and ts is not None:
                await asyncio.sleep(max(0.0, (ts - prev).total_seconds() / options.speed))
            prev = ts or prev
            key = str(rec.payload.get("user_id") or options.user_id).encode()
            await producer.send(USER_ACTIONS.name, json.dumps(rec.payload).encode(), key=key)
            state.produced += 1
            if bad and i % stride == stride - 1:
                _label, payload = bad.pop(0)
                await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
                state.injected_bad += 1
            bar(1 + (1 if state.injected_bad and i % stride == stride - 1 else 0))
        for _label, payload in bad:
            await producer.send(USER_ACTIONS.name, payload, key=options.user_id.encode())
            state.injected_bad += 1
            bar(1)
        await producer.flush()
    finally:
        await producer.stop()
    state.replay_done = True


def _timestamp(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("timestamp")
    if not isinstance(raw, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return None
