"""Workflow analyzer: bottlenecks, parallelization and caching opportunities, and an optimization score.

The analysis is `rote.workflow.WorkflowAnalyzer`; this agent feeds it from the optimizer feed, keeps it in a
changelogged table and exports the current optimization score. The full analysis goes into each
optimization report (composed by the efficiency tracker) and is served at `/workflow/` on the worker's web
server.
"""

from __future__ import annotations

from typing import Any

import faust

from rote import metrics
from rote.agents.app import Topics
from rote.agents.common import AgentIO, TopicRouter, apply_routed, settled_events, survives
from rote.agents.durable import DurableState
from rote.agents.optimizer_feed import feed_topic, feed_topic_name
from rote.streams.schemas import Event
from rote.streams.topics import AUTOMATIONS, CANDIDATES, METRICS
from rote.workflow import WorkflowAnalyzer

AGENT = "workflow-analyzer"
ROUTES: TopicRouter[WorkflowAnalyzer] = TopicRouter(
    {
        CANDIDATES: WorkflowAnalyzer.apply_candidate,
        AUTOMATIONS: WorkflowAnalyzer.apply_automation,
        METRICS: WorkflowAnalyzer.apply_metric,
    }
)


def register(app: faust.App, topics: Topics, *, score_interval: float = 10.0) -> dict[str, Any]:
    io = AgentIO(agent=AGENT, topics=topics)
    changed = {"flag": False}

    state: DurableState[WorkflowAnalyzer, tuple[str, Event]] = DurableState(
        app,
        "workflow",
        partitions=1,
        state_class=WorkflowAnalyzer,
        factory=lambda _key: WorkflowAnalyzer(),
        decode=ROUTES.decode,
        apply=ROUTES.apply,
        checkpoint_every=200,
        source_topics=(feed_topic_name(app.conf.id),),
    )

    def current() -> WorkflowAnalyzer | None:
        parts = [a for a in (state.peek(k) for k in state.stored_keys()) if a is not None]
        return WorkflowAnalyzer.merged(parts) if parts else None

    @app.agent(feed_topic(app), name=AGENT)
    async def analyze(stream: faust.StreamT[bytes]) -> None:
        async for event in settled_events(stream):
            # test results and anomalies are the efficiency tracker's: not routed here, so skipped
            if await apply_routed(io, ROUTES, state, event):
                changed["flag"] = True

    @app.timer(interval=score_interval)
    @survives("optimization_score")
    async def export_score() -> None:
        # The analysis costs tens of milliseconds: redone on a timer when something changed, not per event.
        analyzer = current()
        if not changed["flag"] or analyzer is None:
            return
        score = analyzer.analysis().score  # raising, the flag stays set: the next tick tries again
        changed["flag"] = False
        if score is not None:
            metrics.OPTIMIZATION_SCORE.set(score.score / 100.0)

    @app.page("/workflow/")
    async def workflow_view(web: Any, request: Any) -> Any:
        analyzer = current()
        return web.json(analyzer.analysis().to_dict() if analyzer is not None else {})

    return {"agent": analyze, "state": state}
