"""When `rote run --once` may stop: never between the executor's last publish and the recorder's read of it.

Last CI: the demo's 50 runs were all answered, the pipeline had been quiet through the last slow runs, and
the run stopped before the recorder fetched the 50th metric (the summary said 49 production runs). The
watcher now also waits until the recorder has read back every production run the executor published.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rote.archive import ArchiveWriter, read_raw
from rote.pipeline.options import Progress
from rote.pipeline.recorder import _observe
from rote.pipeline.watch import production_recorded

#: the run's key (`rote run` makes one and hands it to every component, the recorder too)
KEY = b"run-watch-test-key-of-32-bytes-at-least"


def _metric(run_id: str, source: str, key: bytes = KEY) -> bytes:
    """A run metric as the executor (or the sandbox) publishes it: signed."""
    from datetime import UTC, datetime

    from rote.security.verdicts import sign
    from rote.streams.schemas import RunMetric, encode

    m = RunMetric(
        run_id=run_id,
        automation_id="a-1",
        version=1,
        source=source,
        started_at=datetime(2026, 12, 2, 9, tzinfo=UTC),
        duration_seconds=1.0,
        success=True,
    )
    return encode(sign(m, key))


def test_a_published_run_the_recorder_has_not_read_keeps_the_run_going(tmp_path: Path) -> None:
    archive = ArchiveWriter(tmp_path)
    state = Progress(production_done=True)
    state.production_published.update({"r-1", "r-2"})
    _observe("metrics", _metric("r-1", "production"), archive, state, KEY)
    _observe("metrics", _metric("r-2", "sandbox"), archive, state, KEY)  # a test run is not the demo's
    assert not production_recorded(state)
    forged = _metric("r-2", "production", b"not-the-runs-key-but-32-bytes-long!")
    _observe("metrics", forged, archive, state, KEY)  # a run no executor of this run reported
    assert not production_recorded(state)
    _observe("metrics", _metric("r-2", "production"), archive, state, KEY)
    assert production_recorded(state)
    archive.close()
    assert len(list(read_raw(tmp_path, "metrics"))) == 3


def test_unanswered_demo_runs_keep_the_run_going_even_when_all_published_were_read(tmp_path: Path) -> None:
    state = Progress()
    assert not production_recorded(state)  # the demo has not finished asking
    state.production_done = True
    assert production_recorded(state)  # no demo (or nothing to run): nothing to wait for


def test_a_batch_of_sandbox_tests_under_way_keeps_a_quiet_run_going(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sandbox publishes a batch's results at its end; a batch in Chromium can outlast the quiet spell."""
    import asyncio
    import time

    import rote.pipeline.watch as watch
    from rote.pipeline.options import RunOptions
    from rote.pipeline.watch import watch_until_done

    monkeypatch.setattr(watch, "SAY_WAITING_EVERY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="rote.run")
    state = Progress(replay_done=True, production_done=True, last_event=time.monotonic() - 60)
    testing = {"records": 2}
    stops: list[float] = []

    async def go() -> None:
        stop = asyncio.Event()
        began = time.monotonic()
        watcher = asyncio.create_task(
            watch_until_done(
                RunOptions(quiet_seconds=0.0),
                state,
                began,
                stop,
                {"seen": 0, "reported_seen": 0},
                feed_topic="rote-optimizer-feed",
                busy=lambda: testing["records"] > 0,
            )
        )
        await asyncio.sleep(2.0)
        assert not stop.is_set() and not watcher.done()  # everything else says done: only the tests run
        testing["records"] = 0
        await asyncio.wait_for(watcher, 5)
        stops.append(time.monotonic() - began)
        assert stop.is_set() and not state.timed_out

    asyncio.run(go())
    assert stops and stops[0] >= 2.0
    said = [r.getMessage() for r in caplog.records if r.name == "rote.run"]
    assert "waiting for the sandbox's batch of tests" in said and said[-1].startswith("done:"), said


def test_the_archive_keeps_only_what_the_runs_key_holders_signed(tmp_path: Path) -> None:
    """The archive is read after the run without its key (`rote automations run` without a broker counts
    its results as verdicts): an unsigned or forged test result, automation or candidate never reaches it
    (attack sweep of 2026-12-02: hand-made `passed` results verified a forged automation that way)."""
    from test_registry import CFG, file_candidate
    from test_sandbox_verdicts import _result

    from rote.generator import generate
    from rote.security.verdicts import ephemeral_result_key, sign
    from rote.streams.schemas import RunMetric, encode

    key, other = ephemeral_result_key(), ephemeral_result_key()
    archive, state = ArchiveWriter(tmp_path), Progress()
    events = {
        "automations": generate(file_candidate(), config=CFG),
        "candidates": file_candidate(),
        "test-results": _result(),
        "metrics": RunMetric.model_validate_json(_metric("r-1", "production")).model_copy(
            update={"signature": None}
        ),
    }
    for topic, event in events.items():
        _observe(topic, encode(event), archive, state, key)  # unsigned
        _observe(topic, encode(sign(event, other)), archive, state, key)  # forged
        _observe(topic, encode(sign(event, key)), archive, state, key)
        _observe(topic, encode(sign(event, key)), archive, state, None)  # no key to check with
    _observe("optimization-reports", b'{"report_id": "x"}', archive, state, key)  # not a signed kind: kept
    archive.close()
    for topic, event in events.items():
        kept = [r["signature"] for r in read_raw(tmp_path, topic)]
        assert kept == [sign(event, key).signature], topic
    assert len(list(read_raw(tmp_path, "optimization-reports"))) == 1
