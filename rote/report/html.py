"""The report as one self-contained HTML page: numbers a manager trusts, charts an analyst can read.

No script and no external resource: charts are inline SVG (rote.report.charts), styles are inline, so the
page opens the same from a mail attachment, an air-gapped machine or a CI artifact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from rote.report import units
from rote.report.charts import COLORS, bar_chart, line_chart
from rote.streams.schemas import OptimizationReport

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f3f4f6;color:#111827}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:19px;margin:28px 0 8px} h3{font-size:15px;margin:16px 0 6px}
.meta{color:#6b7280;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin-top:16px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.card .v{font-size:24px;font-weight:600} .card .k{font-size:12px;color:#6b7280;text-transform:uppercase}
section{background:#fff;border-radius:8px;padding:8px 16px 16px;margin-top:16px;
box-shadow:0 1px 2px rgba(0,0,0,.06)}
table{border-collapse:collapse;width:100%;font-size:12.5px} th,td{text-align:left;padding:4px 6px;
border-bottom:1px solid #e5e7eb;vertical-align:top} th{color:#374151;font-weight:600} td.n{text-align:right;
font-variant-numeric:tabular-nums} .muted{color:#6b7280} .neg{color:#b91c1c} .pos{color:#15803d}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
ol.sop{font-size:13px;margin:4px 0 12px;padding-left:26px} ol.sop li{margin:2px 0}
"""


def fmt_seconds(s: float | None) -> str:
    return units.duration(s)


def fmt_money(v: float | None, currency: str) -> str:
    return escape(units.money(v, currency))


def fmt_pct(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v * 100:.{digits}f} %"


def fmt_time(raw: Any) -> str:
    """A timestamp as a person reads it: ``2026-11-29 23:58 UTC``."""
    if raw is None:
        return "–"
    at = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return at.strftime("%Y-%m-%d %H:%M UTC")


def fmt_span(start: Any, end: Any) -> str:
    """``2019-10-21 00:10 – 02:05 UTC`` (the date once when both ends share it)."""
    if start is None or end is None:
        return "–"
    a, b = fmt_time(start), fmt_time(end)
    if a[:10] == b[:10]:
        return f"{a[:-4]} – {b[11:]}"
    return f"{a[:-4]} – {b}"


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return escape(str(v))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    num = set(numeric)
    body = []
    for r in rows:
        cells = "".join(f"<td class='n'>{c}</td>" if i in num else f"<td>{c}</td>" for i, c in enumerate(r))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return "<p class='muted'>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _time_unit(max_seconds: float) -> tuple[str, float]:
    if max_seconds >= 2 * 3600:
        return "h", 3600.0
    if max_seconds >= 120:
        return "min", 60.0
    return "s", 1.0


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _groups(groups: list[list[int]], labels: list[list[str]]) -> str:
    """Step ranges, each with its labels on hover: a 60-step routine's groups stay one line each."""
    out = []
    for g, names in zip(groups, labels, strict=True):
        contiguous = g == list(range(g[0], g[-1] + 1)) and len(g) > 1
        span = f"{g[0]}–{g[-1]}" if contiguous else ",".join(map(str, g))
        out.append(
            f"<span title='{escape(', '.join(names))}'>[{escape(span)}] {escape(_short(names[0], 28))}"
            f"{' …' if len(names) > 1 else ''}</span>"
        )
    return f"{len(groups)} groups: " + "<br>".join(out)


def _sops(candidates: Sequence[dict[str, Any]], limit: int = 3) -> str:
    """The standard operating procedure of the top routines: what a person does, step by step."""
    parts = []
    for c in candidates[:limit]:
        steps = c.get("sop") or []
        if not steps:
            continue
        items = "".join(f"<li>{escape(_unnumbered(s))}</li>" for s in steps)
        parts.append(f"<h3>{escape(c['name'])}</h3><ol class='sop'>{items}</ol>")
    return ("<h3>Standard operating procedures</h3>" + "".join(parts)) if parts else ""


