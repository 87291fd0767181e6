"""`rote eval anomalies` end to end on the NAB test slices."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rote.cli import app

SLICES = Path(__file__).resolve().parent / "data" / "nab"


def test_eval_anomalies_json_prints_one_object() -> None:
    result = CliRunner().invoke(app, ["eval", "anomalies", str(SLICES / "data"), "--labels",
                                      str(SLICES / "labels" / "combined_windows.json"), "--workers", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate", "files", "windows",
                        "events_per_second"}
    assert out["files"] == 2 and out["windows"] == 4
    assert out["reward_low_FN_rate"] >= out["standard"] >= out["reward_low_FP_rate"]
    assert out["events_per_second"] > 0


def test_eval_anomalies_table_and_bad_profile() -> None:
    labels = str(SLICES / "labels" / "combined_windows.json")
    args = ["eval", "anomalies", str(SLICES / "data"), "--labels", labels, "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--profile", "reward_low_FP_rate"])
    assert result.exit_code == 0, result.output
    assert "reward_low_FP_rate" in result.stdout and "4 windows" in result.stdout
    bad = CliRunner().invoke(app, [*args, "--profile", "nope"])
    assert bad.exit_code != 0


def test_eval_anomalies_unlabelled_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    labels = tmp_path / "labels.json"
    labels.write_text("{}")
    result = CliRunner().invoke(app, ["eval", "anomalies", str(tmp_path), "--labels", str(labels), "--json"])
    assert result.exit_code == 1
