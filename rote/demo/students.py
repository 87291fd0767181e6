"""The demo's data: the 50 students of the bundled StudentRecord log, as a real workbook and as the
records the web form should receive.

Leno et al.'s recording shows a person reading cells A..G of rows 2..51 of `StudentRecords.xlsx`
(Sheet1) and copying them into a Zoho form. Every `getCell` event carries the cell's address and text,
so the workbook can be rebuilt exactly from the log (`students_from_log`); nothing is invented except the
header row's labels (the person never read row 1). Birth dates are stored as real Excel dates formatted
`dd/mm/yyyy`, as the recording shows them, so the spreadsheet driver has to render them like Excel does.

`expected_submission` is what a correct form submission for a student holds. Its rules are the person's
own, read off the recording (each field's final value after their edits): full name = first + " " + last;
date "dd/mm/yyyy" typed as "dd-mm-yyyy"; phone "+61 039 689 9324" as "039-689-9324"; the address split
into street, city, region and post code. `tests/test_demo_form.py` checks these rules against the
person's recorded values for all 50 records, so the form's notion of "correct" is the recording's, not
the automation's.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rote.errors import RoteError

WORKBOOK_NAME = "StudentRecords.xlsx"
SHEET = "Sheet1"
COLUMNS = ("A", "B", "C", "D", "E", "F", "G")
#: Our labels for row 1 (the recording never reads it).
HEADERS = ("First name", "Last name", "Date of birth", "Phone", "Email", "Country", "Address")
FIRST_ROW, LAST_ROW = 2, 51
#: The form's fields, by the names the logger recorded.
FORM_FIELDS = (
    "SingleLine",
    "date",
    "countrycode",
    "Email",
    "SingleLine1",
    "Address_AddressLine1",
    "Address_City",
    "Address_Region",
    "Address_ZipCode",
)


@dataclass(frozen=True, kw_only=True)
class Student:
    row: int
    first: str
    last: str
    birth: str  # dd/mm/yyyy as the workbook shows it
    phone: str
    email: str
    country: str
    address: str

    @property
    def birth_date(self) -> dt.date:
        day, month, year = (int(x) for x in self.birth.split("/"))
        return dt.date(year, month, day)

    def cells(self) -> tuple[str, ...]:
        return (self.first, self.last, self.birth, self.phone, self.email, self.country, self.address)


def bundled_log() -> Path:
    from rote.importers import bundled_log as _bundled

    return _bundled()[0]


def students_from_log(path: Path | None = None) -> list[Student]:
    """The 50 students, from the cells the recording's getCell events read."""
    path = path or bundled_log()
    cells: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("eventType") != "getCell" or row.get("target.workbookName") != WORKBOOK_NAME:
                continue
            ref = (row.get("target.id") or "").strip()
            text = row.get("target.value") or ""
            if ref in cells and cells[ref] != text:
                raise RoteError(f"{path.name}: cell {ref} read with two different values")
            cells[ref] = text
    out = []
    for r in range(FIRST_ROW, LAST_ROW + 1):
        missing = [f"{c}{r}" for c in COLUMNS if f"{c}{r}" not in cells]
        if missing:
            raise RoteError(f"{path.name}: the recording never reads {', '.join(missing)}")
        first, last, birth, phone, email, country, address = (cells[f"{c}{r}"] for c in COLUMNS)
        out.append(
            Student(
                row=r,
                first=first,
                last=last,
                birth=birth,
                phone=phone,
                email=email,
                country=country,
                address=address,
            )
        )
    return out


def write_workbook(students: Iterable[Student], path: Path) -> Path:
    """A real .xlsx: header row, one student per row, birth dates as dates formatted dd/mm/yyyy."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET
    ws.append(list(HEADERS))
    for s in students:
        ws.cell(row=s.row, column=1, value=s.first)
        ws.cell(row=s.row, column=2, value=s.last)
        c = ws.cell(row=s.row, column=3, value=s.birth_date)
        c.number_format = "dd/mm/yyyy"
        ws.cell(row=s.row, column=4, value=s.phone)
        ws.cell(row=s.row, column=5, value=s.email)
        ws.cell(row=s.row, column=6, value=s.country)
        ws.cell(row=s.row, column=7, value=s.address)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    wb.save(tmp)
    tmp.replace(path)
    return path


def _address_parts(address: str) -> tuple[str, str, str, str]:
    pieces = [p.strip() for p in address.split(",")]
    if len(pieces) < 4:
        raise ValueError(f"address has {len(pieces)} comma-separated parts, expected 4")
    region_zip = pieces[-2].split()
    return pieces[0], pieces[1], region_zip[0], region_zip[-1]


def expected_submission(s: Student) -> dict[str, str]:
    """The form values a correct submission for this student holds (the recorded person's rules)."""
    parts = s.phone.split()
    street, city, region, zipcode = _address_parts(s.address)
    return {
        "SingleLine": f"{s.first} {s.last}",
        "date": s.birth.replace("/", "-"),
        "countrycode": "-".join(parts[1:]) if len(parts) > 1 else s.phone,
        "Email": s.email,
        "SingleLine1": s.country,
        "Address_AddressLine1": street,
        "Address_City": city,
        "Address_Region": region,
        "Address_ZipCode": zipcode,
    }
