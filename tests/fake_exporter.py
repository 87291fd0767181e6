"""A stand-in rote process for the Prometheus harness test: serves rote.metrics.REGISTRY with every
metric set and moving, and injects one critical anomaly when sent SIGUSR1.

It goes through the same code a real worker uses (`init_known_series`, `serve`, the metric objects),
so what Prometheus scrapes is exactly what rote exposes; only the values are synthetic.

    python tests/fake_exporter.py --port 0 --linger 60
prints `PORT <n>` on stdout once serving. The test triggers the anomaly only after Prometheus has
scraped the zero-valued series, as a real slowdown would come after the process started.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time

from rote import metrics as m
from rote.streams.topics import CATALOGUE


def tick(rng: random.Random) -> None:
    """One round of simulated pipeline activity."""
    now = time.time()
    agents = ("task-identifier", "automation-generator", "performance-monitor", "efficiency-tracker")
    for topic in CATALOGUE:
        m.EVENTS_CONSUMED.labels(topic=topic.name, agent=agents[hash(topic.name) % len(agents)]).inc(
            rng.randint(1, 20)
        )
        m.EVENTS_PRODUCED.labels(topic=topic.name, agent=agents[hash(topic.name) % len(agents)]).inc(
            rng.randint(0, 5)
        )
    m.DEAD_LETTERS.labels(topic="user-actions", reason=m.dead_letter_reason("payload is not JSON: x")).inc()
    m.record_consumer_lag("rote", {"user-actions": rng.randint(0, 50), "metrics": rng.randint(0, 5)})
    for agent in agents:
        m.PROCESSING_SECONDS.labels(agent=agent).observe(rng.uniform(0.0005, 0.02))
        m.EVENT_AGE_SECONDS.labels(agent=agent).observe(rng.uniform(0.01, 0.5))
        m.LAST_EVENT_TIMESTAMP.labels(agent=agent).set(now)
    m.set_gauge_by_label(m.CANDIDATES, {"75-100": 3, "50-75": 5, "25-50": 2}, m.SCORE_BANDS)
    m.CANDIDATE_YEARLY_SAVINGS_SECONDS.set(3600 * 120)
    m.set_gauge_by_label(m.AUTOMATIONS, {"active": 2, "verified": 1, "rejected": 1}, m.LIFECYCLE_STATES)
    m.SANDBOX_RUNS.labels(language="python", verdict="passed", stop_reason="exited").inc(3)
    m.SANDBOX_RUNS.labels(language="bash", verdict="error", stop_reason="timeout").inc()
    m.SANDBOX_RUN_SECONDS.labels(language="python").observe(rng.uniform(0.05, 0.4))
    m.SANDBOX_RUN_SECONDS.labels(language="bash").observe(rng.uniform(0.05, 0.4))
    for source in m.RUN_SOURCES:
        m.AUTOMATION_RUNS.labels(source=source, outcome=m.run_outcome(rng.random() > 0.1)).inc()
        m.AUTOMATION_RUN_SECONDS.labels(source=source).observe(rng.uniform(0.5, 2.0))
    m.ANOMALY_SCORE.labels(signal="duration_seconds").observe(rng.uniform(0, 0.6))
    m.TIME_SAVED_SECONDS.inc(rng.uniform(20, 40))
    m.MANUAL_BASELINE_SECONDS.set(45.0)
    m.ROI_RATIO.set(1.8)
    m.OPTIMIZATION_SCORE.set(0.72)
    m.REPORTS_PUBLISHED.inc()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--linger", type=float, default=60.0)
    args = parser.parse_args()

    inject = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: inject.set())
    m.init_known_series()
    server = m.serve(args.port, "127.0.0.1")
    print(f"PORT {server.port}", flush=True)
    rng = random.Random(7)
    start = time.monotonic()
    injected = False
    while time.monotonic() - start < args.linger:
        tick(rng)
        if inject.is_set() and not injected:
            m.ANOMALIES.labels(severity="critical", signal="duration_seconds").inc()
            m.ANOMALY_SCORE.labels(signal="duration_seconds").observe(0.99)
            injected = True
        time.sleep(0.2)
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
