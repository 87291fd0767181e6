"""The optimizer-feed agents' routing: raw bytes by source topic to the right state method."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from test_workflow_support import leno_events

from rote.agents import efficiency_tracker, workflow_analyzer
from rote.agents.common import TopicRouter
from rote.efficiency import CostModel
from rote.errors import ValidationError
from rote.report import ReportBuilder
from rote.streams.schemas import Anomaly, Candidate, RunMetric, TestResult, encode
from rote.streams.topics import ANOMALIES, CANDIDATES, METRICS, TEST_RESULTS
from rote.workflow import WorkflowAnalyzer

NOW = datetime(2020, 4, 20, tzinfo=UTC)
ORDER = ("candidates", "automations", "test-results", "metrics", "anomalies")


@pytest.fixture(scope="module")
def events() -> dict[str, list[Any]]:
    return leno_events()


def test_tracker_routes_give_the_same_report_as_direct_calls(events: dict[str, list[Any]]) -> None:
    direct = ReportBuilder(CostModel())
    routed = ReportBuilder(CostModel())
    applies = {
        "candidates": direct.apply_candidate,
        "automations": direct.apply_automation,
        "test-results": direct.apply_test_result,
        "metrics": direct.apply_metric,
        "anomalies": direct.apply_anomaly,
    }
    for topic in ORDER:
        assert events[topic], topic
        for e in events[topic]:
            applies[topic](e)
            efficiency_tracker.ROUTES.apply(routed, efficiency_tracker.ROUTES.decode(topic, encode(e)))
    assert routed.report(NOW) == direct.report(NOW)
    assert routed.summary().automations  # the sample is not empty, so equality says something


def test_analyzer_routes_only_its_topics(events: dict[str, list[Any]]) -> None:
    routes = workflow_analyzer.ROUTES
    assert routes.model(CANDIDATES.name) is Candidate and routes.model(METRICS.name) is RunMetric
    assert routes.model(TEST_RESULTS.name) is None and routes.model(ANOMALIES.name) is None
    direct, routed = WorkflowAnalyzer(), WorkflowAnalyzer()
    for e in events["candidates"]:
        direct.apply_candidate(e)
        routes.apply(routed, routes.decode(CANDIDATES.name, encode(e)))
    for e in events["automations"]:
        direct.apply_automation(e)
        routes.apply(routed, routes.decode("automations", encode(e)))
    for e in events["metrics"]:
        direct.apply_metric(e)
        routes.apply(routed, routes.decode(METRICS.name, encode(e)))
    assert routed.analysis().to_dict() == direct.analysis().to_dict()
    with pytest.raises(ValidationError, match="not one of this state's topics"):
        routes.decode(TEST_RESULTS.name, encode(events["test-results"][0]))


def test_router_decodes_with_the_catalogue_schema() -> None:
    seen: list[Any] = []
    router: TopicRouter[list[Any]] = TopicRouter({TEST_RESULTS: list.append, ANOMALIES: list.append})
    assert router.model(TEST_RESULTS.name) is TestResult and router.model(ANOMALIES.name) is Anomaly
    with pytest.raises(ValidationError, match="Field required"):
        router.decode(TEST_RESULTS.name, b'{"automation_id": "a"}')
    assert seen == []
