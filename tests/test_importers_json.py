"""JSON exports from other tools (`rote.importers.jsondoc`): a JSON array, nested records, foreign names.

The shape comes from a new user's run (a browser extension's pretty-printed export: epoch milliseconds,
nested `event.element` objects, a record cut short at the end, a malformed record in the middle), which
rote could not read at all before: `auto` took the array for a CSV whose header was `[`, and `--format
jsonl` ignored the column flags.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rote.errors import ImportFormatError
from rote.importers import CsvOptions, ImportStats, dead_letter, iter_records, read_log
from rote.importers.jsondoc import Broken, flatten, iter_array

FLAGS = CsvOptions(
    time_col="ts",
    action_cols=("event.type", "event.element.label"),
    user_col="session.user",
    app_col="application",
    value_col="event.value",
    id_col="id",
)


def _record(i: int, kind: str, label: str | None = None, value: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"sheet": "Sheet1", "file": "data.xls"} if label is None else {"label": label}
    event: dict[str, Any] = {"type": kind, "element": element}
    if value is not None:
        event["value"] = value
    return {
        "id": f"tt-{i:04d}",
        "ts": 1_550_765_211_688 + i * 2_000,
        "application": "Google Chrome" if label else "Microsoft Excel",
        "session": {"user": "fmorris", "host": "WKS-0423"},
        "event": event,
        "tags": ["a", "b"],
        "ok": True,
    }


def _export(tmp_path: Path, records: list[dict[str, Any]], *, tail: str = "\n]\n") -> Path:
    path = tmp_path / "export.json"
    body = ",\n".join(json.dumps(r, indent=2) for r in records)
    path.write_text("[\n" + body + tail, encoding="utf-8")
    return path


def test_a_nested_json_array_is_read_by_its_dotted_columns(tmp_path: Path) -> None:
    records = [
        _record(1, "openFile"),
        _record(2, "insertValue", "username", "Frank01"),
        _record(3, "insertValue", "password", "LittleFrank123"),
        _record(4, "clickButton", "confirm"),
    ]
    path = _export(tmp_path, records)
    stats = ImportStats()
    recs = list(iter_records(path, csv_options=FLAGS, stats=stats))
    assert stats.format == "json" and [r.error for r in recs] == [None] * 4
    first, _, typed, click = (r.action for r in recs)
    assert first is not None and typed is not None and click is not None
    assert first.event_id == "tt-0001" and first.user_id == "fmorris" and first.app == "Microsoft Excel"
    assert first.timestamp.isoformat() == "2019-02-21T16:06:53.688000+00:00"  # epoch milliseconds
    assert first.source == "json"
    # where it happened goes to the target (an automation's open_file needs the file), the rest stays
    assert first.target.sheet == "Sheet1" and first.target.file == "data.xls"
    assert "event.element.sheet" not in first.attributes
    assert first.attributes["tags"] == '["a", "b"]' and first.attributes["session.host"] == "WKS-0423"
    assert typed.target.field == "password" and typed.value == "<password>"
    assert click.action_type == "clickButton" and click.target.field == "confirm"
    text = path.read_text(encoding="utf-8").splitlines()
    starts = [n for n, line in enumerate(text, start=1) if line == "{"]
    assert [r.line for r in recs] == starts  # the line each record starts on


def test_without_flags_the_error_names_the_dotted_columns_to_pass(tmp_path: Path) -> None:
    path = _export(tmp_path, [_record(1, "openFile"), _record(2, "clickButton", "OK")])
    with pytest.raises(ImportFormatError) as err:
        list(iter_records(path))
    message = str(err.value)
    assert "no time column" in message and "event.type" in message and "session.user" in message
    assert "--time-col" in message and "--action-cols" in message


def test_a_broken_record_costs_only_itself_and_a_cut_end_keeps_every_record_before_it(tmp_path: Path) -> None:
    good = [_record(i, "clickButton", f"b{i}") for i in range(1, 6)]
    text = ",\n".join(json.dumps(r, indent=2) for r in good[:2])
    text += ',\n  {"id": "tt-bad", "ts": 1550765211688, "event": {"type": "x" "oops"}},\n'
    text += ",\n".join(json.dumps(r, indent=2) for r in good[2:])
    cut = text + ',\n  {\n    "id": "tt-cut",\n    "ts": 155076'
    path = tmp_path / "export.json"
    path.write_text("[\n" + cut, encoding="utf-8")
    stats = ImportStats()
    flags = CsvOptions(time_col="ts", action_cols=("event.type", "event.element.label"), id_col="id")
    recs = list(iter_records(path, csv_options=flags, stats=stats))
    valid = [r.action.event_id for r in recs if r.action is not None]
    assert valid == [f"tt-{i:04d}" for i in range(1, 6)]
    errors = sorted((r.line, r.kind) for r in recs if r.error)
    assert [k for _, k in errors] == ["not JSON", "not JSON"]
    assert stats.rows == 7
    assert any("tt-cut" in r.raw.decode() for r in recs if r.error)


def test_an_array_of_rotes_own_events_is_read_as_events(tmp_path: Path) -> None:
    events = [
        {
            "event_id": f"e{i}",
            "timestamp": f"2024-01-08T09:00:0{i}Z",
            "app": "Excel",
            "action_type": "copy",
            "labels": {"instance": "1"},
        }
        for i in range(3)
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events), encoding="utf-8")
    recs = list(iter_records(path, user_id="ann"))
    assert [r.action.event_id for r in recs if r.action] == ["e0", "e1", "e2"]
    assert all(r.action and r.action.user_id == "ann" and r.action.source == "json" for r in recs)
    assert recs[0].labels == {"instance": "1"}


def test_json_lines_with_column_flags_are_mapped_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    lines = [_record(i, "clickButton", f"b{i}") for i in range(1, 4)]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    flags = CsvOptions(time_col="ts", action_cols=("event.type", "event.element.label"))
    recs = list(iter_records(path, csv_options=flags))
    assert [r.action.target.field for r in recs if r.action] == ["b1", "b2", "b3"]
    assert all(r.action and r.action.source == "jsonl" for r in recs)
    with pytest.raises(ImportFormatError, match=r"event\.element\.label"):
        list(iter_records(path))  # foreign records and no flags: the columns to name, not "bad timestamp"


def test_a_rejected_json_record_keeps_no_password_in_its_dead_letter(tmp_path: Path) -> None:
    bad = _record(2, "", "password", "LittleFrank123")
    path = _export(tmp_path, [_record(1, "openFile"), bad])
    recs = [r for r in iter_records(path, csv_options=FLAGS) if r.error]
    assert len(recs) == 1 and "event.type is empty" in (recs[0].error or "")
    letter = base64.b64decode(dead_letter(recs[0], path).payload_b64)
    assert b"LittleFrank123" not in letter and b"<password>" in letter and b"tt-0002" in letter


def test_iter_array_reports_line_numbers_and_shapes() -> None:
    text = '[\n  {"a": 1},\n\n  2,\n  {"b": {"c": null}}\n]'
    assert list(iter_array(text)) == [(2, {"a": 1}), (4, 2), (5, {"b": {"c": None}})]
    ((line, broken),) = list(iter_array('{"a": 1}'))
    assert line == 1 and isinstance(broken, Broken) and "not a JSON array" in broken.reason
    (*_, (_, end)) = list(iter_array('[{"a": 1},'))
    assert isinstance(end, Broken) and "cut short" in end.reason
    assert list(iter_array("[]")) == []


def test_flatten_keeps_every_value_as_text() -> None:
    row = flatten({"a": {"b": {"c": 1.5}, "e": {}}, "n": None, "t": False, "l": [1, {"x": 2}], "s": "é"})
    assert row == {"a.b.c": "1.5", "a.e": "", "n": "", "t": "false", "l": '[1, {"x": 2}]', "s": "é"}


def test_eval_discovery_reads_a_json_export_with_the_column_flags(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rote.cli import app

    steps = [("openFile", None), ("insertValue", "username"), ("insertValue", "password")]
    steps.append(("clickButton", "OK"))
    records = [_record(i, kind, label, "x") for i, (kind, label) in enumerate(steps * 8)]
    path = _export(tmp_path, records)
    args = ["eval", "discovery", str(path), "--format", "auto", "--time-col", "ts"]
    args += ["--action-cols", "event.type,event.element.label", "--user-col", "session.user", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["events"] == 32 and out["import"]["format"] == "json" and not out["import"]["invalid"]
    routine = out["routines"][0]["routine"]
    assert "insertValue:password" in routine and "clickButton:OK" in routine


def test_id_col_makes_a_record_exported_twice_one_event(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rote.cli import app

    records = [_record(i, "clickButton", f"b{i % 3}") for i in range(12)]
    path = _export(tmp_path, [*records[:5], records[4], *records[5:]])  # tt-0004 exported twice
    args = ["eval", "discovery", str(path), "--format", "json", "--time-col", "ts"]
    args += ["--action-cols", "event.type,event.element.label", "--json"]
    without = json.loads(CliRunner().invoke(app, args).stdout)
    with_ids = json.loads(CliRunner().invoke(app, [*args, "--id-col", "id"]).stdout)
    assert without["events"] == with_ids["events"] == 13
    assert without["duplicate_events"] == 0 and with_ids["duplicate_events"] == 1
    bad = CliRunner().invoke(app, [*args, "--id-col", "uuid"])
    assert bad.exit_code != 0 and "no event id column 'uuid' (--id-col)" in (bad.stderr or bad.output)


def test_hostile_arrays_cost_a_row_or_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rote.importers import jsondoc

    deep: Any = "x"
    for _ in range(3000):
        deep = {"k": deep}
    ok = _record(1, "clickButton", "OK")
    path = tmp_path / "deep.json"
    nested = '{"a": ' * 5000 + "1" + "}" * 5000
    path.write_text("[\n" + json.dumps(ok) + ",\n" + nested + "\n]", encoding="utf-8")
    flags = CsvOptions(time_col="ts", action_cols=("event.type",), id_col="id")
    recs = list(iter_records(path, csv_options=flags))
    assert [r.action.event_id for r in recs if r.action] == ["tt-0001"]
    assert [r.kind for r in recs if r.error] == ["not JSON"]
    cells = jsondoc.flatten({"d": deep})  # 3000 levels: 32 become the path, the rest cannot be written back
    assert cells == {"d" + ".k" * jsondoc.MAX_DEPTH: "<nested too deeply>"}
    row = jsondoc.flatten({"ts": "1", "deep": {"k": {"k": {"k": 1}}}})
    assert row == {"ts": "1", "deep.k.k.k": "1"}
    monkeypatch.setattr(jsondoc, "MAX_DEPTH", 1)
    assert jsondoc.flatten({"deep": {"k": {"k": 1}}}) == {"deep.k": '{"k": 1}'}
    monkeypatch.setattr(jsondoc, "MAX_ARRAY_CHARS", 100)
    with pytest.raises(ImportFormatError, match=r"jq -c '\.\[\]' deep\.json > deep\.jsonl"):
        list(iter_records(path, csv_options=flags))


# ------------------------------------------------------------------------------------------------------
# an attacker's sweep of this importer (each case lost records, leaked a password or crashed the import)
# ------------------------------------------------------------------------------------------------------

FLAT = CsvOptions(time_col="ts", action_cols=("type",))


def _import(tmp_path: Path, text: str | bytes, name: str = "t.json", opts: CsvOptions = FLAT) -> list[Any]:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return list(iter_records(path, csv_options=opts))


def _ok(i: int) -> dict[str, Any]:
    return {"ts": 1_550_768_400 + i, "type": f"t{i}"}


def test_records_of_a_minified_array_keep_apart_and_one_broken_record_costs_only_itself(
    tmp_path: Path,
) -> None:
    text = (
        "["
        + ",".join(json.dumps(_ok(i)) for i in range(3))
        + ',{"ts":1,"type":"b",},'
        + json.dumps(_ok(3))
        + "]"
    )
    recs = _import(tmp_path, text)
    ids = [r.action.event_id for r in recs if r.action]
    assert [r.action.action_type for r in recs if r.action] == ["t0", "t1", "t2", "t3"]
    assert len(set(ids)) == 4  # all on line 1: ids by place in the array, or discovery drops them as repeats
    assert [r.kind for r in recs if r.error] == ["not JSON"]


def test_text_after_the_closing_bracket_is_reported_and_read(tmp_path: Path) -> None:
    stray = "[\n" + json.dumps(_ok(0)) + "],\n" + json.dumps(_ok(1)) + ",\n" + json.dumps(_ok(2)) + "\n]"
    recs = _import(tmp_path, stray)
    assert [r.action.action_type for r in recs if r.action] == ["t0", "t1", "t2"]
    assert [r.error for r in recs if r.error] == ["line 2: text after the array's closing ]"]
    appended = "[\n" + json.dumps(_ok(0)) + "\n]\n[\n" + json.dumps(_ok(1)) + "\n]\n"
    assert [r.action.action_type for r in _import(tmp_path, appended) if r.action] == ["t0", "t1"]


def test_a_broken_record_holding_a_list_of_objects_does_not_end_the_array(tmp_path: Path) -> None:
    broken = (
        json.dumps({"type": "broken", "items": [{"ts": 1, "type": "INNER"}]}, indent=2)[:-1] + ',"oops": tru}'
    )
    text = "[\n" + ",\n".join([json.dumps(_ok(0)), broken, json.dumps(_ok(1)), json.dumps(_ok(2))]) + "\n]"
    recs = _import(tmp_path, text)
    kept = [r.action.action_type for r in recs if r.action]
    assert kept[0] == "t0" and kept[-2:] == ["t1", "t2"]  # (the inner object may be read as a record too)
    assert any(r.kind == "not JSON" for r in recs)


def test_numbers_too_long_and_lone_surrogates_are_bad_rows_not_crashes(tmp_path: Path) -> None:
    huge = (
        "[\n"
        + json.dumps(_ok(0))
        + ',\n{"ts": 1, "type": "b", "n": '
        + "9" * 5000
        + "},\n"
        + json.dumps(_ok(1))
        + "\n]"
    )
    recs = _import(tmp_path, huge)
    assert [r.action.action_type for r in recs if r.action] == ["t0", "t1"]
    assert [r.error for r in recs if r.error] == ["line 3: not JSON (a number too long to read)"]
    lone = "[\n" + json.dumps(_ok(0)) + ',\n{"ts": 1550768401, "type": "b", "x": "\\ud800"}\n]'
    for name, text in (("t.json", lone), ("t.jsonl", lone.strip("[]\n").replace(",\n", "\n"))):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        recs = list(iter_records(path, csv_options=FLAT))
        assert [r.kind for r in recs if r.error] == ["encoding"], name
        assert all(dead_letter(r, path).payload_b64 for r in recs if r.error)
    own = tmp_path / "own.jsonl"
    own.write_text(
        '{"timestamp": "2024-01-08T09:00:00Z", "action_type": "a", "app": "x", "value": "\\udc80"}\n'
    )
    (rec,) = list(iter_records(own))
    assert rec.kind == "encoding" and dead_letter(rec, own).payload_b64


def test_a_damaged_compressed_file_keeps_the_records_before_the_damage(tmp_path: Path) -> None:
    import gzip
    import hashlib

    rows = [
        json.dumps({**_ok(i % 50), "note": hashlib.sha1(str(i).encode()).hexdigest()}) for i in range(6_000)
    ]
    for name, text in (("t.json.gz", "[\n" + ",\n".join(rows) + "\n]"), ("t.jsonl.gz", "\n".join(rows))):
        data = gzip.compress(text.encode())
        recs = _import(tmp_path, data[: len(data) * 3 // 4], name)
        assert sum(r.action is not None for r in recs) > 3_000, name
        assert any("cut short or damaged" in (r.error or "") for r in recs), name


def test_hostile_shapes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rote.importers import jsondoc

    # a record whose long keys repeat in every path below them: too large, not a 1.5 GB row
    node: dict[str, Any] = {f"leaf{i}": 1 for i in range(300)}
    for level in range(31):
        node = {f"{level}" + "k" * 4000: node}
    text = "[\n" + json.dumps(_ok(0)) + ",\n" + json.dumps({**_ok(1), "deep": node}) + "\n]"
    recs = _import(tmp_path, text)
    assert [r.kind for r in recs if r.error] == ["too large"] and recs[0].action is not None
    # a too-large record's dead letter keeps its size, not its text (where a password could stay)
    big = {**_ok(2), "el": {"label": "Password"}, "value": "Hunter2xyz", "pad": "x" * 600_000}
    path = tmp_path / "big.json"
    path.write_text(json.dumps([big]), encoding="utf-8")
    (rec,) = list(iter_records(path, csv_options=FLAT))
    assert rec.kind == "too large" and b"Hunter2xyz" not in base64.b64decode(
        dead_letter(rec, path).payload_b64
    )
    # nested openers that make every re-read run to the end: the rest is given up, and said so
    monkeypatch.setattr(jsondoc, "_PARSE_BUDGET", 1)
    monkeypatch.setattr(jsondoc, "_PARSE_FLOOR", 0)
    hostile = "[" + '\n{"a":[' * 200 + "0," * 20_000 + "X"
    results = list(jsondoc.iter_array(hostile))
    assert len(results) < 200 and "cost too much parsing" in results[-1][1].reason


def test_utf16_json_with_a_byte_order_mark_is_read_and_without_one_gets_the_flag(tmp_path: Path) -> None:
    # Windows PowerShell 5's `ConvertTo-Json | Out-File` writes UTF-16 with a byte-order mark
    records = [_record(i, "clickButton", f"b{i}é", "x") for i in range(3)]
    text = "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"
    marked = tmp_path / "ps.json"
    marked.write_text(text, encoding="utf-16")
    lines = tmp_path / "ps.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-16")
    for path in (marked, lines):
        recs = list(iter_records(path, csv_options=FLAGS))
        assert [r.action.target.field for r in recs if r.action] == ["b0é", "b1é", "b2é"], path
    bare = tmp_path / "bare.json"
    bare.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(ImportFormatError, match="without a byte-order mark; pass --encoding utf-16-le"):
        list(iter_records(bare, csv_options=FLAGS))
    for spelling in ("utf-16-le", "UTF-16LE", "UTF_16_LE"):  # any spelling Python's codecs know
        flagged = dataclasses.replace(FLAGS, encoding=spelling)
        assert len([r for r in iter_records(bare, csv_options=flagged) if r.action]) == 3


def test_another_tools_export_read_as_own_events_or_wrapped_in_an_object_is_explained(tmp_path: Path) -> None:
    """A new user's browser-extension export (2026-12-02): records with a `timestamp` key were read as
    rote's own events and refused with "app: Field required" alone; the same records wrapped in
    `{"events": [...]}` gave 58,119 "not JSON" rows. Each refusal now says what to do."""
    recs = [
        {
            "id": f"e{i}",
            "timestamp": f"2026-11-02T09:00:{i:02d}+01:00",
            "event": {"type": "click", "element": {"label": "Save"}},
        }
        for i in range(5)
    ]
    plain = tmp_path / "clicktrail.json"
    plain.write_text(json.dumps(recs, indent=2), encoding="utf-8")
    with pytest.raises(ImportFormatError) as err:
        read_log(plain)
    msg = str(err.value)
    assert "\n" not in msg and "read as rote's own events (a record has `timestamp`)" in msg
    assert "--time-col timestamp --action-cols" in msg and "event.type, event.element.label" in msg
    mapped = read_log(plain, csv_options=CsvOptions(time_col="timestamp", action_cols=("event.type",)))
    assert mapped.stats.valid == 5  # as the hint says

    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"exportVersion": 2, "events": recs}, indent=2), encoding="utf-8")
    with pytest.raises(ImportFormatError) as err:
        read_log(wrapped)
    msg = str(err.value)
    assert "\n" not in msg and 'its 5 records are under "events"' in msg
    assert "jq -c '.[\"events\"][]' wrapped.json > records.jsonl" in msg


def test_a_json_array_cut_inside_a_record_is_said_to_be_cut_short(tmp_path: Path) -> None:
    """The CSV reader said a file was cut short; the JSON array reader counted the cut record as one more
    "not JSON" row (a new user's export, 2026-12-02). The records before the cut are kept either way."""
    recs = [
        json.dumps({"ts": f"2026-11-02T09:00:0{i}Z", "type": "click", "x": f"a\\u0001{i}"}) for i in range(4)
    ]
    path = tmp_path / "cut.json"
    path.write_text("[\n" + ",\n".join(recs)[:-25], encoding="utf-8")
    stats = ImportStats()
    rows = list(
        iter_records(
            path, fmt="json", csv_options=CsvOptions(time_col="ts", action_cols=("type",)), stats=stats
        )
    )
    assert stats.valid == 3 and stats.invalid == {"not JSON": 1}
    assert stats.cut_short == "line 5: the JSON array ends inside a record, with no closing ]"
    assert any("cut short" in line for line in stats.describe())
    assert next(r.error for r in rows if r.error).startswith(
        "line 5: the array is cut short inside this record (not JSON ("
    )
    nested = tmp_path / "nested.json"  # cut right after a nested list's closing ]
    nested.write_text('[\n{"ts": "2026-11-02T09:00:00Z", "type": "click"},\n{"b": ["x"]', encoding="utf-8")
    stats = ImportStats()
    list(
        iter_records(
            nested, fmt="json", csv_options=CsvOptions(time_col="ts", action_cols=("type",)), stats=stats
        )
    )
    assert stats.valid == 1 and stats.cut_short is not None
    # where the parser stopped, said in full (Python's own message ends in "at")
    bad = tmp_path / "control.json"
    bad.write_text('[\n{"ts": "2026-11-02T09:00:00Z", "type": "cl\x01ick"}\n]', encoding="utf-8")
    errors = [
        r.error
        for r in iter_records(bad, fmt="json", csv_options=CsvOptions(time_col="ts", action_cols=("type",)))
        if r.error
    ]
    assert errors == ["line 2: not JSON (Invalid control character at line 2 column 43)"]


def test_a_path_that_stops_at_a_string_says_where(tmp_path: Path) -> None:
    """`--action-cols event.type` on a record whose `event` is "click" said only "event.type is missing"."""
    path = tmp_path / "flat.jsonl"
    path.write_text(
        json.dumps({"ts": "2026-11-02T09:00:00Z", "event": {"type": "click"}})
        + "\n"
        + json.dumps({"ts": "2026-11-02T09:00:01Z", "event": "click"})
        + "\n",
        encoding="utf-8",
    )
    stats = ImportStats()
    rows = list(
        iter_records(path, csv_options=CsvOptions(time_col="ts", action_cols=("event.type",)), stats=stats)
    )
    assert stats.valid == 1 and stats.invalid == {"missing value": 1}
    assert [r.error for r in rows if r.error] == [
        "line 2: event.type is missing (event is 'click', not an object)"
    ]
