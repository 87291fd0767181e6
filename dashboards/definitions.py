"""The five rote dashboards, as code.

UIDs are fixed strings: links, alert annotations and bookmarks point at them, so a dashboard is
renamed by changing its title, never its UID. Rates use `$__rate_interval` (Grafana picks a window of
at least four scrapes); "in range" stats use `$__range`. Label filters only use values from closed
vocabularies (topic names, lifecycle states, sources), never an agent name a deployment may change.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard

from rote.dashboards.panels import (
    Query,
    bargauge_panel,
    gauge_panel,
    heatmap_panel,
    new_dashboard,
    stat_panel,
    timeseries_panel,
)

RATE = "$__rate_interval"
ROTE_JOBS = 'job=~"rote.*"'
TOPIC = "{{topic}}"


def _p(q: float, metric: str, by: str, selector: str = "") -> str:
    sel = "{" + selector + "}" if selector else ""
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{sel}[{RATE}])))"


def pipeline_health() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "rote-pipeline-health",
            "rote / Pipeline health",
            "Is the event pipeline moving: throughput per topic, dead letters, consumer lag, latency, "
            "processes.",
            ["pipeline"],
        )
        .with_row(dashboard.Row("Throughput"))
        .with_panel(
            timeseries_panel(
                "Events consumed by topic",
                "Events read per second, all agents, by source topic.",
                "cps",
                [Query(expr=f"sum by (topic) (rate(rote_events_consumed_total[{RATE}]))", legend=TOPIC)],
            )
        )
        .with_panel(
            timeseries_panel(
                "Events produced by topic",
                "Events written per second, by destination topic.",
                "cps",
                [Query(expr=f"sum by (topic) (rate(rote_events_produced_total[{RATE}]))", legend=TOPIC)],
            )
        )
        .with_panel(
            timeseries_panel(
                "Dead letters by reason",
                "Events rejected at ingress per second, by source topic and kind of fault. "
                "The reason text is on the dead-letters topic.",
                "cps",
                [
                    Query(
                        expr=f"sum by (topic, reason) (rate(rote_dead_letters_total[{RATE}]))",
                        legend="{{topic}} {{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Consumer lag",
                "Messages waiting between each group's committed offset and the log end.",
                "short",
                [
                    Query(
                        expr="sum by (agent, topic, group) (rote_consumer_lag_messages)",
                        legend="{{agent}} ← {{topic}} ({{group}})",
                    )
                ],
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(
            timeseries_panel(
                "Processing time per event",
                "Time an agent spends on one event: p50, p95 and p99 by agent.",
                "s",
                [
                    Query(expr=_p(0.5, "rote_processing_seconds", "agent"), legend="p50 {{agent}}"),
                    Query(expr=_p(0.95, "rote_processing_seconds", "agent"), legend="p95 {{agent}}"),
                    Query(expr=_p(0.99, "rote_processing_seconds", "agent"), legend="p99 {{agent}}"),
                ],
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "End-to-end event age (p95)",
                "Seconds from an event's broker timestamp to the moment an agent handled it.",
                "s",
                [Query(expr=_p(0.95, "rote_event_age_seconds", "agent"), legend="{{agent}}")],
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Time since last event",
                "How long each agent has been idle; grows without bound when the pipeline is stalled.",
                "s",
                [
                    Query(
                        expr="time() - max by (agent) (rote_last_event_timestamp_seconds)",
                        legend="{{agent}}",
                    )
                ],
                width=8,
            )
        )
        .with_row(dashboard.Row("Processes"))
        .with_panel(
            stat_panel(
                "Targets up",
                "rote processes Prometheus can scrape right now, by job.",
                "short",
                [Query(expr=f"sum by (job) (up{{{ROTE_JOBS}}})", legend="{{job}}")],
                width=8,
                height=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Resident memory",
                "Resident set size of each rote process.",
                "bytes",
                [
                    Query(
                        expr=f"process_resident_memory_bytes{{{ROTE_JOBS}}}",
                        legend="{{job}} {{instance}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "CPU used",
                "CPU seconds per second of each rote process (1 = one core busy).",
                "percentunit",
                [
                    Query(
                        expr=f"rate(process_cpu_seconds_total{{{ROTE_JOBS}}}[{RATE}])",
                        legend="{{job}} {{instance}}",
                    )
                ],
                width=8,
            )
        )
    )


def discovery() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "rote-discovery",
            "rote / Discovery and candidates",
            "What routine mining finds: candidates by automation-potential band and the time they could "
            "save.",
            ["discovery"],
        )
        .with_panel(
            stat_panel(
                "Candidates",
                "Routine candidates currently known (all score bands).",
                "short",
                [Query(expr="sum(rote_candidates)")],
            )
        )
        .with_panel(
            stat_panel(
                "High-potential candidates",
                "Candidates scoring 75 or more out of 100.",
                "short",
                [Query(expr='sum(rote_candidates{score_band="75-100"})')],
            )
        )
        .with_panel(
            stat_panel(
                "Estimated savings per year",
                "Time per year the current candidates would save if all were automated (estimate).",
                "s",
                [Query(expr="sum(rote_candidate_yearly_savings_seconds)")],
            )
        )
        .with_panel(
            stat_panel(
                "User actions ingested in range",
                "User-action events read in the selected time range.",
                "short",
                [Query(expr='sum(increase(rote_events_consumed_total{topic="user-actions"}[$__range]))')],
                decimals=0,
            )
        )
        .with_panel(
            bargauge_panel(
                "Candidates by score band",
                "How many candidates fall in each 25-point band of automation potential.",
                "short",
                [Query(expr="sum by (score_band) (rote_candidates)", legend="{{score_band}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Candidates over time by score band",
                "Candidate counts per band; a band that only grows means nothing is being automated.",
                "short",
                [Query(expr="sum by (score_band) (rote_candidates)", legend="{{score_band}}")],
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Mining input and output",
                "User actions read versus candidate updates published, per second.",
                "cps",
                [
                    Query(
                        expr=f'sum(rate(rote_events_consumed_total{{topic="user-actions"}}[{RATE}]))',
                        legend="user actions in",
                    ),
                    Query(
                        expr=f'sum(rate(rote_events_produced_total{{topic="candidates"}}[{RATE}]))',
                        legend="candidate updates out",
                    ),
                ],
                width=24,
            )
        )
    )


def automations_sandbox() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "rote-automations-sandbox",
            "rote / Automations and sandbox",
            "Generated automations through their lifecycle, the sandbox's verdicts and why runs stopped.",
            ["automations", "sandbox"],
        )
        .with_row(dashboard.Row("Automations"))
        .with_panel(
            bargauge_panel(
                "Automations by lifecycle state",
                "Automations in the registry, latest version of each, by state.",
                "short",
                [Query(expr="sum by (state) (rote_automations)", legend="{{state}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Automation runs by source and outcome",
                "Runs reported on the metrics topic per second.",
                "cps",
                [
                    Query(
                        expr=f"sum by (source, outcome) (rate(rote_automation_runs_total[{RATE}]))",
                        legend="{{source}} {{outcome}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Automation failure ratio",
                "Share of runs that failed over 5 minutes (recording rule); the failure-rate alert "
                "watches it.",
                "percentunit",
                [Query(expr="rote:automation_runs:failure_ratio_rate5m", legend="{{source}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Automation run duration",
                "p50 and p95 duration of automation runs by source.",
                "s",
                [
                    Query(expr=_p(0.5, "rote_automation_run_seconds", "source"), legend="p50 {{source}}"),
                    Query(expr=_p(0.95, "rote_automation_run_seconds", "source"), legend="p95 {{source}}"),
                ],
            )
        )
        .with_row(dashboard.Row("Sandbox"))
        .with_panel(
            timeseries_panel(
                "Sandbox runs by verdict",
                "Sandboxed test runs per second by verdict.",
                "cps",
                [
                    Query(
                        expr=f"sum by (verdict) (rate(rote_sandbox_runs_total[{RATE}]))",
                        legend="{{verdict}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Sandbox stops other than a normal exit",
                "Runs per second stopped by a limit or the jail (timeout, memory, pids, seccomp, "
                "network...).",
                "cps",
                [
                    Query(
                        expr="sum by (stop_reason) "
                        f'(rate(rote_sandbox_runs_total{{stop_reason!="exited"}}[{RATE}]))',
                        legend="{{stop_reason}}",
                    )
                ],
            )
        )
        .with_panel(
            stat_panel(
                "Sandbox pass ratio",
                "Share of sandboxed runs in the selected range whose verdict was passed.",
                "percentunit",
                [
                    Query(
                        expr='sum(increase(rote_sandbox_runs_total{verdict="passed"}[$__range])) '
                        "/ sum(increase(rote_sandbox_runs_total[$__range]))"
                    )
                ],
                width=12,
                height=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Sandbox run wall time",
                "p50 and p95 wall time of one sandboxed run, jail set-up included, by language.",
                "s",
                [
                    Query(expr=_p(0.5, "rote_sandbox_run_seconds", "language"), legend="p50 {{language}}"),
                    Query(expr=_p(0.95, "rote_sandbox_run_seconds", "language"), legend="p95 {{language}}"),
                ],
            )
        )
    )


def anomalies() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "rote-anomalies",
            "rote / Anomalies",
            "What the performance monitor flags on automation runs, and the runs behind it.",
            ["anomalies"],
        )
        .with_panel(
            bargauge_panel(
                "Anomalies in range by severity",
                "Anomalies detected in the selected time range.",
                "short",
                [
                    Query(
                        expr="sum by (severity) (increase(rote_anomalies_total[$__range]))",
                        legend="{{severity}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Anomalies by severity and signal",
                "Anomalies per second; warning and critical ones page through the RoteAnomalyDetected alert.",
                "cps",
                [
                    Query(
                        expr=f"sum by (severity, signal) (rate(rote_anomalies_total[{RATE}]))",
                        legend="{{severity}} {{signal}}",
                    )
                ],
                width=16,
            )
        )
        .with_panel(
            heatmap_panel(
                "Anomaly score distribution",
                "Calibrated scores of every scored observation (0 normal, 1 certain anomaly).",
                "percentunit",
                [
                    Query(
                        expr=f"sum by (le) (increase(rote_anomaly_score_ratio_bucket[{RATE}]))",
                        legend="{{le}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Anomaly score p95 by signal",
                "95th percentile calibrated score; a sustained rise precedes anomalies.",
                "percentunit",
                [Query(expr=_p(0.95, "rote_anomaly_score_ratio", "signal"), legend="{{signal}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Production run duration (p95)",
                "The signal most slowdowns show up in.",
                "s",
                [
                    Query(
                        expr=_p(0.95, "rote_automation_run_seconds", "source", 'source="production"'),
                        legend="p95",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Production failure ratio",
                "Share of production runs that failed over 5 minutes.",
                "percentunit",
                [
                    Query(
                        expr='rote:automation_runs:failure_ratio_rate5m{source="production"}',
                        legend="production",
                    )
                ],
            )
        )
    )


def efficiency_roi() -> dashboard.Dashboard:
    return (
        new_dashboard(
            "rote-efficiency-roi",
            "rote / Efficiency and ROI",
            "Whether automation pays: time saved against the manual baseline, ROI and the optimization "
            "score.",
            ["efficiency", "roi"],
        )
        .with_panel(
            stat_panel(
                "Time saved in range",
                "Manual time saved by automation runs in the selected range.",
                "s",
                [Query(expr="sum(increase(rote_time_saved_seconds_total[$__range]))")],
            )
        )
        .with_panel(
            stat_panel(
                "ROI",
                "(value of time saved - cost) / cost, from the efficiency tracker's latest computation.",
                "percentunit",
                [Query(expr="max(rote_roi_ratio)")],
            )
        )
        .with_panel(
            gauge_panel(
                "Optimization score",
                "Workflow optimization score of the latest report (0-1).",
                "percentunit",
                [Query(expr="max(rote_optimization_score_ratio)")],
            )
        )
        .with_panel(
            stat_panel(
                "Reports published in range",
                "Optimization reports published in the selected range.",
                "short",
                [Query(expr="sum(increase(rote_optimization_reports_total[$__range]))")],
                decimals=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Time saved per hour",
                "Seconds of manual work saved per hour of wall time.",
                "s",
                [Query(expr="rote:time_saved_seconds:rate1h * 3600", legend="saved per hour")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Automated run versus manual baseline",
                "Mean production run duration next to the mean manual duration of the same routines.",
                "s",
                [
                    Query(
                        expr=f'sum(rate(rote_automation_run_seconds_sum{{source="production"}}[{RATE}])) '
                        f'/ sum(rate(rote_automation_run_seconds_count{{source="production"}}[{RATE}]))',
                        legend="automated (mean)",
                    ),
                    Query(expr="max(rote_manual_baseline_seconds)", legend="manual baseline"),
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "ROI over time",
                "ROI as the efficiency tracker recomputes it.",
                "percentunit",
                [Query(expr="max(rote_roi_ratio)", legend="ROI")],
                min_value=None,
            )
        )
        .with_panel(
            timeseries_panel(
                "Cumulative time saved",
                "Total manual time saved since the counters started.",
                "s",
                [Query(expr="sum(rote_time_saved_seconds_total)", legend="total")],
            )
        )
    )


#: file stem -> builder. The stem is the UID, so the JSON file name and the UID never disagree.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "rote-pipeline-health": pipeline_health,
    "rote-discovery": discovery,
    "rote-automations-sandbox": automations_sandbox,
    "rote-anomalies": anomalies,
    "rote-efficiency-roi": efficiency_roi,
}
