"""ROI in one line a person can check: the figure, the arithmetic, and what the cost is made of.

A bare "ROI −86 %" reads as "automation lost money" when what it says is "one hour of review per automation
has not been paid back by one hour of runs yet". The line names the value, the cost, the cost model behind
the cost and the settings that change it, so a reader can argue with the assumptions rather than the number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rote.report.units import hours, money, percent, plural


def explain_roi(efficiency: Mapping[str, Any]) -> str | None:
    """One line from an efficiency summary (`EfficiencySummary.to_dict()` plus `cost_model`), or None
    when there is no cost to relate the value to."""
    cost = efficiency.get("cost") or {}
    total = float(cost.get("total") or 0.0)
    if total <= 0 or efficiency.get("roi") is None:
        return None  # nothing spent, or less than a cent (`MIN_ROI_COST`): no ratio to explain
    cur = str(efficiency.get("currency") or "")
    model = efficiency.get("cost_model") or {}
    value = float(efficiency.get("value_saved") or 0.0)
    roi = efficiency.get("roi")
    built = int(efficiency.get("automations_built") or len(efficiency.get("roi_by_automation") or []))
    rate = float(model.get("hourly_rate", efficiency.get("hourly_rate", 0.0)) or 0.0)
    parts = []
    if cost.get("build"):
        review = float(model.get("build_cost_hours", 0.0) or 0.0)
        parts.append(
            f"{plural(built, 'automation')} × {hours(review)} review at {money(rate, cur)}/h "
            f"(ROTE_BUILD_COST_HOURS, ROTE_HOURLY_RATE)"
        )
    if cost.get("maintenance"):
        parts.append(f"{money(cost['maintenance'], cur)} upkeep")
    machine = float(cost.get("test") or 0.0) + float(cost.get("run") or 0.0)
    if machine:
        parts.append(f"{money(machine, cur)} machine time")
    return (
        f"{percent(roi, signed=True)} = ({money(value, cur)} of time saved − {money(total, cur)} cost) "
        f"/ {money(total, cur)}; cost = {' + '.join(parts) or money(total, cur)}"
    )
