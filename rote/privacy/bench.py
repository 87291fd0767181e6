"""`rote bench --only redaction`: what redaction costs per action, and how the libraries compare.

Measured on the bundled log (Leno's StudentRecord recording: 2,409 actions, 17% of them carrying an
e-mail or a phone number), read with redaction off and then redacted here, three ways:

* `struct`: `Redactor.redact_action` on msgspec Structs shaped like UserAction, the worker's hot path;
* `pydantic`: the same on validated `UserAction` models (the producer API);
* `dict`: `Redactor.redact_payload` on the importers' unvalidated dicts.

`cold` is the first pass of a fresh redactor (every string is new: the worst case, as for a burst of new
values), `warm` the median of later passes (labels, URLs and recurring values are remembered). CPU time
of this process (`time.process_time`), so other processes on a shared machine count less; the machine's
speed is given as the cost of one C-level `dict.get`, to scale the numbers to another machine.

The corpus section scores rote's detectors, Presidio's pattern recognizers and DataFog's regex engine
on the same synthetic corpus (see `compare`), when those libraries are installed.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rote.privacy.compare import compare
from rote.privacy.config import RedactionConfig
from rote.privacy.redactor import Redactor


@contextmanager
def _redaction_off() -> Iterator[None]:
    """Read the log as captured, without the importers' own redaction."""
    old = os.environ.get("ROTE_REDACT")
    os.environ["ROTE_REDACT"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ROTE_REDACT", None)
        else:
            os.environ["ROTE_REDACT"] = old


def _structs(actions: Sequence[Any]) -> list[Any] | None:
    """msgspec Structs with UserAction's attribute names, or None without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None

    class Target(msgspec.Struct, frozen=True):
        field: str | None = None
        element: str | None = None
        element_type: str | None = None
        workbook: str | None = None
        sheet: str | None = None
        cell: str | None = None
        column: str | None = None
        row: int | None = None
        url: str | None = None
        file: str | None = None
        title: str | None = None

    class Action(msgspec.Struct, frozen=True):
        event_id: str
        user_id: str
        timestamp: str
        app: str
        action_type: str
        target: Target
        value: str | None = None
        attributes: dict[str, str] = {}

    return [
        Action(
            event_id=a.event_id,
            user_id=a.user_id,
            timestamp=a.timestamp.isoformat(),
            app=a.app,
            action_type=a.action_type,
            target=Target(**a.target.model_dump()),
            value=a.value,
            attributes=dict(a.attributes),
        )
        for a in actions
    ]


def _per_item_us(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    started = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - started) / len(items) * 1e6


def _measure(method: str, items: Sequence[Any], repeats: int, key: bytes) -> dict[str, Any]:
    redactor = Redactor(RedactionConfig(), key=key)
    fn = getattr(redactor, method)
    cold = _per_item_us(fn, items)
    warm = statistics.median(_per_item_us(fn, items) for _ in range(repeats))
    changed = sum(1 for item in items if fn(item) != item)
    return {"cold_us_per_action": round(cold, 2), "warm_us_per_action": round(warm, 2), "changed": changed}


def _dict_get_ns() -> float:
    d = {"a": 1}
    get = d.get
    n = 200_000
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            get("a")
        best = min(best, (time.process_time() - started) / n * 1e9)
    return round(best, 1)


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    from rote.importers import bundled_log, iter_records, load_actions

    path, fmt = bundled_log()
    with _redaction_off():
        actions = load_actions(path, fmt=fmt)
        payloads = [r.payload for r in iter_records(path, fmt=fmt) if r.error is None]
    key = secrets.token_bytes(32)  # a throw-away key: nothing measured here is kept
    repeats = 3 if quick else 9
    out: dict[str, Any] = {
        "log": f"{path.name} ({len(actions)} actions)",
        "dict_get_ns": _dict_get_ns(),
        "target_us_per_action": 3.0,
    }
    structs = _structs(actions)
    if structs is not None:
        out["struct"] = _measure("redact_action", structs, repeats, key)
    out["pydantic"] = _measure("redact_action", actions, repeats, key)
    out["dict"] = _measure("redact_payload", payloads, repeats, key)
    out["corpus"] = compare(subsample=4 if quick else 1)
    return out
