"""The run summary people read: a golden test of its text (units, counts), its JSON, and its width.

The archive is built from the Leno StudentRecord/Reimbursement slices through `test_workflow_support`
(real routines and instances; the automations, tests and runs around them are the fixture's, as in the
report tests), plus the per-language results the sandbox really produces for Bash and AppleScript here
(`unsupported`). `ROTE_UPDATE_GOLDEN=1` rewrites the golden file after a deliberate change.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_workflow_support import leno_events, write_archive

from rote.efficiency import CostModel
from rote.importers import ImportStats
from rote.pipeline.options import Progress
from rote.pipeline.summary import render, rows, summarize
from rote.report import compose_report
from rote.report.units import count, duration, hours, money, percent
from rote.streams.schemas import Candidate, ExpectedAction, GeneratedSource, TestCase, TestResult

GOLDEN = Path(__file__).resolve().parent / "data" / "summary" / "golden_summary.txt"
NOW = datetime(2020, 4, 20, tzinfo=UTC)


def _unsupported(results: list[TestResult]) -> list[TestResult]:
    """What the sandbox reports for the same cases in the languages that cannot run here."""
    out = []
    for r in results:
        for lang in ("bash", "applescript"):
            out.append(
                r.model_copy(
                    update={
                        "result_id": f"{r.result_id}-{lang}",
                        "language": lang,
                        "verdict": "unsupported",
                        "passed": False,
                        "stop_reason": "unsupported",
                        "exit_code": None,
                    }
                )
            )
    return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    events: dict[str, list[Any]] = leno_events()
    first: Candidate = events["candidates"][0]
    events["candidates"][0] = first.model_copy(
        update={
            "name": "Copy a student record from StudentRecords.xlsx into the NewRecord form",
            "variant_note": "Unlike the 46-step variant: also ticks DecisionBox",
            "sop": ["1. In Excel, copy the value of column A", "2. In Chrome, paste it into First name"],
        }
    )
    # each automation is generated for Python, Bash and AppleScript and tested on three held-out cases
    cases = [
        TestCase(case_id=f"case-{n}", inputs={}, expected=[ExpectedAction(action_type="paste")])
        for n in range(3)
    ]
    unsupported = GeneratedSource(
        language="bash",
        source="",
        supported=False,
        static_check="ok",
        unsupported_steps=["read a spreadsheet cell"],
    )
    events["automations"] = [
        a.model_copy(
            update={
                "test_cases": cases,
                "sources": {
                    **a.sources,
                    "bash": unsupported,
                    "applescript": unsupported.model_copy(update={"language": "applescript"}),
                },
            }
        )
        for a in events["automations"]
    ]
    events["test-results"] = events["test-results"] + _unsupported(events["test-results"])
    report = compose_report(
        candidates=events["candidates"],
        automations=events["automations"],
        test_results=events["test-results"],
        runs=events["metrics"],
        anomalies=events["anomalies"],
        cost=CostModel(),
        now=NOW,
    )
    events["optimization-reports"] = [report]
    return write_archive(tmp_path_factory.mktemp("summary") / "run", events)


def _state() -> Progress:
    s = Progress(produced=2409, injected_bad=5, import_rejected=3, production_runs=0)
    s.counts = {
        "user-actions": 2414,
        "candidates": 24,
        "automations": 10,
        "test-results": 90,
        "metrics": 150,
        "anomalies": 2,
        "optimization-reports": 4,
        "dead-letters": 8,
        "run-requests": 0,
    }
    return s


def _imported() -> ImportStats:
    stats = ImportStats(
        path="StudentRecord.csv",
        format="actionlogger",
        encoding="utf-8",
        delimiter=",",
        rows=2412,
        valid=2409,
    )
    for line in (651, 1309, 1325):
        stats.add_invalid(
            "implausible time", f"line {line}: timestamp 2027-03-01T09:10:00Z is outside the plausible window"
        )
    return stats


@pytest.fixture(scope="module")
def summary(archive: Path) -> dict[str, Any]:
    s = summarize(
        archive,
        _state(),
        seconds=31.7,
        replay=Path("/data/StudentRecord.csv"),
        broker_kind="tansu",
        imported=_imported(),
    )
    s["archive"] = ".rote/last-run"
    s["run_log"] = ".rote/last-run/run.log"
    return s


def _text(summary: dict[str, Any], width: int) -> str:
    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    render(summary, console)
    return console.export_text()


def test_golden_summary(summary: dict[str, Any]) -> None:
    text = _text(summary, 100)
    if os.environ.get("ROTE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "summary text changed; ROTE_UPDATE_GOLDEN=1 rewrites it after review"


def test_summary_counts_reconcile(summary: dict[str, Any], archive: Path) -> None:
    # "actions in" are the file's valid rows; the demo's injected events and the importer's rejects apart
    assert summary["events_in"] == 2409 and summary["injected_invalid_events"] == 5
    assert summary["rows_rejected"] == 3 and summary["import"]["invalid"] == {"implausible time": 3}
    # tests per language: the current versions' results, unsupported never counted as failed
    tests = summary["tests"]
    assert set(tests) == {"python", "bash", "applescript"}
    assert tests["bash"]["ran"] == 0 and tests["bash"]["unsupported"] == tests["python"]["ran"] > 0
    assert tests["python"]["passed"] == tests["python"]["ran"]
    assert summary["test_results"] == 27 and tests["python"]["ran"] == 3  # v2 of two automations: untested
    # hours that could be saved leave out routines whose automation was rejected, and add up
    tops = summary["top_candidates"]
    assert (
        summary["estimated_hours_saved_per_year"]
        <= round(sum(c["estimated_hours_saved_per_year"] for c in tops), 1)
        + summary["rejected_hours_left_out"]
        + 0.2
    )
    # the registry's states (the vocabulary of `rote automations list`), ROI with its cost model
    assert set(summary["automations"]) <= {
        "generated",
        "testing",
        "verified",
        "active",
        "rejected",
        "retired",
    }
    assert summary["roi_explained"].startswith(percent(summary["roi"], signed=True))
    assert "× 1.0 h review at 50.00 USD/h" in summary["roi_explained"]
    named = next(c for c in tops if c["sop"])
    assert named["name"].startswith("Copy a student record") and named["variant_note"]
    json.dumps(summary)  # `--json` prints it as is


def test_no_raw_floats_and_human_units(summary: dict[str, Any]) -> None:
    text = _text(summary, 100)
    assert not re.search(r"\d\.\d{3,}", text), "a raw float reached the summary"
    assert "{" not in text and "'" not in text.split("ROI")[0], "a Python dict or repr reached the summary"
    flat = " ".join(text.split())
    assert "2,409 actions in" in flat and "3 invalid rows of the file dead-lettered" in flat
    assert "5 injected malformed events (demo)" in flat
    assert "python 3 ran, 3 passed · bash 3 unsupported" in flat
    assert "paste_q3_name[first]" in flat  # user data is text, never rich markup


@pytest.mark.parametrize("width", [40, 80, 200])
def test_summary_fits_any_width_and_loses_nothing(summary: dict[str, Any], width: int) -> None:
    text = _text(summary, width)
    assert all(len(line) <= width for line in text.splitlines())
    assert text.count("…") == _text(summary, 400).count("…"), "a line was cut short"
    flat = "".join(text.split())
    for head, body in rows(summary):
        assert "".join(body.split()) in flat, (head, body)


def test_units() -> None:
    assert duration(4182.164539020656) == "1 h 09 min" and duration(0.42) == "0.42 s"
    assert duration(75) == "1 min 15 s" and duration(12.4) == "12 s" and duration(None) == "–"
    assert duration(-90) == "−1 min 30 s" and duration(3 * 86400 + 4000) == "3 d 1 h"
    assert hours(175.31) == "175 h" and hours(3.456) == "3.5 h" and hours(0) == "0 h"
    assert money(57.873, "USD") == "57.87 USD" and money(-1234.5, "EUR") == "−1,234 EUR"
    assert percent(-0.8548791608628309, signed=True) == "−85 %" and percent(0.12, signed=True) == "+12 %"
    assert percent(0.0, signed=True) == "0 %" and count(2409) == "2,409"


def test_a_demo_with_nothing_to_run_says_so(summary: dict[str, Any]) -> None:
    """Another log than the bundled one: the demo found no automation that fills its form; the summary says
    so rather than "0 submissions, 0 correct (0 of 50 students)" (what a first run on a foreign log read)."""
    idle = {**summary, "demo_form": {"submitted": 0, "correct": 0, "expected": 50, "runs_requested": 0}}
    text = " ".join(_text(idle, 100).split())
    assert "not run: no verified automation fills the demo's form" in text and "0 of 50" not in text
    ran = {**summary, "demo_form": {"submitted": 50, "correct": 50, "expected": 50, "runs_requested": 50}}
    assert "50 submissions, 50 correct" in " ".join(_text(ran, 100).split())


def test_batched_actions_are_not_read_as_actions(summary: dict[str, Any]) -> None:
    """A producer that batches sends fewer `user-actions` messages than actions: the row says so (a new user
    read "user-actions 14" as 14 actions)."""
    batched = {**summary, "topics": {**summary["topics"], "user-actions": 14}}
    messages = dict(rows(batched))["messages"]
    assert "user-actions 14 (batches of actions)" in messages
    assert "user-actions 2,414 ·" in dict(rows(summary))["messages"]  # one action each: nothing to add


def test_the_hint_names_an_archive_outside_the_default_state_dir(summary: dict[str, Any]) -> None:
    """`rote run --state-dir st` wrote st/last-run: the suggested commands must find it (a new user's
    `rote automations list` said "no run archive at .rote/last-run")."""
    text = _text({**summary, "archive": "st/last-run"}, 200)
    hint = "(rote report --from st/last-run --html report.html; rote automations list --from st/last-run)"
    assert hint in text
    assert "(rote report --html report.html; rote automations list)" in _text(summary, 200)
    # `rote run --state-dir st` exports ROTE_STATE_DIR for its parts; it says whether the caller needs --from
    told = _text({**summary, "archive": "st/last-run", "archive_needs_from": True}, 200)
    assert hint in told


def test_a_form_nothing_ran_against_has_no_target_in_json() -> None:
    """`--json` on a foreign log said `"expected": 50` beside a text "not run" (a new user's run)."""
    from rote.demo.form import FormStats
    from rote.demo.run import DemoProgress, form_summary

    idle = form_summary(FormStats().to_json(), DemoProgress())
    assert idle["expected"] is None and idle["runs_requested"] == 0
    assert idle["not_run"].startswith("no verified automation")
    ran = form_summary(FormStats(submitted=50, correct=50).to_json(), DemoProgress(requested=50, answered=50))
    assert ran["expected"] == 50 and "not_run" not in ran


def test_at_80_columns_the_hint_commands_are_lines_of_their_own(summary: dict[str, Any]) -> None:
    """Wrapped, the archive line broke a path in two where a reader copies it (a new user at 80 columns)."""
    text = _text({**summary, "archive": "/tmp/state-dir/last-run"}, 80)
    lines = text.splitlines()
    assert "archive: /tmp/state-dir/last-run" in lines
    frm = "--from /tmp/state-dir/last-run"
    assert f"  rote report {frm} --html report.html" in lines
    assert f"  rote automations list {frm}" in lines
    assert max(len(line) for line in lines) <= 80


def test_repeated_event_ids_are_counted_and_said(summary: dict[str, Any], tmp_path: Path) -> None:
    """An export with records written twice (same id): the run said "1,188 actions in" while discovery took
    1,182 (a new user compared it with `eval discovery`'s duplicate count). The import counts them and the
    summary says they are learnt once."""
    from rote.importers import read_log

    log = tmp_path / "export.jsonl"
    rec = {"user_id": "u", "app": "Web", "action_type": "click", "target": {"field": "Save"}}
    lines = [{**rec, "event_id": f"e{i}", "timestamp": f"2026-11-23T08:00:0{i}Z"} for i in range(5)]
    # an id reused at another time, or by another user, is another action (discovery learns it)
    others = [{**lines[0], "timestamp": "2026-11-23T09:00:00Z"}, {**lines[2], "user_id": "v"}]
    log.write_text("\n".join(json.dumps(x) for x in [*lines, lines[1], lines[3], *others]) + "\n")
    imported = read_log(log, fmt="jsonl")
    assert imported.stats.valid == 9 and imported.stats.repeated_ids == 2
    assert imported.stats.to_dict()["repeated_ids"] == 2
    told = {**summary, "import": {**(summary.get("import") or {}), "repeated_ids": 2}}
    assert "2 repeated records (same id and time: learnt once)" in dict(rows(told))["input"]
    assert "repeated" not in dict(rows(summary))["input"]


def test_a_row_with_an_unclosed_quote_is_said(summary: dict[str, Any]) -> None:
    """The import reads a line whose quote never closes as plain text; the run summary says so, with the
    line, since the value keeps a quote character the person may want to fix in their export."""
    told = {**summary, "import": {"stray_quotes": 1, "first": {"stray quote": "line 2089"}}}
    assert "1 row with an unclosed quote read as text (line 2089)" in dict(rows(told))["input"]
    assert "quote" not in dict(rows(summary))["input"]
