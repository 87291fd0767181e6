"""Workflow analyzer: bottlenecks, parallelization, caching and the optimization score (pure logic)."""

from __future__ import annotations

from rote.workflow.analysis import (
    AnalysisError,
    AnalyzerConfig,
    Bottleneck,
    CachingHint,
    OptimizationScore,
    ParallelPlan,
    StepStats,
    WorkflowAnalysis,
    WorkflowAnalyzer,
    analyze,
    caching_hints,
    dependency_edges,
    edge_times,
    latest_automations,
    latest_candidates,
    parallel_plan,
    rank_agreement,
)

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
