"""Workflow analyzer: bottlenecks, parallelization, caching and the optimization score (pure logic).

`model` holds the configuration and the result types, `steps` the per-step statistics and bottlenecks,
`plans` the parallel plan and the caching hints, and `analysis` the score, `analyze` and the agent's
state machine (`WorkflowAnalyzer`).
"""

from __future__ import annotations

from rote.workflow.analysis import WorkflowAnalyzer, analyze, edge_times, rank_agreement
from rote.workflow.model import (
    AnalysisError,
    AnalyzerConfig,
    Bottleneck,
    CachingHint,
    OptimizationScore,
    ParallelPlan,
    StepStats,
    WorkflowAnalysis,
    latest_automations,
    latest_candidates,
)
from rote.workflow.plans import caching_hints, dependency_edges, parallel_plan

__all__ = [
    "AnalysisError",
    "AnalyzerConfig",
    "Bottleneck",
    "CachingHint",
    "OptimizationScore",
    "ParallelPlan",
    "StepStats",
    "WorkflowAnalysis",
    "WorkflowAnalyzer",
    "analyze",
    "caching_hints",
    "dependency_edges",
    "edge_times",
    "latest_automations",
    "latest_candidates",
    "parallel_plan",
    "rank_agreement",
]
