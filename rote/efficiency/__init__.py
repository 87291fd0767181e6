"""Efficiency tracker: manual baselines, measured savings, cost, ROI and trends (pure logic, pandas)."""

from __future__ import annotations

from rote.efficiency.cost import CostModel
from rote.efficiency.export import MetricsExporter
from rote.efficiency.summary import AutomationEfficiency, EfficiencySummary, RoutineBaseline, TrendConfig
from rote.efficiency.tracker import EfficiencyTracker

__all__ = [
    "AutomationEfficiency",
    "CostModel",
    "EfficiencySummary",
    "EfficiencyTracker",
    "MetricsExporter",
    "RoutineBaseline",
    "TrendConfig",
]
