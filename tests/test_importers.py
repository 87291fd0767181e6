from __future__ import annotations

import json
from pathlib import Path

import pytest

from rote.errors import ImportFormatError
from rote.importers import CsvOptions, bundled_log, event_id_for, iter_records, load_actions, parse_timestamp
from rote.streams.schemas import UserAction, decode

DATA = Path(__file__).resolve().parent / "data" / "uilogs"


def test_bosco_maps_columns_and_keeps_case_id_aside() -> None:
    recs = list(iter_records(DATA / "bosco_log1_head.csv", fmt="bosco"))
    assert len(recs) == 59 and all(r.error is None for r in recs)
    first = recs[0].payload
    assert first["action_type"] == "openFile" and first["app"] == "Excel"
    assert first["target"]["sheet"] == "Sheet1" and first["target"]["workbook"] == "data.xls"
    assert "caseID" not in json.dumps(first)
    assert recs[0].labels == {"instance": "0", "caseID": "0"}
    copy = next(r.payload for r in recs if r.payload["action_type"] == "copy")
    assert copy["target"] == {"cell": "B1", "column": "B", "row": 1}
    assert copy["value"] == "Au 58124829 XT"
    paste = next(r.payload for r in recs if r.payload["action_type"] == "paste")
    assert paste["target"]["field"] == "Special code" and paste["app"] == "Web"
    for rec in recs:
        action = decode(UserAction, rec.payload)
        assert action.user_id == "user-1" and action.source == "bosco"


def test_actionlogger_sorts_out_of_order_rows_and_maps_targets() -> None:
    recs = list(iter_records(DATA / "StudentRecord_raw_head.csv", fmt="actionlogger", user_id="u9"))
    stamps = [parse_timestamp(r.payload["timestamp"]) for r in recs]
    assert stamps == sorted(stamps)
    lines = [r.line for r in recs]
    assert lines != sorted(lines), "the raw log is out of order; sorting must have moved rows"
    get_cell = next(r.payload for r in recs if r.payload["action_type"] == "getCell")
    assert get_cell["target"]["cell"] == "A2" and get_cell["target"]["column"] == "A"
    assert get_cell["target"]["row"] == 2 and get_cell["value"] == "John"
    paste = next(r.payload for r in recs if r.payload["action_type"] == "paste")
    assert paste["target"]["field"] == "SingleLine" and paste["value"] == "John"
    assert paste["target"]["url"].startswith("https://forms.zoho.com/")
    button = next(r.payload for r in recs if r.payload["action_type"] == "clickButton")
    assert button["target"]["title"] == "Submit"
    # the log's own userID column; its clipboard rows carry none and belong to the same person
    assert {r.payload["user_id"] for r in recs} == {"vleno"}


def test_event_ids_are_deterministic_and_unique() -> None:
    a = [r.payload["event_id"] for r in iter_records(DATA / "bosco_log1_head.csv", fmt="bosco")]
    b = [r.payload["event_id"] for r in iter_records(DATA / "bosco_log1_head.csv", fmt="bosco")]
    assert a == b and len(set(a)) == len(a)
    assert event_id_for(Path("x/log.csv"), 3) == event_id_for(Path("y/log.csv"), 3)
    assert event_id_for(Path("log.csv"), 3) != event_id_for(Path("log.csv"), 4)


def test_ties_keep_file_order() -> None:
    recs = list(iter_records(DATA / "bosco_log1_head.csv", fmt="bosco"))
    # openFile and goToUrl of case 0 share one timestamp: file order must be kept
    assert [r.payload["action_type"] for r in recs[:2]] == ["openFile", "goToUrl"]