def _unnumbered(step: str) -> str:
    """An SOP line without its own leading number (the list numbers it)."""
    head, _, rest = step.partition(". ")
    return rest if head.isdigit() and rest else step


def chart_bottlenecks(bottlenecks: Sequence[dict[str, Any]], limit: int = 12) -> list[dict[str, Any]]:
    """The bottlenecks the chart shows: up to `limit // kinds` of the largest of each kind (manual step,
    automation step, waiting) first, then the largest of the rest, in the report's order (most seconds
    first).

    Why not simply the first `limit`: slow automation runs (many, each timed) can fill the chart and push
    every manual step out of it, and where people lose time by hand is what the chart is read for.
    """
    if len(bottlenecks) <= limit:
        return list(bottlenecks)
    kinds: dict[str, list[int]] = {}
    for i, b in enumerate(bottlenecks):
        kinds.setdefault(_bottleneck_color(b), []).append(i)
    share = max(1, limit // max(1, len(kinds)))
    chosen = {i for rows in kinds.values() for i in rows[:share]}
    chosen |= set(sorted(set(range(len(bottlenecks))) - chosen)[: max(0, limit - len(chosen))])
    return [bottlenecks[i] for i in sorted(chosen)[:limit]]


def _bottleneck_color(b: dict[str, Any]) -> str:
    if b.get("kind") in ("wait", "queue"):
        return COLORS["bottleneck_wait"]
    return COLORS["bottleneck_automation"] if b.get("scope") == "automation" else COLORS["bottleneck_routine"]


def _evidence(automations: Sequence[dict[str, Any]]) -> str:
    """Under the table: what each automation's time saved rests on (its production runs, measured by the
    executor, and the slowest steps of the automation itself); simulated runs said apart."""
    items = []
    for a in automations:
        ev = a.get("evidence") or {}
        runs, simulated = int(ev.get("production_runs") or 0), int(ev.get("simulated_runs") or 0)
        if not runs and not simulated:
            continue
        slow = ", ".join(
            f"{s['step']}. {escape(str(s['label']))} {fmt_seconds(s['mean_seconds'])}"
            for s in ev.get("slowest_steps", [])
        )
        text = (
            f"<b>{escape(a['name'])}</b>: {fmt_seconds(a.get('time_saved_seconds'))} saved over {runs} "
            f"production run{'s' if runs != 1 else ''} ({int(ev.get('production_successes') or 0)} "
            f"succeeded), measured by the executor: mean run {fmt_seconds(ev.get('mean_run_seconds'))} "
            f"against a manual baseline of {fmt_seconds(a.get('baseline_seconds'))}"
        )
        if slow:
            text += f"; slowest steps of the automation: {slow}"
        if simulated:
            text += f"; <b>{simulated} simulated runs</b> (not counted as time saved)"
        items.append(f"<li>{text}</li>")
    if not items:
        return "<p class='meta'>No production runs yet: time saved shown is projected from sandbox runs.</p>"
    return "<h3>Evidence for the time saved</h3><ul class='evidence'>" + "".join(items) + "</ul>"


def render_html(report: OptimizationReport, *, title: str = "rote optimization report") -> str:
    """The page for people; every figure comes from `report`, nothing is recomputed here."""
    eff = report.efficiency
    cur = str(eff.get("currency", ""))
    series = eff.get("series", [])
    max_saved = max((abs(p["cumulative_seconds"]) for p in series), default=0.0)
    unit, div = _time_unit(max_saved)
    saved_chart = line_chart(
        [(datetime.fromisoformat(p["t"]), p["cumulative_seconds"] / div) for p in series],
        title="Time saved over time",
        unit=unit,
    )
    roi_rows = [r for r in eff.get("roi_by_automation", []) if r.get("roi") is not None]
    roi_chart = bar_chart(
        [
            (
                f"{r['name']}{' (projected: no production runs)' if r.get('projected') else ''}",
                r["roi"] * 100,
                COLORS["roi_pos"] if r["roi"] >= 0 else COLORS["roi_neg"],
            )
            for r in roi_rows
        ],
        title="ROI by automation",
        fmt="{:+,.0f}%",
    )
    bn = chart_bottlenecks(report.bottlenecks)
    bottleneck_chart = bar_chart(
        [(f"{b['label']} · {_short(b['scope_name'])}", b["share"] * 100, _bottleneck_color(b)) for b in bn],
        title="Bottlenecks",
        fmt="{:.1f}%",
    )
    cand_chart = bar_chart(
        [
            (f"#{i + 1} {c['name']}", float(c["score"]), COLORS["candidate"])
            for i, c in enumerate(report.top_candidates)
        ],
        title="Candidate ranking",
        fmt="{:.0f}",
        max_value=100.0,
    )

    roi = eff.get("roi")
    roi_line = f"<p><b>ROI {escape(str(eff['roi_explained']))}</b></p>" if eff.get("roi_explained") else ""
    score = report.optimization_score
    cards = [
        (
            "Time saved",
            fmt_seconds(eff.get("time_saved_seconds")),
            f"{eff.get('successful_runs', 0)} successful production runs",
        ),
        (
            "Value of time saved",
            fmt_money(eff.get("value_saved"), cur),
            f"at {eff.get('hourly_rate', 0):g} {cur}/h",
        ),
        ("Total cost", fmt_money(eff.get("cost", {}).get("total"), cur), "build, test, run, maintenance"),
        ("ROI", units.percent(roi, signed=True), "(value − cost) / cost; see the ROI section"),
        ("Optimization score", "–" if score is None else f"{score:.0f} / 100", "higher = less left to gain"),
        ("Anomalies", str(len(report.anomalies)), "in the report window"),
    ]
    cards_html = "".join(
        f"<div class='card'><div class='k'>{escape(k)}</div><div class='v'>{v}</div>"
        f"<div class='meta'>{escape(sub)}</div></div>"
        for k, v, sub in cards
    )
    trends = eff.get("trends", {})
    vs = trends.get("vs_baseline", {})
    trend_rows = [
        ("Production runs in the trend", _num(trends.get("runs"))),
        ("Mean time saved per run", fmt_seconds(trends.get("mean_saved_per_run_seconds"))),
        (
            f"Rolling mean (last {trends.get('rolling_window_runs', '–')} runs)",
            fmt_seconds(trends.get("rolling_mean_saved_seconds")),
        ),
        (f"EWMA (α = {trends.get('ewma_alpha', '–')})", fmt_seconds(trends.get("ewma_saved_seconds"))),
        ("Slope: change in saving per run", _num(trends.get("slope_saved_per_run"), 4) + " s/run"),
        ("Slope: change in saving per day", _num(trends.get("slope_saved_per_day"), 3) + " s/day"),
        ("Direction", escape(str(trends.get("direction", "–")))),
        (
            "Automated time as share of manual baseline (mean / rolling / EWMA)",
            f"{fmt_pct(vs.get('mean_ratio'), 1)} / {fmt_pct(vs.get('rolling_ratio'), 1)} / "
            f"{fmt_pct(vs.get('ewma_ratio'), 1)}",
        ),
        ("Speed-up over manual", "–" if vs.get("speedup") is None else f"{vs['speedup']:.1f}×"),
        ("Share of manual time saved", fmt_pct(vs.get("share_of_baseline_saved"), 1)),
    ]
    breakdown = report.optimization_breakdown or {}
    factors = breakdown.get("factors", {})
    weights = breakdown.get("weights", {})

    autos_table = _table(
        [
            "automation",
            "state",
            "tests (current version)",
            "baseline",
            "automated",
            "saved/run",
            "runs (failed)",
            "time saved",
            "value",
            "cost",
            "ROI",
            "anomalies",
        ],
        [
            [
                escape(a["name"]),
                escape(str(a.get("state"))) + (" ✔" if a.get("verified") else ""),
                escape(a.get("current_tests_text") or f"{a['tests_passed']}/{a['tests']}"),
                fmt_seconds(a.get("baseline_seconds")),
                fmt_seconds(a.get("automated_seconds"))
                + (" (sandbox)" if a.get("automated_from") == "sandbox" else ""),
                fmt_seconds(a.get("time_saved_per_run_seconds"))
                + (" projected" if a.get("projected") else ""),
                f"{a['production_runs']} ({a['failed_runs']})",
                fmt_seconds(a.get("time_saved_seconds")),
                fmt_money(a.get("value_saved"), cur),
                fmt_money(a.get("cost_total"), cur),
                "–"
                if a.get("roi") is None
                else f"<span class='{'pos' if a['roi'] >= 0 else 'neg'}'>"
                f"{units.percent(a['roi'], signed=True)}</span>",
                str(a.get("anomalies", 0)),
            ]
            for a in report.automations
        ],
        numeric=range(2, 12),
    )
    cand_table = _table(
        ["#", "routine", "user", "score", "priority", "seen", "baseline", "saveable per year", "automation"],
        [
            [
                str(i + 1),
                escape(c["name"])
                + (f"<div class='meta'>{escape(c['variant_note'])}</div>" if c.get("variant_note") else ""),
                escape(c["user_id"]),
                f"{c['score']:.1f}",
                escape(c["priority"]),
                str(c["occurrences"]),
                fmt_seconds(c.get("baseline_seconds")),
                escape(units.hours(c["estimated_hours_saved_per_year"])),
                escape(f"{c['automation_id']} ({c['automation_state']})") if c.get("automation_id") else "–",
            ]
            for i, c in enumerate(report.top_candidates)
        ],
        numeric=(3, 5, 6, 7),
    )
    bn_table = _table(
        ["#", "where", "step", "kind", "share", "total", "mean", "cv", "severity", "why"],
        [
            [
                str(b["rank"]),
                escape(f"{b['scope']}: {b['scope_name']}"),
                escape(b["label"] if b.get("step") is None else f"{b['step']}. {b['label']}"),
                escape(b["kind"]),
                fmt_pct(b["share"], 1),
                fmt_seconds(b["total_seconds"]),
                fmt_seconds(b["mean_seconds"]),
                _num(b.get("cv")),
                escape(b["severity"]),
                escape("; ".join(b["reasons"])),
            ]
            for b in report.bottlenecks
        ],
        numeric=(4, 5, 6, 7),
    )
    par_table = _table(
        ["routine", "independent groups", "sequential", "critical path", "saving", "speed-up", "times from"],
        [
            [
                escape(p["scope_name"]),
                _groups(p["groups"], p["group_labels"]),
                fmt_seconds(p["sequential_seconds"]),
                fmt_seconds(p["critical_path_seconds"]),
                fmt_seconds(p["saving_seconds"]),
                f"{p['speedup']:.2f}×",
                escape(p["durations_from"]),
            ]
            for p in report.parallelization
        ],
        numeric=(2, 3, 4, 5),
    )
    cache_table = _table(
        ["step", "app", "target", "executions", "distinct inputs", "repeats", "hit ratio", "saving"],
        [
            [
                escape(h["label"]),
                escape(h["app"]),
                escape(h["target"]),
                str(h["executions"]),
                str(h["distinct_inputs"]),
                str(h["repeats"]),
                fmt_pct(h["hit_ratio"]),
                fmt_seconds(h["saving_seconds"]),
            ]
            for h in report.caching
        ],
        numeric=(3, 4, 5, 6, 7),
    )
    anomaly_table = _table(
        ["observed at", "automation", "signal", "severity", "score", "observed", "expected", "explanation"],
        [
            [
                escape(str(x["observed_at"])),
                escape(x["automation_id"]),
                escape(x["signal"]),
                escape(x["severity"]),
                f"{x['score']:.2f}",
                _num(x["observed"]),
                f"{_num(x['expected_low'])} – {_num(x['expected_high'])}",
                escape(x["explanation"]),
            ]
            for x in report.anomalies
        ],
        numeric=(4, 5),
    )
    score_table = _table(
        ["factor", "value", "weight"],
        [[escape(k), f"{v:.3f}", f"{weights.get(k, 0):.2f}"] for k, v in factors.items()],
        numeric=(1, 2),
    )
    cost = eff.get("cost", {})
    cost_table = _table(
        ["", "amount"],
        [[escape(k), fmt_money(v, cur)] for k, v in cost.items()],
        numeric=(1,),
    )
    model_table = _table(
        ["setting", "value"],
        [[escape(k), escape(str(v))] for k, v in eff.get("cost_model", {}).items()],
    )
    base_table = _table(
        ["routine", "instances", "median", "mean", "p90", "from"],
        [
            [
                escape(b["name"]),
                str(b["instances"]),
                fmt_seconds(b["median_seconds"]),
                fmt_seconds(b["mean_seconds"]),
                fmt_seconds(b["p90_seconds"]),
                escape(b["source"]),
            ]
            for b in eff.get("baselines", [])
        ],
        numeric=(1, 2, 3, 4),
    )
    period = escape(fmt_span(report.period_start, report.period_end)) if report.period_start else ""
    observed = eff.get("observed_period") or {}
    seen = escape(fmt_span(observed.get("start"), observed.get("end"))) if observed.get("start") else ""
    legend = (
        f"<div class='legend meta'><span style='background:{COLORS['bottleneck_routine']}'></span>manual step"
        f"<span style='background:{COLORS['bottleneck_automation']}'></span>automation step"
        f"<span style='background:{COLORS['bottleneck_wait']}'></span>waiting / queueing</div>"
        if bn
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><main>
<h1>{escape(title)}</h1>
<div class="meta">Report {escape(report.report_id)} · generated {escape(fmt_time(report.generated_at))}
{f" · automations tested and run {period}" if period and seen else f" · period {period}" if period else ""}
{f" · routines observed {seen}" if seen else ""}</div>
<div class="cards">{cards_html}</div>
<section id="time-saved"><h2>Time saved over time</h2>
<p class="meta">Cumulative manual time saved by successful production runs (baseline − run duration).</p>
{saved_chart}</section>
<section id="roi"><h2>ROI by automation</h2>
<p class="meta">(value of time saved − cost to build, test and run) / cost.</p>
{roi_line}{roi_chart}</section>
<section id="bottlenecks"><h2>Bottleneck breakdown</h2>
<p class="meta">Share of each routine's or automation's time taken by its worst steps and waits.</p>
{legend}{bottleneck_chart}</section>
<section id="candidates"><h2>Candidate ranking</h2>
<p class="meta">Automation-potential score (0–100) of the top routines found.</p>{cand_chart}
{cand_table}{_sops(report.top_candidates)}</section>
<section id="automations"><h2>Automations</h2>{autos_table}{_evidence(report.automations)}</section>
<section id="efficiency"><h2>Efficiency and trends</h2>
<h3>Trends against the manual baseline</h3>{_table(["", ""], trend_rows, numeric=(1,))}
<h3>Cost</h3>{cost_table}<h3>Manual baselines</h3>{base_table}<h3>Cost model</h3>{model_table}</section>
<section id="bottleneck-table"><h2>Bottlenecks</h2>{bn_table}</section>
<section id="optimization"><h2>Optimization score: {"–" if score is None else f"{score:.1f}"} / 100</h2>
{score_table}
<h3>Parallelization candidates</h3>{par_table}
<h3>Caching recommendations</h3>{cache_table}</section>
<section id="anomalies"><h2>Anomalies</h2>{anomaly_table}</section>
</main></body></html>
"""
