"""The demo's workbook and form replica: built from the recording, checked against the recording."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rote.demo.form import FORM_PATH, THANKS_PATH, FormServer, grade, validate
from rote.demo.students import (
    FORM_FIELDS,
    WORKBOOK_NAME,
    expected_submission,
    students_from_log,
    write_workbook,
)
from rote.drivers.sheets import Sheets


@pytest.fixture(scope="module")
def students() -> list:
    return students_from_log()


def _final_values_per_record() -> list[dict[str, str]]:
    """What the person finally left in each form field, per submitted record (from the raw log)."""
    from rote.demo.students import bundled_log

    rows = list(csv.DictReader(bundled_log().open(newline="", encoding="utf-8")))
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for r in rows:  # file order: the logger wrote each record's form events in the order they happened
        if r["eventType"] == "editField" and r["target.name"] in FORM_FIELDS:
            current[r["target.name"]] = r["target.value"]
        elif r["eventType"] == "clickButton" and r["target.type"] == "submit":
            records.append(current)
            current = {}
    return records


def test_fifty_students_from_the_recorded_cells(students: list) -> None:
    assert len(students) == 50
    assert [s.row for s in students] == list(range(2, 52))
    first = students[0]
    assert (first.first, first.last, first.birth, first.country) == ("John", "Doe", "11/03/1986", "Australia")


def test_expected_records_are_what_the_person_typed(students: list) -> None:
    """The form's notion of correct is the recording's: for every submitted record, the person's final
    field values equal the expected record of the student they copied (the one known slip aside)."""
    typed = _final_values_per_record()
    assert len(typed) == 50
    by_name = {expected_submission(s)["SingleLine"]: expected_submission(s) for s in students}
    mismatches = []
    for rec in typed:
        want = by_name[rec["SingleLine"]]
        diff = sorted(k for k in FORM_FIELDS if rec.get(k) != want[k])
        if diff:
            mismatches.append((rec["SingleLine"], diff))
    assert len(mismatches) <= 2, mismatches  # the person's own slips (docs/generator.md: case 39)
    assert all(diff == ["Address_Region"] for _, diff in mismatches), mismatches


def test_workbook_reads_back_like_the_recording(tmp_path: Path, students: list) -> None:
    path = write_workbook(students, tmp_path / WORKBOOK_NAME)
    sheets = Sheets(tmp_path)
    for s in (students[0], students[17], students[-1]):
        got = [
            sheets.perform(
                "read_cell", {"workbook": WORKBOOK_NAME, "sheet": "Sheet1", "cell": f"{c}{s.row}"}, None
            )
            for c in "ABCDEFG"
        ]
        assert tuple(got) == s.cells()
    assert path.stat().st_size > 1000


def _post(url: str, form: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: object, **k: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_server_checks_submissions_against_the_workbook(students: list) -> None:
    with FormServer(students) as server:
        page = urllib.request.urlopen(server.form_url, timeout=10).read().decode()
        for name in FORM_FIELDS:
            assert f'name=\\"{name}\\"' in page  # built by the page's JavaScript from its template
        assert 'id=\\"Date-date\\"' in page and "hasDatepicker" in page and "DecisionBox" in page
        good = {**expected_submission(students[3]), "DecisionBox": "on"}
        status, _ = _post(server.form_url, good)
        assert status == 303
        wrong = {**expected_submission(students[4]), "Address_City": "Sydney"}
        assert _post(server.form_url, wrong)[0] == 303  # accepted (a real form would), graded wrong
        status, body = _post(server.form_url, {**good, "date": "1986/03/11"})
        assert status == 422 and "date must be dd-mm-yyyy" in body
        thanks = urllib.request.urlopen(server.origin + THANKS_PATH, timeout=10).read().decode()
        assert f'href="{FORM_PATH}"' in thanks and "Add another response." in thanks
        stats = json.loads(urllib.request.urlopen(server.origin + "/stats", timeout=10).read())
    assert (stats["submitted"], stats["correct"], stats["rejected_malformed"]) == (2, 1, 1)
    assert stats["incorrect"] == [{"closest_row": 6, "fields_differ": ["Address_City"]}]
    assert stats["decision_box_ticked"] == 1
    assert "Sydney" not in json.dumps(stats)  # which fields differ, never the values


def test_validate_and_grade(students: list) -> None:
    want = expected_submission(students[0])
    assert validate(want) is None
    assert validate({**want, "Email": "nope"}) == "Email is not an e-mail address"
    assert validate({k: v for k, v in want.items() if k != "Address_City"}) == "Address_City is required"
    assert grade(want, students) == (2, [])
