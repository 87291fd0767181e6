"""Every Prometheus metric rote exports, defined once.

Names follow Prometheus conventions: base units (`_seconds`, `_bytes`), `_total` on counters, `_ratio` for
ratios. Labels are low-cardinality enumerations only: never a user id or an automation id (per-automation
detail lives in the registry and the reports, not in label sets that would grow without bound).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

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
    "Messages between the group's committed position and the log end, summed over partitions.",
    ["topic", "group"],
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
    "Unix time at which an agent last handled an event; the pipeline-stalled alert watches it.",
    ["agent"],
    registry=REGISTRY,
)
CANDIDATES = Gauge(
    "rote_candidates",
    "Routine candidates currently known, by automation-potential score band.",
    ["score_band"],
    registry=REGISTRY,
)
CANDIDATE_HOURS_SAVED_PER_YEAR = Gauge(
    "rote_candidate_hours_saved_per_year",
    "Estimated hours per year the current candidates would save if automated.",
    registry=REGISTRY,
)
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


def score_band(score: float) -> str:
    """Bucket a 0-100 score into the four bands the dashboards show."""
    if score >= 75:
        return "75-100"
    if score >= 50:
        return "50-75"
    if score >= 25:
        return "25-50"
    return "0-25"
