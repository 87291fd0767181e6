"""`rote sandbox run|hostile|info` through the real CLI and the real jail."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
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


HOSTILE = Path(__file__).parent / "hostile"
ROTE = Path(sys.executable).with_name("rote")


def _run_on_a_terminal(*args: str) -> bytes:
    """`rote sandbox run ...` with stdout and stderr on a real pseudo-terminal; everything it wrote."""
    main, sub = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(ROTE), "sandbox", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=sub,
            stderr=sub,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"},
        )
        os.close(sub)
        sub = -1
        out = bytearray()
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=60)
        return bytes(out)
    finally:
        os.close(main)
        if sub != -1:
            os.close(sub)


PAYLOAD_ESCAPES = (b"\x1b]52;", b"\x1b]0;", b"\x1b[8m", b"\x1b[2K", b"\x1b[1A", b"\xc2\x9b")


def test_escapes_are_shown_not_obeyed_on_a_terminal() -> None:
    out = _run_on_a_terminal(str(HOSTILE / "68_terminal_escapes.py"))
    for seq in PAYLOAD_ESCAPES:
        assert seq not in out, seq
    text = out.decode()
    assert "\\x1b]52;c;cm0gLXJmIH4K\\x07" in text  # the clipboard write, visible and inert
    assert "\\x1b]0;rote: all tests passed\\x07" in text and "\\x1b[8mconcealed" in text
    assert "\\r\\x1b[2K\\x1b[32mexited" in text and "\\x9b31m" in text
    assert "plain text stays" in text
    # The runner's own status line is last and on a line of its own.
    last = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()][-1]
    assert re.sub(r"\x1b\[[0-9;]*m", "", last).startswith("exited: exited with status 0 | exit 0"), last


def test_raw_copies_the_bytes_even_to_a_terminal() -> None:
    out = _run_on_a_terminal(str(HOSTILE / "68_terminal_escapes.py"), "--raw")
    assert b"\x1b]52;c;cm0gLXJmIH4K\x07" in out


def test_output_into_a_pipe_is_byte_for_byte(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_bytes(b"import sys\nsys.stdout.buffer.write(b'\\x1b[31mred\\x00\\xff')\n")
    proc = subprocess.run([str(ROTE), "sandbox", "run", str(script)], capture_output=True, check=False)
    assert proc.returncode == 0 and proc.stdout == b"\x1b[31mred\x00\xff", proc


def test_serve_needs_the_result_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTE_RESULT_KEY", raising=False)
    monkeypatch.delenv("ROTE_RESULT_KEY_FILE", raising=False)
    res = runner.invoke(app, ["sandbox", "serve", "--bootstrap", "127.0.0.1:9", "--metrics-port", "0"])
    assert res.exit_code == 2 and "ROTE_RESULT_KEY" in res.output
    monkeypatch.setenv("ROTE_RESULT_KEY", "short")
    res = runner.invoke(app, ["sandbox", "serve", "--bootstrap", "127.0.0.1:9", "--metrics-port", "0"])
    assert res.exit_code == 2 and "at least 32" in res.output
