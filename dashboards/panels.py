"""Small builders over grafana-foundation-sdk that make rote's conventions impossible to forget.

Every panel built here queries the `${datasource}` variable (so one JSON works against any Prometheus
a Grafana has), carries a unit (a number without a unit is how dashboards lie), and numbers its queries
A, B, C... so Grafana does not renumber them on first save and make the committed JSON look stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, gauge, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prom_models
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef

DATASOURCE_VAR = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VAR + "}")


@dataclass(frozen=True, kw_only=True)
class Query:
    expr: str
    legend: str = ""


def _targets(queries: Sequence[Query], *, instant: bool, heatmap_format: bool = False) -> list[Any]:
    targets: list[Any] = []
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        if q.legend:
            target = target.legend_format(q.legend)
        target = target.instant() if instant else target.range()
        if heatmap_format:
            target = target.format(prom_models.PromQueryFormat.HEATMAP)
        targets.append(target)
    return targets


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    min_value: float | None = 0,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(_targets(queries, instant=False))
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10 if not stacked else 40)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if min_value is not None:
        panel = panel.min(min_value)
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 6,
    height: int = 4,
    decimals: int | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(_targets(queries, instant=True))
        .span(width)
        .height(height)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def gauge_panel(
    title: str, description: str, unit: str, queries: Sequence[Query], *, width: int = 6, height: int = 4
) -> gauge.Panel:
    return (
        gauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .max(1)
        .targets(_targets(queries, instant=True))
        .span(width)
        .height(height)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def bargauge_panel(
    title: str, description: str, unit: str, queries: Sequence[Query], *, width: int = 12, height: int = 8
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .targets(_targets(queries, instant=True))
        .span(width)
        .height(height)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def heatmap_panel(
    title: str, description: str, unit: str, queries: Sequence[Query], *, width: int = 12, height: int = 8
) -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(_targets(queries, instant=False, heatmap_format=True))
        .span(width)
        .height(height)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
    )


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable(DATASOURCE_VAR).label("Prometheus").type("prometheus")


def new_dashboard(uid: str, title: str, description: str, tags: Sequence[str]) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["rote", *tags])
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
    )
