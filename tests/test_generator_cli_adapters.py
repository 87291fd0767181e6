"""`rote automations list|show` over a real archive, and the production adapters (files, HTTP forms, CSV)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from test_registry import T0, file_candidate, metric, result
from typer.testing import CliRunner

from rote.archive import ArchiveWriter
from rote.cli import app
from rote.generator import GeneratorConfig, generate
from rote.generator.bundle import runtime_source
from rote.generator.plan import PlanConfig
from rote.generator.runtime import ActionError, Api, Composite, CsvSheets, Files, HttpForms
from rote.streams.schemas import (
    Candidate,
    RoutineInstance,
    RoutineStep,
    ScoreBreakdown,
    Target,
    encode,
)

# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("last-run")
    auto = generate(file_candidate(), config=GeneratorConfig(plan=PlanConfig(max_train=3)), now=T0)
    w = ArchiveWriter(run_dir)
    w.write("automations", encode(auto))
    for c in auto.test_cases:
        for lang in ("python", "bash"):
            w.write("test-results", encode(result(auto, c.case_id, lang, at=T0 + timedelta(minutes=1))))
    for k in range(4):
        w.write("metrics", encode(metric(auto, k + 1, source="sandbox", dur=0.1 * (k + 1))))
    w.close()
    return run_dir


def test_list_json_is_one_object(archive: Path) -> None:
    out = CliRunner().invoke(app, ["automations", "list", "--from", str(archive), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["by_state"] == {"verified": 1}
    (rec,) = data["automations"]
    assert rec["automation_id"] == "auto-files-1" and rec["state"] == "verified"
    assert rec["stats"]["runs"] == 4 and rec["stats"]["success_rate"] == 1.0
    assert rec["stats"]["duration_p50_seconds"] == pytest.approx(0.2)


def test_show_prints_every_target_source(archive: Path) -> None:
    out = CliRunner().invoke(app, ["automations", "show", "auto-files-1", "--from", str(archive), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["sources"]) == {"python", "bash", "applescript"}
    assert "def run(api, p):" in data["sources"]["python"]
    assert "rote_write_file" in data["sources"]["bash"]
    assert "on run argv" in data["sources"]["applescript"]
    text = CliRunner().invoke(app, ["automations", "show", "auto-files-1", "--from", str(archive)])
    assert text.exit_code == 0 and "verified" in text.stdout and "rote_copy_file" in text.stdout
    # the same tally as `list` and `report` (a new user saw "failed 3" here and "3 unsupported" there)
    from rote.report.tally import current_version_verdicts, tally

    expected = tally(current_version_verdicts(data["test_results"])).text()
    assert f"tests (current version): {expected}" in " ".join(text.stdout.split())
    listing = CliRunner().invoke(app, ["automations", "list", "--from", str(archive)])
    assert listing.exit_code == 0 and "auto-files-1" in listing.stdout
    missing = CliRunner().invoke(app, ["automations", "show", "nope", "--from", str(archive), "--json"])
    assert missing.exit_code == 1 and "error" in json.loads(missing.stdout)


def test_show_and_list_print_control_characters_instead_of_obeying_them(tmp_path: Path) -> None:
    """An attacker's sweep: an escape sequence in a recorded name or value (Bash keeps it raw inside its
    single quotes) reached the terminal through `show` (`\\x1b]0;PWNED` set the window title, `\\x1b[2J`
    cleared the screen), and rich markup in a name was obeyed."""
    from rote.streams.schemas import GeneratedSource

    auto = generate(file_candidate(), config=GeneratorConfig(plan=PlanConfig(max_train=3)), now=T0)
    bash = auto.sources["bash"]
    evil = auto.model_copy(
        update={
            "name": "Copy \x1b]0;PWNED\x07 [link=https://evil.example]files[/link] \u202eexe.txt",
            "sources": {
                **auto.sources,
                "bash": GeneratedSource(**{**bash.model_dump(), "source": bash.source + "# \x1b[2J\n"}),
            },
        }
    )
    w = ArchiveWriter(tmp_path)
    w.write("automations", encode(evil))
    w.close()
    for args in (["show", evil.automation_id], ["list"]):
        out = CliRunner().invoke(app, ["automations", *args, "--from", str(tmp_path)], env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.stdout and "\u202e" not in out.stdout, args
    shown = CliRunner().invoke(app, ["automations", "show", evil.automation_id, "--from", str(tmp_path)])
    assert "\\x1b]0;PWNED" in shown.stdout and "\\x1b[2J" in shown.stdout
    assert "[link=https://evil.example]" in shown.stdout  # markup is text


def test_list_keeps_long_ids_on_one_line_at_80_columns(tmp_path: Path) -> None:
    """An id is what a reader copies into `rote automations show`: folded in two it cannot be (a new user's
    listing at 80 columns). The other columns fold instead."""
    cid = "real-2r-log52-v-3f9a8c2d1e7b"
    auto = generate(
        file_candidate().model_copy(update={"candidate_id": cid}),
        config=GeneratorConfig(plan=PlanConfig(max_train=3)),
        now=T0,
    )
    w = ArchiveWriter(tmp_path)
    w.write("automations", encode(auto))
    w.close()
    listing = CliRunner().invoke(app, ["automations", "list", "--from", str(tmp_path)], env={"COLUMNS": "80"})
    assert listing.exit_code == 0, listing.output
    assert max(len(line) for line in listing.stdout.splitlines()) <= 80
    assert any(f"auto-{cid}" in line for line in listing.stdout.splitlines()), listing.stdout
    # nothing is cut off: every figure and the whole reason are there (a new user's table at 80 columns
    # lost its right-hand columns, and reasons were cut at 70 characters)
    flat = " ".join(listing.stdout.split())
    for figure in ("runs in:", "tests:", "runs:", "success:", "p50:"):
        assert figure in flat, listing.stdout
    if auto.state_reason:
        assert " ".join(auto.state_reason.split()) in flat
    wide = CliRunner().invoke(app, ["automations", "list", "--from", str(tmp_path)], env={"COLUMNS": "160"})
    assert wide.exit_code == 0 and "success" in wide.stdout and "p50" in wide.stdout


def test_a_long_word_in_a_reason_does_not_push_columns_off_a_wide_listing() -> None:
    """Rich sizes a column no narrower than its longest word: with a URL in a rejection reason and a test
    tally beside it, a new user's listing was wider than 120 columns and the console cut its right-hand
    columns off (`p50`). `fit` sets the columns' widths to the console's; the URL folds."""
    import io

    from rich.console import Console

    from rote.cli.automations_cmd import _COLUMNS
    from rote.cli.console import add_row, fit, table

    url = "'https://mail.example.com/mail/u/0/#inbox/FMfcgz837624904'"
    case = "rt-41caf19fd179498d-i1-821fdf28-2214-4c08-ae8b-a75fb30e9e57"
    why = f"python test {case}: failed (exited): action 1 copy: url {url} != {url}"
    rows = [
        ["auto-rt-41caf19fd179498d", "v2", "rejected", why, "python", "0/1 passed, 2 unsupported"],
        ["auto-rt-2be1a67ffc0139d1", "v1", "rejected", "no language that runs here can express every step"],
    ]
    rows[0] += ["1", "0%", "0.0754s"]
    rows[1] += ["–", "none ran, 3 unsupported", "0", "–", "–"]

    def render(fitted: bool) -> list[str]:
        t = table(*_COLUMNS, title="automations", whole={"id": 24})
        for row in rows:
            add_row(t, *row)
        out = io.StringIO()
        console = Console(file=out, width=120, soft_wrap=False)
        console.print(fit(t, console.width) if fitted else t)
        return out.getvalue().splitlines()

    def whole(lines: list[str]) -> bool:
        boxed = [line for line in lines if line[:1] in "┏┃┡│└"]
        return bool(boxed) and all(line.rstrip()[-1] in "┓┃┩│┘" for line in boxed)

    assert not whole(render(False))  # what rich does alone: the right-hand columns cut off
    lines = render(True)
    assert max(len(line) for line in lines) <= 120 and whole(lines), "\n".join(lines)
    text = "\n".join(lines)
    assert "p50" in text and "0.0754s" in text and "FMfcgz" in text and "auto-rt-41caf19fd179498d" in text


# --------------------------------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------------------------------


def test_files_adapter_is_confined(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link").symlink_to(tmp_path)
    f = Files(root)
    f.perform("write_file", {"file": "/abs/dir/a.txt"}, "x\r\ny")
    assert (root / "abs" / "dir" / "a.txt").read_bytes() == b"x\r\ny"
    assert f.perform("read_file", {"file": "C:\\abs\\dir\\a.txt"}, None) == "x\r\ny"
    (root / "plant.txt").symlink_to(tmp_path / "secret.txt")  # the file itself a link (attacker's sweep)
    for bad in ("../secret.txt", "a/../../secret.txt", "link/secret.txt", "", "plant.txt"):
        with pytest.raises(ActionError):
            f.perform("read_file", {"file": bad}, None)
    with pytest.raises(ActionError, match="symbolic link"):
        f.perform("write_file", {"file": "plant.txt"}, "overwritten")
    with pytest.raises(ActionError, match="symbolic link"):
        f.perform("copy_file", {"file": "plant.txt"}, "copy.txt")
    assert (tmp_path / "secret.txt").read_text() == "outside"
    f.perform("copy_file", {"file": "abs/dir/a.txt"}, "b/c.txt")
    f.perform("move_file", {"file": "b/c.txt"}, "d.txt")
    assert (root / "d.txt").read_bytes() == b"x\r\ny" and not (root / "b" / "c.txt").exists()
    f.perform("delete_file", {"file": "d.txt"}, None)
    with pytest.raises(ActionError):
        f.perform("open_file", {"file": "d.txt"}, None)


class _Form(BaseHTTPRequestHandler):
    posts: ClassVar[list[dict[str, list[str]]]] = []
    gets: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", 0))
        _Form.posts.append(urllib.parse.parse_qs(self.rfile.read(n).decode(), keep_blank_values=True))
        code = 500 if self.path.endswith("/broken") else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"thanks")

    def do_GET(self) -> None:
        _Form.gets.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<form></form>")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def form_server() -> Iterator[str]:
    _Form.posts.clear()
    _Form.gets.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Form)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def test_http_forms_adapter_posts_filled_fields(form_server: str) -> None:
    url = form_server + "/form"
    hostile = "a&b=c; $(touch /tmp/x) 'quoted' \"dq\" 名前\n"
    api = Api(HttpForms(timeout=5))
    api.open_url(0, url=url)
    api.fill_field(1, "John Doe", field="name", url=url)
    api.copy(2, hostile)
    api.paste(3, field="note", url=url)
    api.click(4, element="agree", element_type="checkbox", url=url)
    api.click(5, element="submit", element_type="submit", url=url)
    assert _Form.gets == ["/form"]
    assert _Form.posts == [{"name": ["John Doe"], "note": [hostile], "agree": ["on"]}]
    api.fill_field(6, "x", field="name", url=form_server + "/broken")
    with pytest.raises(ActionError, match="HTTP 500"):
        api.click(7, element="submit", element_type="submit", url=form_server + "/broken")
    with pytest.raises(ActionError):
        HttpForms().perform("open_url", {"url": "file:///etc/passwd"}, None)


def test_csv_sheets_adapter(tmp_path: Path) -> None:
    (tmp_path / "Book.csv").write_text(
        'name,date\nJohn,11/03/1986\n"Doe, Jane",01/02/2000\n', encoding="utf-8"
    )
    clip = [""]
    d = Composite([CsvSheets(tmp_path, clip), Files(tmp_path)])
    assert (
        d.perform("copy_cell", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "A3"}, None)
        == "Doe, Jane"
    )
    assert clip == ["Doe, Jane"]
    assert d.perform("read_cell", {"workbook": "Book.xlsx", "cell": "B2"}, None) == "11/03/1986"
    assert d.perform("read_cell", {"workbook": "Book.xlsx", "cell": "Z99"}, None) == ""
    with pytest.raises(ActionError):
        d.perform("read_cell", {"workbook": "Book.xlsx", "cell": "2B"}, None)


def _form_candidate(url: str) -> Candidate:
    """Excel row -> web form: name from A, date re-typed with dashes from B, then submit."""
    rows = [
        ("John", "11/03/1986"),
        ("Albert", "11/04/1986"),
        ("Steven", "18/06/1986"),
        ("Gerard", "08/04/1987"),
    ]
    labels = ["copyCell A", "paste name", "copyCell B", "editField date", "clickButton submit"]
    types = ["copyCell", "paste", "copyCell", "editField", "clickButton"]
    insts = []
    for k, (name, date) in enumerate(rows):
        row = k + 2
        insts.append(
            RoutineInstance(
                event_ids=[f"e{k}{s}" for s in range(5)],
                values=[name, name, date, date.replace("/", "-"), None],
                targets=[
                    Target(workbook="Book.xlsx", sheet="Sheet1", cell=f"A{row}"),
                    Target(field="name", url=url),
                    Target(workbook="Book.xlsx", sheet="Sheet1", cell=f"B{row}"),
                    Target(field="date", url=url),
                    Target(element="submit", element_type="submit", url=url),
                ],
                start=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=k),
                end=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=k, minutes=1),
            )
        )
    t = datetime(2024, 1, 2, tzinfo=UTC)
    return Candidate(
        candidate_id="form",
        version=1,
        user_id="u",
        routine=labels,
        steps=[
            RoutineStep(label=lab, app="x", action_type=ty) for lab, ty in zip(labels, types, strict=True)
        ],
        occurrences=4,
        instances=insts,
        score=90,
        breakdown=ScoreBreakdown(
            frequency=1, time_cost=1, regularity=1, determinism=1, variability=1, length=1
        ),
        mean_duration_seconds=60,
        observed_hours_per_year=1,
        estimated_hours_saved_per_year=1,
        rank=1,
        priority="high",
        first_seen=t,
        last_seen=t,
        updated_at=t,
    )


def test_generated_script_submits_a_real_form_in_production(form_server: str, tmp_path: Path) -> None:
    auto = generate(
        _form_candidate(form_server + "/form"), config=GeneratorConfig(plan=PlanConfig(max_train=3))
    )
    assert auto.parameters == ["row"]
    (tmp_path / "automation.py").write_text(auto.sources["python"].source, encoding="utf-8")
    (tmp_path / "rote_runtime.py").write_bytes(runtime_source())
    (tmp_path / "Book.csv").write_text(
        "name,date\nJohn,11/03/1986\nMaría $(x),24/12/1999\n", encoding="utf-8"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "automation.py",
            "--driver",
            "prod",
            "--root",
            ".",
            "--set",
            "row=3",
            "--record",
            "r.jsonl",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _Form.posts == [{"name": ["María $(x)"], "date": ["24-12-1999"]}]
    ops = [json.loads(line)["op"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert ops == ["copy_cell", "paste", "copy_cell", "fill_field", "click"]
    bad = subprocess.run(
        [sys.executable, "automation.py", "--driver", "prod", "--root", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3 and "missing parameters: row" in bad.stderr
