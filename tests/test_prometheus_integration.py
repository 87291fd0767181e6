"""The real Prometheus scraping rote: every dashboard query and recording rule returns data, and an
injected anomaly takes RoteAnomalyDetected through pending to firing.

Two sources are scraped: `tests/fake_exporter.py` (rote.metrics with synthetic values; always runs,
proves the harness and the queries) and `rote run --once --metrics-port P --linger S` (the real
pipeline; an integration test that needs the pipeline's `rote run`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prom_harness import (  # noqa: F401  (prometheus is a fixture)
    PROMTOOL,
    Prometheus,
    free_port,
    prometheus,
    recording_rule_names,
    require_binary,
    wait_until,
)

from rote.dashboards import panel_queries

REPO = Path(__file__).resolve().parents[1]
ALERT = "RoteAnomalyDetected"


def assert_everything_returns_data(prom: Prometheus) -> None:
    empty: list[str] = []
    for q in panel_queries():
        # A window of several scrapes, as Grafana's $__rate_interval would be for a 1 s scrape.
        expr = q.resolved(rate_interval="15s", range_="5m")
        if not prom.query(expr):
            empty.append(f"{q.dashboard} / {q.panel} / {q.ref_id}: {expr}")
    for name in recording_rule_names():
        if not prom.query(name):
            empty.append(f"recording rule {name}")
    assert not empty, "no data for:\n" + "\n".join(empty)


def watch_alert(
    prom: Prometheus, name: str, *, timeout: float, still_running: Callable[[], None] = lambda: None
) -> list[str]:
    """Poll the alert's state until it fires; returns the sequence of distinct states seen.

    `still_running` is called every round and raises when the scraped process died, so a crashed
    pipeline fails the test at once with its log instead of after the whole timeout.
    """
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        still_running()
        states = prom.alert_states(name)
        state = "firing" if "firing" in states else ("pending" if "pending" in states else "inactive")
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "firing":
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{name} did not fire within {timeout}s; states seen: {seen}\n{prom.log_tail()}")


@pytest.fixture
def fake_exporter() -> Iterator[Callable[..., tuple[int, subprocess.Popen[str]]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*, linger: float) -> tuple[int, subprocess.Popen[str]]:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "fake_exporter.py"),
                "--port",
                "0",
                "--linger",
                str(linger),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"exporter said {line!r}"
        return int(line.split()[1]), proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_harness_against_rote_metrics_exporter(
    prometheus: Callable[..., Prometheus],  # noqa: F811
    fake_exporter: Callable[..., tuple[int, subprocess.Popen[str]]],
) -> None:
    port, exporter = fake_exporter(linger=120)
    prom = prometheus(targets=[f"127.0.0.1:{port}"], alert_for="3s")
    prom.wait_for_scrapes(3, timeout=30)

    # Before the injection: the anomaly series exist at zero and the alert is quiet.
    assert prom.query('rote_anomalies_total{severity="critical",signal="duration_seconds"} == 0')
    assert prom.alert_states(ALERT) == []

    exporter.send_signal(signal.SIGUSR1)  # the slowdown happens
    seen = watch_alert(prom, ALERT, timeout=45)
    assert seen[-2:] == ["pending", "firing"], seen
    firing = [a for a in prom.alerts() if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]
    assert len(firing) == 1
    assert firing[0]["labels"] == {
        "alertname": ALERT,
        "severity": "critical",
        "signal": "duration_seconds",
        "service": "rote",
    }
    assert firing[0]["annotations"]["runbook_url"] == "docs/runbooks.md#roteanomalydetected"

    # Rates need a few scrapes of movement; the recording rules one evaluation after that.
    wait_until(lambda: prom.query("rote:time_saved_seconds:rate1h > 0"), timeout=20, what="recording rules")
    assert_everything_returns_data(prom)


@pytest.mark.integration
@pytest.mark.slow
def test_rote_run_scraped_by_prometheus(
    prometheus: Callable[..., Prometheus],  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "rote-run.log"
    log = log_path.open("w")
    # Its own session, so the broker and everything else it starts can be stopped as one group.
    proc = subprocess.Popen(
        # The interpreter running the tests, not whatever `rote` is first on PATH.
        [
            sys.executable,
            "-m",
            "rote.cli",
            "run",
            "--once",
            "--inject-slowdown",
            "--metrics-port",
            str(port),
            "--linger",
            "120",
            "--timeout",
            "420",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
        env={**os.environ, "ROTE_STATE_DIR": str(tmp_path / "state")},
    )

    def still_running() -> None:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"rote run exited with {proc.returncode} before the alert fired:\n{tail}")

    try:
        prom = prometheus(targets=[f"127.0.0.1:{port}"], alert_for="3s")
        # --inject-slowdown: the form replica answers slowly after 40 submissions, so the last real
        # production runs are slow: the anomaly alert must go pending, then firing.
        seen = watch_alert(prom, ALERT, timeout=480, still_running=still_running)
        assert "pending" in seen and seen[-1] == "firing", seen
        firing = [a for a in prom.alerts() if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]
        assert firing and all(a["labels"]["severity"] in ("warning", "critical") for a in firing)
        wait_until(lambda: prom.query("rote:events_consumed:rate5m > 0"), timeout=60, what="rates")
        assert_everything_returns_data(prom)
        # The live endpoint of the real pipeline passes promtool's lint as well.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            scrape = resp.read().decode()
        lint = subprocess.run(
            [require_binary(PROMTOOL), "check", "metrics"], input=scrape, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