def test_malformed_rows_are_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "caseID,eventType,timeStamp,source,Label,Value,Column,Row\n"
        "0,openFile,2019-02-19T03:38:31.823Z,Excel,,,,\n"
        "0,insertValue,not-a-time,Web,username,x,,\n"
        "0,,2019-02-19T03:38:33Z,Web,,,,\n"
        "0,copy,2019-02-19T03:38:34Z,Excel,,v,B,xx\n"
        "0,paste,2019-02-19T03:38:35Z,Web,Area,v,,,EXTRA\n"
        "0,clickButton,2019-02-19T03:38:36Z,Web,OK,,,\n"
    )
    recs = list(iter_records(path, fmt="bosco"))
    assert len(recs) == 6
    errors = [r for r in recs if r.error]
    assert len(errors) == 4
    assert any("timestamp" in (r.error or "") for r in errors)
    assert any("eventType" in (r.error or "") for r in errors)
    assert any("Row" in (r.error or "") for r in errors)
    assert any("columns" in (r.error or "") for r in errors)
    bad_time = next(r for r in errors if "timestamp" in (r.error or ""))
    assert bad_time.payload["timeStamp"] == "not-a-time"  # the raw row is kept for the dead letter
    assert [r.line for r in recs if r.error is None] == [2, 7]
    assert len(load_actions(path, fmt="bosco")) == 2
    with pytest.raises(ImportFormatError):
        load_actions(path, fmt="bosco", strict=True)


def test_wrong_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="missing column"):
        list(iter_records(DATA / "bosco_log1_head.csv", fmt="actionlogger"))
    with pytest.raises(ImportFormatError):
        list(iter_records(tmp_path / "nope.csv", fmt="bosco"))
    # JSON records read as a CSV log: the "header" is the first record, a person's data, never echoed
    records = tmp_path / "export.jsonl"
    records.write_text(json.dumps({"uuid": "1", "actor": {"email": "mia.keller@example.org"}}) + "\n")
    for fmt in ("bosco", "actionlogger", "csv"):
        with pytest.raises(ImportFormatError, match="holds JSON records; try --format auto") as err:
            list(iter_records(records, fmt=fmt))
        assert "mia.keller" not in str(err.value) and "\n" not in str(err.value)


def test_jsonl_roundtrip_labels_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = {
        "event_id": "e1",
        "user_id": "alice",
        "timestamp": "2024-01-01T10:00:05Z",
        "app": "Excel",
        "action_type": "copy",
        "target": {"cell": "A1"},
        "value": "42",
        "labels": {"instance": "7"},
    }
    early = {"timestamp": "2024-01-01T10:00:00Z", "app": "Web", "action_type": "paste"}
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps(early) + "\n[1,2]\n")
    recs = list(iter_records(path, fmt="jsonl"))
    assert len(recs) == 4
    ok = [r for r in recs if r.error is None]
    assert [r.payload["action_type"] for r in ok] == ["paste", "copy"]  # sorted by time
    assert ok[1].labels == {"instance": "7"} and "labels" not in ok[1].payload
    assert ok[0].payload["user_id"] == "user-1" and ok[0].payload["event_id"].startswith("events-3-")
    assert decode(UserAction, ok[1].payload).target.cell == "A1"
    assert sum(r.error is not None for r in recs) == 2


def test_generic_csv_with_column_options(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text(
        "when;what;where;val;who;case;variant\n"
        "1700000001;click;Save;;bob;c1;A\n"
        "1700000000000;type;Name;Ann;bob;c1;A\n"
    )
    opts = CsvOptions(
        time_col="when",
        action_cols=("what", "where"),
        value_col="val",
        user_col="who",
        instance_col="case",
        routine_col="variant",
        delimiter=";",
    )
    recs = list(iter_records(path, fmt="csv", csv_options=opts))
    assert [r.payload["action_type"] for r in recs] == ["type", "click"]  # ms epoch sorted before s epoch
    assert recs[0].payload["target"] == {"field": "Name"} and recs[0].payload["value"] == "Ann"
    assert recs[0].payload["user_id"] == "bob"
    assert recs[0].labels["instance"] == "c1" and recs[0].labels["routine"] == "A"
    assert "case" not in recs[0].payload["attributes"]
    assert decode(UserAction, recs[1].payload).timestamp.year == 2023


def test_bundled_log_is_the_real_student_record_log() -> None:
    path, fmt = bundled_log()
    assert fmt == "actionlogger" and path.name == "StudentRecord.csv"
    assert (path.parent / "ATTRIBUTION.md").is_file() and (
        path.parent / "LICENSE-RPM_Segmentator.txt"
    ).is_file()
    actions = load_actions(path, fmt=fmt, strict=True)
    assert len(actions) == 2409
    assert {a.app for a in actions} == {"Excel", "Chrome", "OS-Clipboard"}
