"""Optimization report: composition, HTML, `rote report`, and the page drawn by a real headless Chromium."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_workflow_support import leno_events, write_archive
from typer.testing import CliRunner

from rote.cli import app
from rote.efficiency import CostModel, EfficiencyTracker
from rote.report import ReportBuilder, compose_report, render_html
from rote.report.charts import COLORS
from rote.streams.schemas import OptimizationReport, decode, encode

NOW = datetime(2020, 4, 20, tzinfo=UTC)
COST = CostModel()


@pytest.fixture(scope="module")
def events() -> dict[str, list[Any]]:
    return leno_events()


@pytest.fixture(scope="module")
def report(events: dict[str, list[Any]]) -> OptimizationReport:
    return compose_report(
        candidates=events["candidates"],
        automations=events["automations"],
        test_results=events["test-results"],
        runs=events["metrics"],
        anomalies=events["anomalies"],
        cost=COST,
        now=NOW,
    )


def test_report_has_every_section_filled_from_the_events(
    report: OptimizationReport, events: dict[str, list[Any]]
) -> None:
    assert report.report_id == "report-20200420T000000Z"
    assert [c["candidate_id"] for c in report.top_candidates] == [
        "reimbursement-v0",
        "studentrecord-v0",
        "studentrecord-v1",
    ]
    autos = {a["automation_id"]: a for a in report.automations}
    assert autos["auto-studentrecord-v0"]["verified"] and autos["auto-studentrecord-v0"]["version"] == 2
    assert (
        autos["auto-reimbursement-v0"]["projected"] and autos["auto-reimbursement-v0"]["production_runs"] == 0
    )
    assert autos["auto-studentrecord-v0"]["anomalies"] == 1
    assert report.bottlenecks[0]["rank"] == 1 and report.bottlenecks[0]["reasons"]
    assert report.parallelization and report.caching
    assert report.optimization_score is not None
    assert set(report.optimization_breakdown["factors"]) == {
        "balance",
        "stability",
        "flow",
        "parallelism",
        "reuse",
    }
    assert len(report.anomalies) == 2
    eff = report.efficiency
    assert eff["series"] and eff["roi_by_automation"] and eff["step_breakdown"]
    assert report.period_start is not None and report.period_end is not None
    assert report.period_start < report.period_end
    # The period is when automations were tested and ran; when the routines were observed is apart (a
    # replayed log's clock and today's never make one period).
    observed = eff["observed_period"]
    first_seen = min(c.first_seen for c in events["candidates"])
    assert observed["start"] == first_seen.isoformat() and observed["start"] < report.period_start.isoformat()
    runs_and_tests = [m.started_at for m in events["metrics"]] + [
        r.started_at for r in events["test-results"]
    ]
    assert report.period_start == min(runs_and_tests)
    # ROI in one line with its cost model; tests tallied per language on the current version
    assert eff["roi_explained"].startswith(f"{eff['roi'] * 100:+.0f} %".replace("-", "−"))
    assert "automations × 1.0 h review at 50.00 USD/h" in eff["roi_explained"]
    assert autos["auto-reimbursement-v0"]["current_tests_text"] == "3/3 passed"
    # The published event survives the wire.
    assert decode(OptimizationReport, encode(report)) == report


def test_report_efficiency_equals_the_tracker(
    events: dict[str, list[Any]], report: OptimizationReport
) -> None:
    s = (
        EfficiencyTracker(COST)
        .extend(
            candidates=events["candidates"],
            automations=events["automations"],
            test_results=events["test-results"],
            runs=events["metrics"],
        )
        .summary(NOW)
    )
    eff = report.efficiency
    assert eff["time_saved_seconds"] == pytest.approx(s.time_saved_seconds)
    assert eff["roi"] == pytest.approx(s.roi)
    assert eff["cost"]["total"] == pytest.approx(s.cost_total)
    by_id = {a["automation_id"]: a for a in report.automations}
    for a in s.automations:
        assert by_id[a.automation_id]["roi"] == pytest.approx(a.roi)


def test_incremental_builder_matches_batch_and_pickles(
    events: dict[str, list[Any]], report: OptimizationReport
) -> None:
    b = ReportBuilder(COST)
    for topic, apply in (
        ("candidates", b.apply_candidate),
        ("automations", b.apply_automation),
        ("test-results", b.apply_test_result),
        ("metrics", b.apply_metric),
        ("anomalies", b.apply_anomaly),
    ):
        for e in events[topic]:
            apply(e)
    b.apply_anomaly(events["anomalies"][0])  # a redelivered anomaly is not counted twice
    b = pickle.loads(pickle.dumps(b))
    assert b.report(NOW) == report


def test_html_is_self_contained_and_escapes_user_text(events: dict[str, list[Any]]) -> None:
    autos = [a.model_copy(update={"name": "<script>alert(1)</script>"}) for a in events["automations"]]
    cands = [
        c.model_copy(update={"name": "<script>alert(2)</script>", "sop": ["1. <b>type</b> it"]})
        for c in events["candidates"]
    ]
    r = compose_report(
        candidates=cands,
        automations=autos,
        test_results=events["test-results"],
        runs=events["metrics"],
        anomalies=events["anomalies"],
        cost=COST,
        now=NOW,
    )
    page = render_html(r)
    assert "<script" not in page and "&lt;script&gt;" in page
    # names, SOPs (numbered by the list, their text escaped) and the ROI line with its cost model
    assert "Standard operating procedures" in page and "<li>&lt;b&gt;type&lt;/b&gt; it</li>" in page
    assert "review at 50.00 USD/h" in page and "routines observed" in page
    assert " src=" not in page and "href=" not in page and "@import" not in page
    for section in (
        "time-saved",
        "roi",
        "bottlenecks",
        "candidates",
        "automations",
        "efficiency",
        "anomalies",
    ):
        assert f'id="{section}"' in page
    assert page.count("<svg") == 4


def test_empty_report_renders_placeholders() -> None:
    r = compose_report(
        candidates=[], automations=[], test_results=[], runs=[], anomalies=[], cost=COST, now=NOW
    )
    assert r.optimization_score is None and r.efficiency["time_saved_seconds"] == 0.0
    page = render_html(r)
    assert "no production runs yet" in page and "nothing to show yet" in page


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, events: dict[str, list[Any]]) -> Path:
    return write_archive(tmp_path_factory.mktemp("run") / "last-run", events)


def test_cli_json_prints_exactly_one_object_equal_to_the_composed_report(
    archive: Path, report: OptimizationReport
) -> None:
    res = CliRunner().invoke(
        app, ["report", "--from", str(archive), "--json", "--now", "2020-04-20T00:00:00+00:00"]
    )
    assert res.exit_code == 0, res.output
    (line,) = res.stdout.strip().splitlines()
    got = decode(OptimizationReport, json.loads(line))
    assert got.model_dump(mode="json") == report.model_dump(mode="json")


def test_cli_html_and_cost_flags(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.html"
    res = CliRunner().invoke(
        app,
        ["report", "--from", str(archive), "--html", str(out), "--hourly-rate", "100", "--currency", "EUR"],
    )
    assert res.exit_code == 0, res.output
    assert "ROI" in res.stdout and out.exists()
    page = out.read_text()
    assert "100 EUR/h" in page


def test_cli_default_archive_comes_from_the_state_dir(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTE_STATE_DIR", str(archive.parent))
    res = CliRunner().invoke(app, ["report", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["automations"]


def test_cli_without_an_archive_fails_clearly(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", "--from", str(tmp_path / "nope"), "--json"])
    assert res.exit_code == 1
    assert "no run archive" in json.loads(res.stdout)["error"]


# --------------------------------------------------------------------------------------------------
# a real browser draws the charts
# --------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: str, tmp_path: Path) -> np.ndarray:
    from PIL import Image

    tmp_path.mkdir(parents=True, exist_ok=True)
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,3200",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def pixels(img: np.ndarray, hex_color: str, tol: int = 8) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(img - rgb).max(axis=2) <= tol).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)")
def test_headless_chromium_screenshot_shows_the_charts(report: OptimizationReport, tmp_path: Path) -> None:
    img = screenshot(render_html(report), tmp_path / "full")
    counts = {
        k: pixels(img, COLORS[k])
        for k in (
            "saved_line",
            "saved_area",
            "roi_pos",
            "roi_neg",
            "bottleneck_routine",
            "bottleneck_automation",
            "candidate",
        )
    }
    assert all(n > 1500 for n in counts.values()), counts
    # The same check on a page without data finds none of the chart marks, so it can fail.
    empty = compose_report(
        candidates=[], automations=[], test_results=[], runs=[], anomalies=[], cost=COST, now=NOW
    )
    blank = screenshot(render_html(empty), tmp_path / "empty")
    assert all(pixels(blank, COLORS[k]) == 0 for k in counts)


def test_bottleneck_chart_keeps_manual_steps_when_automation_steps_outnumber_them() -> None:
    """On a busy cluster many timed automation runs outranked every manual step, and the chart showed only
    automation steps (seen in the pipeline test on a shared Apache Kafka)."""
    from rote.report.html import chart_bottlenecks

    slow_runs: list[dict[str, Any]] = [
        {"scope": "automation", "kind": "slow", "label": f"step {i}", "total_seconds": 1000.0 - i}
        for i in range(20)
    ]
    manual: list[dict[str, Any]] = [
        {"scope": "routine", "kind": "slow", "label": f"m{i}", "total_seconds": 10.0 - i} for i in range(3)
    ]
    waits: list[dict[str, Any]] = [{"scope": "routine", "kind": "wait", "label": "w", "total_seconds": 500.5}]
    ranked = sorted([*slow_runs, *manual, *waits], key=lambda b: -float(b["total_seconds"]))
    shown = chart_bottlenecks(ranked)
    assert len(shown) == 12
    assert [b for b in shown if b["scope"] == "routine" and b["kind"] == "slow"] == manual
    assert waits[0] in shown
    assert shown == sorted(shown, key=lambda b: -float(b["total_seconds"]))  # still the report's order
    assert chart_bottlenecks(ranked[:5]) == ranked[:5]
