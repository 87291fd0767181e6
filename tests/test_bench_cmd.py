"""`rote bench`: section selection, the JSON report's shape, failure isolation, and the pipeline benchmark's
legs on a real broker. No timing assertions: speed belongs in the benchmark output, not in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rote.cli import app, bench_cmd

runner = CliRunner()


def _json(args: list[str]) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, args)
    return result.exit_code, json.loads(result.stdout)


def test_quick_anomaly_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code, report = _json(["bench", "--quick", "--only", "anomaly", "--json", "--out", str(out)])
    assert code == 0
    assert report["ok"] is True and report["quick"] is True
    assert set(report["sections"]) == {"anomaly"}
    assert report["machine"]["cpus"] >= 1
    section = report["sections"]["anomaly"]
    assert section["ok"] is True and section["seconds"] >= 0
    result = section["result"]
    assert result["events"] == 5_000 and result["repeats"] == 3
    for key in (
        "stream_detector_events_per_second",
        "series_monitor_events_per_second",
        "river_gaussian_scorer_events_per_second",
        "river_half_space_trees_events_per_second",
    ):
        assert result[key] > 0
    assert json.loads(out.read_text()) == report


def test_failed_section_is_reported_and_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench_cmd.SECTIONS, "discovery", "rote._no_such_benchmark_module")
    code, report = _json(["bench", "--quick", "--only", "anomaly,discovery", "--json"])
    assert code == 1
    assert report["ok"] is False
    assert list(report["sections"]) == ["discovery", "anomaly"]  # canonical order, not the flag's
    failed = report["sections"]["discovery"]
    assert failed["ok"] is False and "ModuleNotFoundError" in failed["error"] and failed["traceback"]
    assert report["sections"]["anomaly"]["ok"] is True


def test_tables_name_every_measure() -> None:
    result = runner.invoke(app, ["bench", "--quick", "--only", "anomaly"])
    assert result.exit_code == 0
    assert "anomaly (ok" in result.stdout
    assert "stream_detector_events_per_second" in result.stdout


def test_only_rejects_unknown_sections() -> None:
    assert bench_cmd.parse_only(None) == list(bench_cmd.SECTIONS)
    assert bench_cmd.parse_only(" Pipeline , anomaly") == ["anomaly", "pipeline"]
    with pytest.raises(typer.BadParameter):
        bench_cmd.parse_only("anomaly,gpu")
    result = runner.invoke(app, ["bench", "--only", "gpu"])
    assert result.exit_code == 2


def test_flatten_nested_results() -> None:
    nested = {"a": 1, "b": {"c": 2.5, "d": {"e": None}}, "f": ["x"]}
    assert dict(bench_cmd.flatten(nested)) == {"a": 1, "b.c": 2.5, "b.d.e": None, "f": ["x"]}


def test_bench_events_rekey_real_log_per_copy() -> None:
    from rote.streams.schemas import UserAction, decode

    from rote.bench_pipeline import bench_events
    from rote.importers import bundled_log, load_actions

    path, fmt = bundled_log()
    base = len(load_actions(path, fmt=fmt))
    events = bench_events(base + 10)
    assert len(events) == base + 10
    decoded = [decode(UserAction, value) for _key, value in events]
    assert {k.decode() for k, _ in events} == {"bench-u0", "bench-u1"}
    assert all(key.decode() == a.user_id for (key, _), a in zip(events, decoded, strict=True))
    assert len({a.event_id for a in decoded}) == len(decoded)


@pytest.mark.integration
@pytest.mark.tansu
@pytest.mark.slow
def test_pipeline_benchmark_reads_every_event_on_each_leg(tansu_broker: Any) -> None:
    from rote.bench_pipeline import measure

    steps: list[str] = []
    result = measure(events=400, raw_repeats=1, faust_repeats=1, discovery_repeats=1,
                     bootstrap=tansu_broker.bootstrap, progress=steps.append)
    # Each leg raises if it read fewer than `events`; here: every leg ran and reported.
    assert steps[0] == "producing" and steps[-1] == "discovery in process"
    assert result["events"] == 400 and result["users"] == 1
    for leg in ("raw_aiokafka", "raw_aiokafka_getmany", "faust_agent"):
        assert result[leg]["repeats"] == 1
        assert result[leg]["start_to_last_event_s"] >= result[leg]["start_to_first_event_s"]
    assert result["faust_agent"]["us_per_event"] > 0
    assert result["discovery_in_process"]["us_per_event"] > result["discovery_in_process"][
        "decode_us_per_event"] > 0
    assert set(result["ratios"]) == {
        "raw_vs_faust_throughput", "faust_overhead_us_per_event", "discovery_vs_faust_cost",
        "faust_share_of_agent_cost",
    }
