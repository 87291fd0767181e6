"""The topic catalogue: the one place that says which topics exist, how they are keyed and kept.

Agents, the sandbox runner, the CLI, the deploy files and the docs all read this table, so a topic is
added or re-keyed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """How a topic is meant to be used.

    `key` names the event field that is the Kafka key: it decides ordering (everything for one key is
    in order) and which worker owns a key's state.
    """

    name: str
    schema: str
    key: str
    partitions: int
    retention_ms: int | None
    cleanup: Cleanup
    description: str
    #: Further topic-level settings (the state changelogs' `max.message.bytes`), as (name, value) pairs.
    extra_config: tuple[tuple[str, str], ...] = ()

    def config(self) -> dict[str, str]:
        """Topic-level config for creating the topic on a real cluster."""
        cfg = {"cleanup.policy": self.cleanup.value}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        cfg.update(self.extra_config)
        return cfg


DAY_MS = 24 * 3600 * 1000

USER_ACTIONS = TopicSpec(
    name="user-actions",
    schema="UserAction",
    key="user_id",
    partitions=8,
    retention_ms=7 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Raw user-action events from producers; keyed by user so one user's stream stays ordered.",
)
CANDIDATES = TopicSpec(
    name="candidates",
    schema="Candidate",
    key="candidate_id",
    partitions=4,
    retention_ms=None,
    cleanup=Cleanup.COMPACT,
    description="Routine candidates with automation potential; compacted: the latest version per routine.",
)
AUTOMATIONS = TopicSpec(
    name="automations",
    schema="Automation",
    key="automation_id",
    partitions=4,
    retention_ms=None,
    cleanup=Cleanup.COMPACT,
    description="Generated automations (one event per version) with their test specs; the sandbox's input.",
)
TEST_RESULTS = TopicSpec(
    name="test-results",
    schema="TestResult",
    key="automation_id",
    partitions=4,
    retention_ms=30 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="One result per sandboxed test run: verdict, stop reason and resources used.",
)
METRICS = TopicSpec(
    name="metrics",
    schema="RunMetric",
    key="automation_id",
    partitions=4,
    retention_ms=30 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Automation run reports (production runners and sandbox runs) with per-step timings.",
)
RUN_REQUESTS = TopicSpec(
    name="run-requests",
    schema="RunRequest",
    key="automation_id",
    partitions=4,
    retention_ms=7 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Requests to run an automation with given parameters; the executor (rote runner) consumes "
    "them and answers with one metrics event per run.",
)
ANOMALIES = TopicSpec(
    name="anomalies",
    schema="Anomaly",
    key="automation_id",
    partitions=2,
    retention_ms=30 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Anomalies found by the performance monitor, with expected range and explanation.",
)
OPTIMIZATION_REPORTS = TopicSpec(
    name="optimization-reports",
    schema="OptimizationReport",
    key="report_id",
    partitions=1,
    retention_ms=90 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Periodic optimization reports for people and for other systems (a learning engine).",
)
DEAD_LETTERS = TopicSpec(
    name="dead-letters",
    schema="DeadLetter",
    key="source_topic",
    partitions=1,
    retention_ms=30 * DAY_MS,
    cleanup=Cleanup.DELETE,
    description="Events that failed validation, with the reason and the original bytes, nothing lost.",
)

CATALOGUE: tuple[TopicSpec, ...] = (
    USER_ACTIONS,
    CANDIDATES,
    AUTOMATIONS,
    TEST_RESULTS,
    METRICS,
    ANOMALIES,
    OPTIMIZATION_REPORTS,
    DEAD_LETTERS,
    RUN_REQUESTS,
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in CATALOGUE}


def topic(name: str) -> TopicSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(BY_NAME)}") from None
