"""Per-automation success rate and duration statistics of sandboxed test runs.

The registry learns each result from the `test-results` topic; this keeps the runner's own view (what
`rote sandbox serve` logs and what the service exposes) without holding every result: counts plus a
bounded window of recent durations, so memory stays flat however long the runner lives. Plain data, so
it pickles into a checkpoint.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from rote.streams.schemas import TestResult


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class AutomationStats:
    runs: int = 0
    passed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    stop_reasons: Counter[str] = field(default_factory=Counter)
    total_seconds: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=256))

    def success_rate(self) -> float | None:
        """Passed over runs that could run at all: an 'unsupported' language is no evidence either way."""
        judged = self.runs - self.verdicts["unsupported"]
        return None if judged == 0 else self.passed / judged


class SandboxStats:
    """`learn_one(result)` per test result; `snapshot(automation_id)` for a summary."""

    def __init__(self, *, window: int = 256) -> None:
        self.window = window
        self._by_id: dict[str, AutomationStats] = {}

    def learn_one(self, result: TestResult) -> None:
        st = self._by_id.get(result.automation_id)
        if st is None:
            st = self._by_id[result.automation_id] = AutomationStats(recent=deque(maxlen=self.window))
        st.runs += 1
        st.passed += int(result.passed)
        st.verdicts[result.verdict] += 1
        st.stop_reasons[result.stop_reason] += 1
        if result.verdict != "unsupported":
            st.total_seconds += result.wall_seconds
            st.recent.append(result.wall_seconds)

    def automations(self) -> list[str]:
        return sorted(self._by_id)

    def success_rate(self, automation_id: str) -> float | None:
        st = self._by_id.get(automation_id)
        return None if st is None else st.success_rate()

    def snapshot(self, automation_id: str) -> dict[str, Any]:
        st = self._by_id.get(automation_id)
        if st is None:
            return {"automation_id": automation_id, "runs": 0}
        durations = sorted(st.recent)
        judged = st.runs - st.verdicts["unsupported"]
        return {
            "automation_id": automation_id,
            "runs": st.runs,
            "passed": st.passed,
            "success_rate": st.success_rate(),
            "verdicts": dict(st.verdicts),
            "stop_reasons": dict(st.stop_reasons),
            "mean_seconds": st.total_seconds / judged if judged else None,
            "median_seconds": _percentile(durations, 0.5) if durations else None,
            "p95_seconds": _percentile(durations, 0.95) if durations else None,
        }

    def snapshot_all(self) -> list[dict[str, Any]]:
        return [self.snapshot(a) for a in self.automations()]
