"""`rote eval anomalies` end to end on the NAB test slices."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rote.cli import app
from rote.cli.errors import command_name

SLICES = Path(__file__).resolve().parent / "data" / "nab"


def test_eval_anomalies_json_prints_one_object() -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "anomalies",
            str(SLICES / "data"),
            "--labels",
            str(SLICES / "labels" / "combined_windows.json"),
            "--workers",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "standard",
        "reward_low_FP_rate",
        "reward_low_FN_rate",
        "files",
        "windows",
        "events_per_second",
        "out_of_order",
    }
    assert out["out_of_order"] == {"policy": "accept", "late": 0, "skipped": 0, "duplicates": 0, "files": []}
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


def _clock_changes(src: Path, dest: Path) -> None:
    """The NAB slices with the clock troubles real series have: the hourly ad-exchange series steps back two
    hours (a clock correction) and has a reading twice; the 5-minute series a repeated reading."""
    import shutil

    shutil.copytree(src, dest)
    hourly = dest / "data" / "realAdExchange" / "exchange-4_cpc_results.csv"
    lines = hourly.read_text().splitlines()
    # rows 600..: the clock stepped back two hours (a correction), so one row comes after a later one
    from datetime import datetime, timedelta

    out = [lines[0]]
    for i, line in enumerate(lines[1:], start=1):
        stamp, value = line.split(",")
        if i >= 600:
            at = datetime.fromisoformat(stamp) - timedelta(hours=2)
            stamp = at.strftime("%Y-%m-%d %H:%M:%S")
        out.append(f"{stamp},{value}")
        if i == 300:
            out.append(f"{stamp},{value}")  # the same reading twice
    hourly.write_text("\n".join(out) + "\n")
    five = dest / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
    rows = five.read_text().splitlines()
    rows.insert(1000, rows[999])
    five.write_text("\n".join(rows) + "\n")


def test_eval_anomalies_scores_files_with_repeated_and_backward_timestamps(tmp_path: Path) -> None:
    """As published, real series repeat and step back in time; `rote eval anomalies` scores them (it used
    to abort on the first with "observations must arrive in time order")."""
    _clock_changes(SLICES, tmp_path / "nab")
    labels = str(tmp_path / "nab" / "labels" / "combined_windows.json")
    args = ["eval", "anomalies", str(tmp_path / "nab" / "data"), "--labels", labels, "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["files"] == 2 and out["windows"] == 4
    order = out["out_of_order"]
    assert order["policy"] == "accept" and order["duplicates"] == 3 and order["late"] == 1
    assert order["files"] == [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realAdExchange/exchange-4_cpc_results.csv",
    ]
    clean = json.loads(
        CliRunner()
        .invoke(
            app,
            [
                "eval",
                "anomalies",
                str(SLICES / "data"),
                "--labels",
                str(SLICES / "labels" / "combined_windows.json"),
                "--workers",
                "1",
                "--json",
            ],
        )
        .stdout
    )
    assert abs(out["standard"] - clean["standard"]) < 15  # the same series, a few rows moved
    table = CliRunner().invoke(app, args)
    assert "3 rows repeated a timestamp, 1 came after a later one (0 skipped) in 2 of 2 files" in table.stdout


def test_help_has_no_bool_metavars_and_no_paths_a_user_lacks() -> None:
    for cmd in (
        ["run"],
        ["produce"],
        ["worker"],
        ["report"],
        ["eval", "anomalies"],
        ["eval", "discovery"],
        ["automations", "list"],
        ["sandbox", "serve"],
    ):
        res = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, (cmd, res.output)
        assert "<bool>" not in res.stdout and "../shared" not in res.stdout, cmd
    assert command_name(["rote", "eval", "anomalies", "/tmp/x"]) == "rote eval anomalies"


def test_help_paragraphs_wrap_at_the_terminal_not_at_the_docstrings_line_breaks() -> None:
    """Typer keeps a later paragraph's line breaks: at 80 columns `rote worker --help` read "stops cleanly,
    or after" and then a line of its own (a new user's report). Docstrings are reflowed; lists are not."""
    from rote.cli import reflow

    res = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "On SIGTERM it stops cleanly, or after ROTE_SHUTDOWN_GRACE_SECONDS (25) exits" in res.stdout
    assert reflow("First\n    line.\n\n    Second\n    paragraph.\n\n    - a\n    - b\n") == (
        "First line.\n\nSecond paragraph.\n\n- a\n- b"
    )
