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


def test_backlog_is_the_real_log_as_many_users_in_both_wire_forms() -> None:
    from rote.pipeline_bench.backlog import make_backlog
    from rote.streams.fast import decode_message

    backlog = make_backlog(3, 120, batch=50)
    assert backlog.actions == 360 and len(backlog.singles) == 360 and len(backlog.batches) == 9
    singles = [decode_message(v).actions[0] for _k, v in backlog.singles]
    batched = [a for _k, v in backlog.batches for a in decode_message(v).actions]
    assert sorted(a.event_id for a in singles) == sorted(a.event_id for a in batched)
    assert len({a.event_id for a in singles}) == 360
    assert {k.decode() for k, _ in backlog.batches} == {"bench-u0", "bench-u1", "bench-u2"}
    assert all(k.decode() == decode_message(v).actions[0].user_id for k, v in backlog.batches)


@pytest.mark.integration
@pytest.mark.tansu
@pytest.mark.slow
def test_pipeline_benchmark_runs_every_leg_on_the_real_worker() -> None:
    from rote.pipeline_bench import measure

    steps: list[str] = []
    result = measure(
        users=4,
        per_user=150,
        repeats=1,
        sweep=((2, 150),),
        memory_users=20,
        latency_seconds=25.0,
        progress=steps.append,
    )
    assert steps[0] == "transport and framework legs" and steps[-1].startswith("sweep")
    assert result["raw_getmany_per_s"] > 0 and result["faust_trivial_per_s"] > 0
    run = result["real_worker"]["runs"][0]
    assert run["actions"] == 600 and run["actions_per_s"] > 0 and run["cpu_us_per_action"] is not None
    assert result["real_worker_actions_per_s"] == run["actions_per_s"]
    assert result["latency_p99_ms"] >= result["latency_p50_ms"] > 0
    # candidates of the last actions, released by the lateness hold after the last send, are counted apart
    assert result["latency"]["after_stream_end_candidates"] >= 0
    assert result["rss_mb_per_10k_users"] is not None
    assert result["sweep"]["rows"][0]["actions_per_s"] > 0
