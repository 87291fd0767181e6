"""rote.metrics: exposition passes `promtool check metrics`, names and labels follow the conventions,
and the helpers (dead-letter kinds, consumer lag, zero-initialised series, serve) do what they claim."""

from __future__ import annotations

import random
import subprocess
import time
import urllib.request

import pytest
from fake_exporter import tick
from prom_harness import PROMTOOL, require_binary
from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.parser import text_string_to_metric_families

from rote import metrics as m
from rote.errors import ValidationError
from rote.streams.schemas import UserAction, decode

FORBIDDEN_LABELS = {"user_id", "automation_id", "candidate_id", "run_id", "event_id", "session_id", "case_id"}


def _rote_metrics() -> list[Counter | Gauge | Histogram | Info]:
    return [v for v in vars(m).values() if isinstance(v, Counter | Gauge | Histogram | Info)]


@pytest.fixture(scope="module")
def scrape() -> str:
    """A live scrape over HTTP of the registry, with every metric set."""
    m.init_known_series()
    tick(random.Random(1))
    m.ANOMALIES.labels(severity="warning", signal="duration_seconds").inc()
    server = m.serve(0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as resp:
            assert resp.status == 200
            return str(resp.read().decode())
    finally:
        server.close()


def test_promtool_check_metrics_is_clean_on_a_live_scrape(scrape: str) -> None:
    promtool = require_binary(PROMTOOL)
    result = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_has_samples_in_the_scrape(scrape: str) -> None:
    assert "_created" not in scrape
    families = {f.name: f for f in text_string_to_metric_families(scrape)}
    for metric in _rote_metrics():
        name = metric._name  # the family name (counters without _total)
        if isinstance(metric, Info):
            name += "_info"
        assert name in families, f"{name} missing from the scrape"
        assert families[name].samples, f"{name} has no samples"


def test_names_follow_prometheus_conventions() -> None:
    for metric in _rote_metrics():
        name = metric._name
        assert name.startswith("rote_"), name
        if isinstance(metric, Counter):
            # prometheus_client stores counters without the suffix and exposes `<name>_total`.
            assert not name.endswith("_total"), name
        for bad in ("_ms", "_milliseconds", "_hours", "_minutes", "_kb", "_mb", "_percent"):
            assert bad not in name, f"{name}: use base units"


def test_no_unbounded_labels() -> None:
    for metric in _rote_metrics():
        assert not FORBIDDEN_LABELS & set(metric._labelnames), f"{metric._name}: {metric._labelnames}"


def test_known_series_start_at_zero_so_the_first_event_is_an_increase() -> None:
    m.init_known_series()
    value = m.REGISTRY.get_sample_value(
        "rote_dead_letters_total", {"topic": "user-actions", "reason": "missing_field"}
    )
    assert value is not None
    for state in m.LIFECYCLE_STATES:
        assert m.REGISTRY.get_sample_value("rote_automations", {"state": state}) is not None
    assert (
        m.REGISTRY.get_sample_value(
            "rote_sandbox_runs_total", {"language": "bash", "verdict": "failed", "stop_reason": "seccomp"}
        )
        is not None
    )
    assert (
        m.REGISTRY.get_sample_value(
            "rote_anomalies_total", {"severity": "critical", "signal": "failure_ratio"}
        )
        is not None
    )


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"\xff\xfe", "encoding"),
        (b"{not json", "json"),
        (b"[1, 2]", "shape"),
        (b'{"event_id": "e"}', "missing_field"),
        (
            b'{"event_id": "e", "user_id": "u", "timestamp": "yesterday", "app": "x", "action_type": "y"}',
            "invalid_field",
        ),
    ],
)
def test_dead_letter_reason_classifies_real_validation_errors(payload: bytes, kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode(UserAction, payload)
    assert m.dead_letter_reason(info.value.reason) == kind
    assert kind in m.DEAD_LETTER_REASONS


def test_lag_by_topic_sums_partitions_and_handles_uncommitted_and_truncation() -> None:
    lags = m.lag_by_topic(
        [
            m.PartitionOffsets(topic="user-actions", partition=0, log_end=100, committed=90),
            m.PartitionOffsets(topic="user-actions", partition=1, log_end=50, committed=None, log_start=20),
            m.PartitionOffsets(topic="metrics", partition=0, log_end=10, committed=12),
        ]
    )
    assert lags == {"user-actions": 10 + 30, "metrics": 0}


def test_record_consumer_lag_removes_topics_the_group_stopped_reading() -> None:
    def lag(topic: str) -> float | None:
        labels = {"topic": topic, "group": "g-test", "agent": m.lag_agent(topic)}
        return m.REGISTRY.get_sample_value("rote_consumer_lag_messages", labels)

    m.record_consumer_lag("g-test", {"user-actions": 5, "metrics": 2})
    assert lag("metrics") == 2
    m.record_consumer_lag("g-test", {"user-actions": 7})
    assert lag("metrics") is None
    assert lag("user-actions") == 7


def test_set_gauge_by_label_zeroes_states_missing_from_the_snapshot() -> None:
    m.set_gauge_by_label(m.AUTOMATIONS, {"active": 4, "testing": 1}, m.LIFECYCLE_STATES)
    m.set_gauge_by_label(m.AUTOMATIONS, {"active": 5}, m.LIFECYCLE_STATES)
    assert m.REGISTRY.get_sample_value("rote_automations", {"state": "testing"}) == 0
    assert m.REGISTRY.get_sample_value("rote_automations", {"state": "active"}) == 5


def test_score_band_edges() -> None:
    assert [m.score_band(s) for s in (0, 24.9, 25, 50, 74.99, 75, 100)] == [
        "0-25",
        "0-25",
        "25-50",
        "50-75",
        "50-75",
        "75-100",
        "75-100",
    ]


def test_sandbox_registry_does_not_export_worker_gauges() -> None:
    server = m.serve(0, "127.0.0.1", registry=m.SANDBOX_REGISTRY)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    assert "rote_sandbox_runs_total" in text
    assert "process_cpu_seconds_total" in text
    assert "rote_roi_ratio" not in text
    assert "rote_time_saved_seconds_total" not in text


@pytest.mark.integration
@pytest.mark.tansu
def test_collect_consumer_lag_against_the_embedded_broker() -> None:
    """Committed offsets and log ends read from a real broker: 10 records, 4 consumed and committed."""
    from dataclasses import replace

    from kafka import KafkaConsumer, KafkaProducer

    from rote.brokers import create_topics, start_broker
    from rote.streams.topics import USER_ACTIONS

    topic = "lag-probe"
    with start_broker(None) as broker:
        create_topics(broker.bootstrap, [replace(USER_ACTIONS, name=topic, partitions=2)])
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for i in range(10):
            producer.send(topic, value=b"x", partition=i % 2)
            # One record per batch: Tansu 0.6 reports a batch's high watermark as base offset + 1.
            producer.flush()
        producer.close()

        assert m.collect_consumer_lag(broker.bootstrap, "lag-group", [topic]) == {topic: 10}

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id="lag-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 4 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000, max_records=4 - seen).values():
                seen += len(records)
        consumer.commit()
        consumer.close()

        assert seen == 4
        assert m.collect_consumer_lag(broker.bootstrap, "lag-group", [topic]) == {topic: 6}
        assert (
            m.REGISTRY.get_sample_value(
                "rote_consumer_lag_messages",
                {"topic": topic, "group": "lag-group", "agent": m.lag_agent(topic)},
            )
            == 6
        )


def test_old_hours_gauge_name_records_seconds() -> None:
    m.CANDIDATE_HOURS_SAVED_PER_YEAR.set(2.5)
    assert m.REGISTRY.get_sample_value("rote_candidate_yearly_savings_seconds") == 9000.0


def test_every_app_ids_feed_lag_is_the_efficiency_trackers() -> None:
    """The feed is `<app id>-optimizer-feed`: its lag is named for its reader whatever the app id."""
    for feed in ("rote-optimizer-feed", "rote-chaos-optimizer-feed"):
        assert m.lag_agent(feed) == "efficiency-tracker"
    assert m.lag_agent("user-actions") == "task-identifier" and m.lag_agent("elsewhere") == "other"
