"""Keep the Prometheus figures equal to the report's: both come from the same `EfficiencySummary`."""

from __future__ import annotations

from rote import metrics
from rote.efficiency.summary import EfficiencySummary


class MetricsExporter:
    """Publishes ROI, the mean manual baseline and the total time saved.

    `rote_time_saved_seconds_total` is a counter, so it is advanced by the growth of the summary's total
    since the last export. A total can only shrink when a baseline is revised downwards or a run slower
    than the manual baseline arrives; the counter then holds until the total passes it again, and
    `pending_decrease_seconds` says by how much it is ahead of the report meanwhile.
    """

    def __init__(self) -> None:
        self.exported_time_saved_seconds = 0.0
        self.pending_decrease_seconds = 0.0

    def export(self, summary: EfficiencySummary) -> None:
        delta = summary.time_saved_seconds - self.exported_time_saved_seconds
        if delta > 0:
            metrics.TIME_SAVED_SECONDS.inc(delta)
            self.exported_time_saved_seconds = summary.time_saved_seconds
            self.pending_decrease_seconds = 0.0
        else:
            self.pending_decrease_seconds = -delta
        # no ROI (under a cent of cost): NaN, not the last ratio left standing
        metrics.ROI_RATIO.set(summary.roi if summary.roi is not None else float("nan"))
        baseline = summary.mean_baseline_seconds
        if baseline is not None:
            metrics.MANUAL_BASELINE_SECONDS.set(baseline)
