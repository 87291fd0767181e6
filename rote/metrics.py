"""Every Prometheus metric rote exports, defined once.

Names follow Prometheus conventions: base units (`_seconds`, `_bytes`), `_total` on counters, `_ratio` for
ratios. Labels are low-cardinality enumerations only: never a user id or an automation id (per-automation
detail lives in the registry and the reports, not in label sets that would grow without bound).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)

from rote.streams.schemas import Language, Lifecycle, StopReason, Verdict

# `<name>_created` gauges double the series count and nothing in rote's dashboards or alerts reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
# Process CPU, memory, open fds and start time: the dashboards' resource panels and `up`-style checks
# need them from every rote process, and they are free (read from /proc).
REGISTRY.register(PROCESS_COLLECTOR)
REGISTRY.register(PLATFORM_COLLECTOR)

#: Where the worker / `rote run` serves /metrics unless told otherwise (same default as
#: `rote.config.Settings.metrics_port`, env ROTE_METRICS_PORT); the standalone sandbox runner uses the
#: next port.
DEFAULT_METRICS_PORT: Final = 9464
DEFAULT_SANDBOX_METRICS_PORT: Final = 9465

BUILD_INFO = Info("rote_build", "Version of rote serving these metrics.", registry=REGISTRY)

EVENTS_CONSUMED = Counter(
    "rote_events_consumed_total",
    "Events read from a topic by a rote process.",
    ["topic", "agent"],
    registry=REGISTRY,
)
EVENTS_PRODUCED = Counter(
    "rote_events_produced_total",
    "Events written to a topic by a rote process.",
    ["topic", "agent"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "rote_dead_letters_total",
    "Events rejected at ingress and sent to the dead-letter topic, by source topic and kind of fault.",
    ["topic", "reason"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "rote_consumer_lag_messages",
    "Messages between the group's committed position and the log end, summed over partitions, by the agent"
    " that reads the topic.",
    ["topic", "group", "agent"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "rote_processing_seconds",
    "Time an agent spent handling one event.",
    ["agent"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
EVENT_AGE_SECONDS = Histogram(
    "rote_event_age_seconds",
    "Seconds from an event's broker timestamp to the moment an agent handled it (end-to-end latency).",
    ["agent"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
    registry=REGISTRY,
)
LAST_EVENT_TIMESTAMP = Gauge(
    "rote_last_event_timestamp_seconds",
    "Unix time at which an agent last handled an event (the dashboards show the time since).",
    ["agent"],
    registry=REGISTRY,
)
STATE_RECORDS_REJECTED = Counter(
    "rote_state_records_rejected_total",
    "State records read back from a changelog that did not decode as that state's data (skipped, never run).",
    ["state", "record"],
    registry=REGISTRY,
)
STREAM_GAPS = Counter(
    "rote_stream_gaps_total",
    "Partitions whose first event after a rebalance came after the committed offset: the events between "
    "were skipped, so the worker stopped instead of committing past them (agents/ordering.py).",
    ["topic"],
    registry=REGISTRY,
)
STATE_CHECKPOINT_BYTES = Histogram(
    "rote_state_checkpoint_bytes",
    "Size of each state checkpoint written to a changelog.",
    ["state"],
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576),
    registry=REGISTRY,
)
USER_ACTIONS_TOTAL = Counter(
    "rote_user_actions_total",
    "User actions taken in by the task identifier (one message may batch many), by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
CANDIDATES = Gauge(
    "rote_candidates",
    "Routine candidates currently known, by automation-potential score band.",
    ["score_band"],
    registry=REGISTRY,
)
CANDIDATE_YEARLY_SAVINGS_SECONDS = Gauge(
    "rote_candidate_yearly_savings_seconds",
    "Estimated seconds per year the current candidates would save if automated (base unit, not hours).",
    registry=REGISTRY,
)


class _HoursToSeconds:
    """Keeps callers of the old hours gauge working while exporting base units only.

    `rote_candidate_hours_saved_per_year` failed `promtool check metrics` (non-base unit); the metric is
    now seconds. Code written against the old name may keep calling `.set(hours)`; new code should set
    CANDIDATE_YEARLY_SAVINGS_SECONDS in seconds.
    """

    def set(self, hours: float) -> None:
        CANDIDATE_YEARLY_SAVINGS_SECONDS.set(hours * 3600.0)


#: Deprecated: takes hours, records seconds in CANDIDATE_YEARLY_SAVINGS_SECONDS.
CANDIDATE_HOURS_SAVED_PER_YEAR: Final = _HoursToSeconds()
AUTOMATIONS = Gauge(
    "rote_automations",
    "Automations in the registry by lifecycle state.",
    ["state"],
    registry=REGISTRY,
)
SANDBOX_RUNS = Counter(
    "rote_sandbox_runs_total",
    "Sandboxed test runs by language, verdict and the reason the run stopped.",
    ["language", "verdict", "stop_reason"],
    registry=REGISTRY,
)
SANDBOX_RUN_SECONDS = Histogram(
    "rote_sandbox_run_seconds",
    "Wall time of one sandboxed test run, jail set-up included.",
    ["language"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
AUTOMATION_RUNS = Counter(
    "rote_automation_runs_total",
    "Automation runs reported on the metrics topic, by source and outcome.",
    ["source", "outcome"],
    registry=REGISTRY,
)
OUT_OF_ORDER = Counter(
    "rote_out_of_order_observations_total",
    "Run reports timestamped at (duplicate) or before (late) the latest one of their series, learnt under "
    "the detectors' out-of-order policy.",
    ["agent", "order", "policy"],
    registry=REGISTRY,
)
AUTOMATION_RUN_SECONDS = Histogram(
    "rote_automation_run_seconds",
    "Duration of automation runs reported on the metrics topic.",
    ["source"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
ANOMALIES = Counter(
    "rote_anomalies_total",
    "Anomalies detected on automation runs, by severity and signal.",
    ["severity", "signal"],
    registry=REGISTRY,
)
ANOMALY_SCORE = Histogram(
    "rote_anomaly_score_ratio",
    "Calibrated anomaly scores of every observation the monitor scored (0 normal, 1 certain anomaly).",
    ["signal"],
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
    registry=REGISTRY,
)
TIME_SAVED_SECONDS = Counter(
    "rote_time_saved_seconds_total",
    "Manual time saved by automation runs: manual baseline minus automated duration, summed.",
    registry=REGISTRY,
)
MANUAL_BASELINE_SECONDS = Gauge(
    "rote_manual_baseline_seconds",
    "Mean observed manual duration of the routines that have automations (the baseline).",
    registry=REGISTRY,
)
ROI_RATIO = Gauge(
    "rote_roi_ratio",
    "Return on investment of automation: (value of time saved - cost) / cost.",
    registry=REGISTRY,
)
OPTIMIZATION_SCORE = Gauge(
    "rote_optimization_score_ratio",
    "Workflow optimization score of the latest report, scaled to 0-1.",
    registry=REGISTRY,
)
REPORTS_PUBLISHED = Counter(
    "rote_optimization_reports_total",
    "Optimization reports published to the optimization-reports topic.",
    registry=REGISTRY,
)
#: the worker's periodic tasks whose failures are counted (`agents.common.survives`): a fixed set
PERIODIC_TASKS = ("optimization_score", "optimization_report")
PERIODIC_TASK_FAILURES = Counter(
    "rote_periodic_task_failures_total",
    "Ticks of a worker's periodic task (the optimization score, the report) that raised; the task runs again "
    "at its next tick and the worker goes on.",
    ["task"],
    registry=REGISTRY,
)


def score_band(score: float) -> str:
    """Bucket a 0-100 score into the four bands the dashboards show."""
    if score >= 75:
        return "75-100"
    if score >= 50:
        return "50-75"
    if score >= 25:
        return "25-50"
    return "0-25"


# --------------------------------------------------------------------------------------------------
# Label vocabularies. Every label value rote emits comes from one of these closed sets, so the number
# of series is bounded no matter how many users, routines or automations there are.
# --------------------------------------------------------------------------------------------------

SCORE_BANDS: Final = ("0-25", "25-50", "50-75", "75-100")
#: The agents' durable states (agents/*: `DurableState(name)`) and the kinds of record read back.
STATE_NAMES: Final = ("discovery", "registry", "monitors", "efficiency", "workflow", "generated-from")
STATE_RECORDS: Final = ("checkpoint", "log", "checkpoint-too-large")
#: What became of each user action: accepted into discovery, dead-lettered (invalid), or a redelivered
#: duplicate.
USER_ACTION_OUTCOMES: Final = ("accepted", "dead_lettered", "duplicate")
LIFECYCLE_STATES: Final[tuple[str, ...]] = get_args(Lifecycle)
LANGUAGES: Final[tuple[str, ...]] = get_args(Language)
VERDICTS: Final[tuple[str, ...]] = get_args(Verdict)
STOP_REASONS: Final[tuple[str, ...]] = get_args(StopReason)
SEVERITIES: Final = ("info", "warning", "critical")
#: The signals the performance monitor watches (Anomaly.signal; per-step signals share one family).
ANOMALY_SIGNALS: Final = (
    "duration_seconds",
    "failure_ratio",
    "cpu_seconds",
    "peak_memory_bytes",
    "output_bytes",
    "step_duration_seconds",
)
#: "simulated" is kept apart so made-up runs (load generators) are never mistaken for real ones on a panel.
RUN_SOURCES: Final = ("sandbox", "production", "simulated")
RUN_OUTCOMES: Final = ("success", "failure")
#: Kinds of ingress fault; the full reason text goes to the dead-letter topic, only the kind to a label.
DEAD_LETTER_REASONS: Final = (
    "encoding",
    "json",
    "shape",
    "missing_field",
    "invalid_field",
    "signature",
    "other",
)
#: Topics producers write from outside rote: the ones validated at ingress and dead-lettered.
INGRESS_TOPICS: Final = ("user-actions", "metrics", "test-results")


def run_outcome(success: bool) -> str:
    return "success" if success else "failure"


def dead_letter_reason(reason: str) -> str:
    """Map a `ValidationError.reason` (free text that may quote the payload) onto a closed label value.

    The text is useful to a person reading the dead-letter topic but would give every malformed event
    its own series; the kind is what an alert or a dashboard needs.
    """
    text = reason.lower()
    if "signature" in text:
        return "signature"
    if "not utf-8" in text:
        return "encoding"
    if "not json" in text:
        return "json"
    if "expected an object" in text:
        return "shape"
    if "field required" in text:
        return "missing_field"
    if ":" in text:
        return "invalid_field"
    return "other"


def init_known_series(
    *,
    ingress_topics: Iterable[str] = INGRESS_TOPICS,
    sandbox_languages: Iterable[str] = LANGUAGES,
    out_of_order_policy: str = "accept",
) -> None:
    """Create every series of the closed label sets at zero.

    Why: a series that first appears with value 1 has no earlier sample, so `rate`/`increase` in
    Prometheus see no increase and an alert on the first dead letter or anomaly would never fire; a
    panel over a missing series also reads "No data" instead of 0. Call once at process start.
    """
    for topic in ingress_topics:
        STREAM_GAPS.labels(topic=topic)
        for reason in DEAD_LETTER_REASONS:
            DEAD_LETTERS.labels(topic=topic, reason=reason)
    for band in SCORE_BANDS:
        CANDIDATES.labels(score_band=band).set(0)
    for outcome in USER_ACTION_OUTCOMES:
        USER_ACTIONS_TOTAL.labels(outcome=outcome)
    for task in PERIODIC_TASKS:
        PERIODIC_TASK_FAILURES.labels(task=task)
    for state_name in STATE_NAMES:
        STATE_CHECKPOINT_BYTES.labels(state=state_name)
        for record in STATE_RECORDS:
            STATE_RECORDS_REJECTED.labels(state=state_name, record=record)
    for state in LIFECYCLE_STATES:
        AUTOMATIONS.labels(state=state).set(0)
    for language in sandbox_languages:
        for verdict in VERDICTS:
            for stop_reason in STOP_REASONS:
                SANDBOX_RUNS.labels(language=language, verdict=verdict, stop_reason=stop_reason)
    for source in RUN_SOURCES:
        for outcome in RUN_OUTCOMES:
            AUTOMATION_RUNS.labels(source=source, outcome=outcome)
    for severity in SEVERITIES:
        for signal in ANOMALY_SIGNALS:
            ANOMALIES.labels(severity=severity, signal=signal)
    for order in ("duplicate", "late"):
        # the performance monitor's detectors are the ones that see run reports (the policy in force is the
        # label value: the default unless the deployment changed `DetectorConfig.out_of_order`)
        OUT_OF_ORDER.labels(agent="performance-monitor", order=order, policy=out_of_order_policy)


def set_gauge_by_label(gauge: Gauge, counts: Mapping[str, float], known: Iterable[str]) -> None:
    """Set a one-label gauge from a full snapshot: values not in `counts` drop to 0, not to stale."""
    for value in known:
        gauge.labels(value).set(counts.get(value, 0.0))
    for value, count in counts.items():
        gauge.labels(value).set(count)


# --------------------------------------------------------------------------------------------------
# Consumer lag
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PartitionOffsets:
    """One partition's positions as a consumer group sees them.

    `committed` is None when the group has committed nothing there yet; it then reads from
    `log_start` (auto.offset.reset=earliest, as rote's agents are configured), so all of that is lag.
    """

    topic: str
    partition: int
    log_end: int
    committed: int | None
    log_start: int = 0


def lag_by_topic(partitions: Iterable[PartitionOffsets]) -> dict[str, int]:
    """Sum per-partition lag into per-topic lag; a position past the end (truncation race) counts 0."""
    lags: dict[str, int] = {}
    for p in partitions:
        position = p.log_start if p.committed is None else p.committed
        lags[p.topic] = lags.get(p.topic, 0) + max(p.log_end - position, 0)
    return lags


_lag_topics: dict[str, set[str]] = {}
_lag_lock = threading.Lock()


#: The agent whose input each topic is (a closed set: the `agent` label of the lag). A Faust app's agents
#: share one consumer group, so a topic's lag is that of the agents reading it; the first one names it.
LAG_AGENT: Final[Mapping[str, str]] = {
    "user-actions": "task-identifier",
    "candidates": "automation-generator",
    "automations": "automation-registry",
    "test-results": "automation-registry",
    "metrics": "performance-monitor",
    "anomalies": "optimizer-feed",
    "run-requests": "executor",
}


def lag_agent(topic: str) -> str:
    # the feed is `<app id>-optimizer-feed`, one per app id (rote.agents.optimizer_feed.feed_topic_name)
    if topic.endswith("-optimizer-feed"):
        return "efficiency-tracker"
    return LAG_AGENT.get(topic, "other")


def record_consumer_lag(group: str, lags: Mapping[str, int]) -> None:
    """Publish one group's lag snapshot; topics the group no longer reads are removed, not left frozen."""
    with _lag_lock:
        previous = _lag_topics.get(group, set())
        for topic in previous - set(lags):
            CONSUMER_LAG.remove(topic, group, lag_agent(topic))
        for topic, lag in lags.items():
            CONSUMER_LAG.labels(topic=topic, group=group, agent=lag_agent(topic)).set(lag)
        _lag_topics[group] = set(lags)


def read_partition_offsets(bootstrap: str, group: str, topics: Iterable[str]) -> list[PartitionOffsets]:
    """Ask the cluster where `group` stands on every partition of `topics` (blocking; run it off the loop).

    Uses a throw-away consumer that never joins the group (no group_id), so measuring the lag does not
    trigger a rebalance of the agents it measures.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from rote.brokers.security import kafka_python_kwargs

    auth = kafka_python_kwargs()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rote-lag", **auth)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="rote-lag", enable_auto_commit=False, **auth
    )
    try:
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in admin.list_group_offsets({group: None}).get(group, {}).items()
            if meta.offset >= 0
        }
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions) if partitions else {}
        starts = consumer.beginning_offsets(partitions) if partitions else {}
    finally:
        consumer.close()
        admin.close()
    return [
        PartitionOffsets(
            topic=tp.topic,
            partition=tp.partition,
            log_end=int(ends[tp]),
            committed=committed.get((tp.topic, tp.partition)),
            log_start=int(starts[tp]),
        )
        for tp in partitions
    ]


def collect_consumer_lag(bootstrap: str, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Measure and publish one group's lag per topic; the worker calls it on a timer (e.g. every 15 s)."""
    lags = lag_by_topic(read_partition_offsets(bootstrap, group, topics))
    record_consumer_lag(group, lags)
    return lags


# --------------------------------------------------------------------------------------------------
# Exposition
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MetricsServer:
    """A running /metrics endpoint; `port` is the bound port (useful when asked for port 0)."""

    server: WSGIServer
    thread: threading.Thread
    addr: str
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _sandbox_registry() -> CollectorRegistry:
    """What the standalone sandbox runner exports: its own metrics, not the worker's unlabelled gauges.

    Why a second registry: a gauge without labels is always exposed, so a sandbox runner serving the
    whole REGISTRY would report `rote_roi_ratio 0` beside the worker's real value and poison every
    `max()`/`min()` over jobs. The same metric objects are registered in both registries.
    """
    registry = CollectorRegistry(auto_describe=True)
    for collector in (
        PROCESS_COLLECTOR,
        PLATFORM_COLLECTOR,
        BUILD_INFO,
        EVENTS_CONSUMED,
        EVENTS_PRODUCED,
        DEAD_LETTERS,
        CONSUMER_LAG,
        PROCESSING_SECONDS,
        EVENT_AGE_SECONDS,
        LAST_EVENT_TIMESTAMP,
        SANDBOX_RUNS,
        SANDBOX_RUN_SECONDS,
    ):
        registry.register(collector)
    return registry


SANDBOX_REGISTRY: Final = _sandbox_registry()


def serve(
    port: int = DEFAULT_METRICS_PORT, addr: str = "0.0.0.0", *, registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve a registry over HTTP on a daemon thread (prometheus_client's own server).

    The worker and `rote run` serve `REGISTRY`; the standalone sandbox runner passes `SANDBOX_REGISTRY`.
    """
    from rote import __version__

    BUILD_INFO.info({"version": __version__})
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server=server, thread=thread, addr=addr, port=int(server.server_port))
