"""`rote sandbox run|hostile|info` through the real CLI and the real jail."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rote.cli import app

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None, reason="the jail needs root and bubblewrap"
)
runner = CliRunner()


def test_run_json_reports_result_and_collects(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("open('r.txt', 'w').write('done')\nprint('hi')\n")
    res = runner.invoke(app, ["sandbox", "run", str(script), "--json", "--collect", "r.txt"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["verdict"] == "passed" and out["stop_reason"] == "exited" and out["stdout"] == "hi\n"
    assert out["collected"] == {"r.txt": "done"}


def test_run_limits_map_to_stop_reasons(tmp_path: Path) -> None:
    loop = tmp_path / "l.sh"
    loop.write_text("sleep 30\n")
    res = runner.invoke(app, ["sandbox", "run", str(loop), "--lang", "bash", "--timeout", "0.5", "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["stop_reason"] == "timeout"
    flood = tmp_path / "f.sh"
    flood.write_text("yes\n")
    res = runner.invoke(
        app, ["sandbox", "run", str(flood), "--lang", "bash", "--output-bytes", "1000", "--json"]
    )
    out = json.loads(res.stdout)
    assert out["stop_reason"] == "output" and out["output_bytes"] > 1000 and len(out["stdout"]) <= 1000
    bomb = tmp_path / "b.sh"
    bomb.write_text(":(){ :|:& };:\nsleep 5\n")
    res = runner.invoke(
        app, ["sandbox", "run", str(bomb), "--lang", "bash", "--pids", "8", "--timeout", "1", "--json"]
    )
    assert json.loads(res.stdout)["stop_reason"] == "pids"


def test_applescript_is_never_a_pass(tmp_path: Path) -> None:
    script = tmp_path / "s.applescript"
    script.write_text('display dialog "hi"\n')
    res = runner.invoke(app, ["sandbox", "run", str(script), "--lang", "applescript", "--json"])
    out = json.loads(res.stdout)
    assert res.exit_code == 1 and out["verdict"] == "unsupported" and not out["passed"]
    assert out["detail"] == "AppleScript is unsupported on this platform"


def test_hostile_json_subset(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    src = Path(__file__).parent / "hostile"
    for name in ("30_ptrace.py", "23_host_loopback.py", "21_read_shadow.py"):
        shutil.copy(src / name, suite / name)
    res = runner.invoke(app, ["sandbox", "hostile", str(suite), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["programs"] == out["contained"] == 3
    assert {o["stop_reason"] for o in out["outcomes"]} == {"seccomp", "network", "exited"}


def test_info_lists_isolation() -> None:
    res = runner.invoke(app, ["sandbox", "info", "--json"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["seccomp_instructions"] > 50 and len(out["uids"]) == 1
