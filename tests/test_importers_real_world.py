"""Importers on the files people actually bring: other delimiters and encodings, process-mining exports, XES,
broken and oversized rows, wrong clocks. Every row must end up valid, invalid with the importer's reason, or
skipped with a reason; none may vanish."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from rote.errors import ConfigError, ImportFormatError
from rote.importers import (
    CsvOptions,
    ImportStats,
    dead_letter,
    iter_records,
    load_actions,
    parse_action_map,
    read_log,
    resolve_format,
)
from rote.streams.schemas import DeadLetter

DATA = Path(__file__).resolve().parent / "data" / "uilogs"
NOISY = DATA / "noisy_sr_rt_semicolon.csv"


def _stats(path: Path, **kw: object) -> tuple[list, ImportStats]:
    stats = ImportStats()
    recs = list(iter_records(path, stats=stats, **kw))  # type: ignore[arg-type]
    assert stats.rows == stats.valid + stats.invalid_total + stats.skipped_total, "a row went missing"
    assert len(recs) == stats.valid + stats.invalid_total
    return recs, stats


def test_semicolon_action_logger_log_with_noise_and_a_wrong_clock() -> None:
    recs, stats = _stats(NOISY, fmt="actionlogger", user_id="fallback")
    assert stats.delimiter == ";" and stats.encoding == "utf-8" and stats.format == "actionlogger"
    assert stats.rows == 1752 and stats.valid == 1749
    assert stats.invalid == {"implausible time": 3}
    assert (
        "line 651: timestamp 2027-03-01T09:10:00Z is outside the plausible window"
        in stats.first["implausible time"]
    )
    assert "ROTE_MAX_CLOCK_SKEW_SECONDS" in stats.describe()[0]
    # the log's own userID column, also for the clipboard rows that leave it empty
    assert {r.payload["user_id"] for r in recs if r.error is None} == {"vleno"}
    apps = {r.payload["target"].get("url", "")[:25] for r in recs if r.error is None}
    assert {"https://forms.zoho.com/un", "https://form.jotform.com/"} <= apps  # both routines are in there


def test_auto_format_and_forced_delimiter() -> None:
    assert resolve_format(NOISY, "auto", None) == ("actionlogger", "utf-8", ";")
    assert resolve_format(DATA / "bosco_log1_head.csv", "auto", None)[0] == "bosco"
    assert resolve_format(DATA / "bosco_log1_pm.csv", "auto", None)[0] == "csv"
    assert resolve_format(DATA / "bosco_log1.xes", "auto", None)[0] == "xes"
    with pytest.raises(ImportFormatError, match="missing column"):
        list(iter_records(NOISY, fmt="actionlogger", csv_options=CsvOptions(delimiter=",")))
    assert CsvOptions(delimiter="tab").delimiter == "\t"
    with pytest.raises(ConfigError):
        CsvOptions(delimiter=";;")
    with pytest.raises(ConfigError):
        CsvOptions(encoding="klingon")


def test_process_mining_csv_needs_no_column_flags() -> None:
    recs, stats = _stats(DATA / "bosco_log1_pm.csv")
    assert stats.format == "csv" and stats.valid == 300 and not stats.invalid
    first = recs[0]
    assert first.payload["action_type"] == "openFile_Excel" and first.payload["user_id"] == "clerk-7"
    assert first.labels["instance"] == "0"  # case:concept:name is ground truth, not payload
    assert "case:concept:name" not in json.dumps(first.payload)
    assert "lifecycle:transition" not in first.payload["attributes"]


def test_lifecycle_start_events_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "pm.csv"
    path.write_text(
        "case:concept:name,concept:name,time:timestamp,lifecycle:transition\n"
        "1,open,2024-05-01 09:00:00,start\n"
        "1,open,2024-05-01 09:00:01,complete\n"
        "1,save,2024-05-01 09:00:02,\n"
    )
    recs, stats = _stats(path)
    assert [r.payload["action_type"] for r in recs] == ["open", "save"]
    assert stats.skipped == {"not a completed event": 1}
    assert "line 2" in stats.first["not a completed event"]


def test_xes_streams_events_with_trace_and_global_attributes() -> None:
    recs, stats = _stats(DATA / "bosco_log1.xes")
    assert stats.format == "xes" and stats.valid == 300
    pm = [r.payload for r in iter_records(DATA / "bosco_log1_pm.csv")]
    xes = [r.payload for r in recs]
    assert [p["action_type"] for p in xes] == [p["action_type"] for p in pm]
    assert [p["timestamp"] for p in xes] == [p["timestamp"] for p in pm]
    assert {p["user_id"] for p in xes} == {"clerk-7"}  # from the log's global event attribute
    assert recs[0].labels["instance"] == "0"  # the trace's concept:name
    # the password typed into insertValue_password_Web is redacted at capture (rote.privacy)
    assert any(p["value"] == "<password>" for p in xes)
    assert not any(p["value"] == "LittleFrank123" for p in xes)


def test_gzipped_xes_and_a_broken_tail(tmp_path: Path) -> None:
    text = (DATA / "bosco_log1.xes").read_text()
    gz = tmp_path / "log.xes.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert sum(r.error is None for r in iter_records(gz)) == 300
    cut = tmp_path / "cut.xes"
    cut.write_text(text[: len(text) // 2] + "<event><string key=")
    _, stats = _stats(cut)
    assert stats.valid > 100 and stats.invalid == {"broken XML": 1}
    assert "breaks off at line" in stats.first["broken XML"]


def test_xes_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    path = tmp_path / "xxe.xes"
    path.write_text(
        f'<?xml version="1.0"?><!DOCTYPE log [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<log><trace><event><string key="concept:name" value="&x;"/>'
        '<date key="time:timestamp" value="2024-05-01T09:00:00Z"/></event></trace></log>'
    )
    recs = list(iter_records(path))
    assert "TOP-SECRET" not in json.dumps([r.payload for r in recs])


def test_xml_that_is_not_xes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "page.xml"
    path.write_text("<html><body>hi</body></html>")
    with pytest.raises(ImportFormatError, match="not an XES log"):
        list(iter_records(path, fmt="xes"))


def test_legacy_and_utf16_encodings_are_sniffed(tmp_path: Path) -> None:
    rows = (
        "timestamp;activity;user\n2024-05-01T09:00:00Z;Prüfung öffnen;José\n"
        "2024-05-01T09:00:05Z;speichern;José\n"
    )
    cp = tmp_path / "cp1252.csv"
    cp.write_bytes(rows.encode("cp1252"))
    recs, stats = _stats(cp)
    assert stats.valid == 2 and stats.delimiter == ";"
    assert recs[0].payload["action_type"] == "Prüfung öffnen" and recs[0].payload["user_id"] == "José"
    u16 = tmp_path / "utf16.csv"
    u16.write_bytes(rows.replace(";", "\t").encode("utf-16"))
    recs, stats = _stats(u16)
    assert stats.encoding == "utf-16" and stats.delimiter == "\t" and stats.valid == 2
    forced = [r.payload["action_type"] for r in iter_records(cp, csv_options=CsvOptions(encoding="latin-1"))]
    assert forced[0] == "Prüfung öffnen"


def test_one_undecodable_row_does_not_lose_the_others(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    head = "timestamp,activity\n" + "".join(f"2024-05-01T09:00:{i:02d}Z,step{i}\n" for i in range(40))
    path.write_bytes(
        head.encode() * 1 + b"x" * 70000 + b"\n2024-05-01T09:01:00Z,caf\xe9\n2024-05-01T09:02:00Z,ok\n"
    )
    _, stats = _stats(path)
    assert stats.valid == 41  # 40 steps and "ok"; the 70 KB line has no timestamp
    assert stats.invalid["encoding"] == 1 and "not valid utf-8 text" in stats.first["encoding"]


def test_a_broken_line_in_a_utf16_export_is_dead_lettered_alone(tmp_path: Path) -> None:
    """Excel's "Unicode text" (UTF-16 with a BOM, tabs, CRLF) with German dates, one line of garbage bytes
    (a lone surrogate, a stray BOM) and a truncated last line: the import stopped with an internal error
    (a new user's export); now the garbage line and the cut line are rejected, each alone, with a reason."""
    rows = "".join(f"0{d}.06.2024 21:34:{s:02d}\tÖffnen {s}\r\n" for d in (7, 8) for s in range(20))
    garbage = b"\xff\xfe\x00\xd8\x80\x81\x00\x00\x9f\x9f\r\x00\n\x00"
    path = tmp_path / "export.txt"
    path.write_bytes(
        ("Zeitpunkt\tTätigkeit\r\n" + rows).encode("utf-16")
        + garbage
        + "08.06.2024 09:54:01\tÖffn".encode("utf-16-le")[:-1]
    )
    opts = CsvOptions(time_col="Zeitpunkt", action_cols=("Tätigkeit",))
    recs, stats = _stats(path, csv_options=opts)
    valid = [r for r in recs if r.error is None]
    assert stats.valid == 40 and stats.encoding == "utf-16"
    assert valid[0].payload["timestamp"] == "2024-06-07T21:34:00Z"  # day first, naive taken as UTC
    assert valid[0].payload["action_type"] == "Öffnen 0"
    assert stats.invalid_total == 2, stats.invalid


def test_binary_empty_and_header_only_files_fail_with_one_clear_line(tmp_path: Path) -> None:
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    with pytest.raises(ImportFormatError, match="binary"):
        read_log(binary)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFormatError, match="is empty"):
        read_log(empty)
    header = tmp_path / "header.csv"
    header.write_text("timeStamp,userID,targetApp,eventType\n\n")
    with pytest.raises(ImportFormatError, match="no rows"):
        read_log(header)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,age\nann,3\n")
    with pytest.raises(
        ImportFormatError, match=r"no time column.*and no action column.*--time-col and --action-cols"
    ):
        read_log(wrong)  # both missing: one message names both
    only_time = tmp_path / "only-time.csv"
    only_time.write_text("name,activity\nann,open\n")
    with pytest.raises(ImportFormatError, match=r"no time column \(looked for [^)]*\); header"):
        read_log(only_time)


def test_all_rows_invalid_is_an_error_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "clock.csv"
    path.write_text("timestamp,activity\n1970-01-01T00:00:00Z,a\n0001-01-01T00:00:00Z,b\n")
    with pytest.raises(
        ImportFormatError, match=r"no valid event: 2 rows \(2 implausible time\); first: line 2"
    ):
        read_log(path)


def test_one_huge_line_is_refused_and_a_huge_row_is_dead_lettered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTE_MAX_EVENT_BYTES", "4096")
    huge = tmp_path / "huge.csv"
    huge.write_text("a" * 100_000)
    with pytest.raises(ImportFormatError, match="without a line break"):
        read_log(huge, fmt="csv")
    path = tmp_path / "rows.csv"
    path.write_text(
        "timestamp,activity,note\n2024-05-01T09:00:00Z,a,x\n"
        f"2024-05-01T09:00:01Z,b,{'y' * 50_000}\n2024-05-01T09:00:02Z,c,z\n"
    )
    recs, _ = _stats(path)
    assert [r.payload["action_type"] for r in recs if r.error is None] == ["a", "c"]
    big = next(r for r in recs if r.error)
    assert big.kind == "too large" and "line 3: 49 KB, over the 4 KB per-event cap" in (big.error or "")
    letter = dead_letter(big, path)
    assert letter.agent == "importer" and letter.reason.startswith("rows.csv line 3:")
    kept = base64.b64decode(letter.payload_b64)
    assert kept.startswith(b"2024-05-01T09:00:01Z,b,yyyy") and len(kept) == 23 + 50_000
    assert letter.payload_bytes is None  # kept whole: under the dead letter's 64 KB


def test_jsonl_oversized_null_and_empty_lines_get_the_importers_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTE_MAX_EVENT_BYTES", "4096")
    good = {
        "event_id": "e1",
        "user_id": "ana",
        "timestamp": "2024-05-01T09:00:00Z",
        "app": "Excel",
        "action_type": "copy",
    }
    lines = [
        json.dumps(good),
        "null",
        '""',
        "{}",
        json.dumps({**good, "event_id": "e2", "value": "v" * 200_000}),
        "{bad json",
        json.dumps({**good, "event_id": "e3", "app": ""}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    recs, _ = _stats(path)
    errors = {r.line: r.error for r in recs if r.error}
    assert [r.payload["event_id"] for r in recs if r.error is None] == ["e1"]
    assert errors[2] == "line 2: null, not an event object"
    assert errors[3] == "line 3: a JSON str, not an event object"
    assert errors[4] == "line 4: timestamp: Field required (+2 more)"
    assert errors[5].startswith("line 5: 195 KB, over the 4 KB per-event cap (ROTE_MAX_EVENT_BYTES)")
    assert errors[6].startswith("line 6: not JSON")
    assert errors[7].startswith("line 7: app: String should have at least 1 character")
    letter = DeadLetter.model_validate(dead_letter(next(r for r in recs if r.line == 5), path).model_dump())
    assert letter.payload_bytes == len(lines[4]) and len(letter.payload) == 64 * 1024


def test_plausible_time_window_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTE_EARLIEST_EVENT_TIME", "2020-01-01")
    _, stats = _stats(DATA / "StudentRecord_raw_head.csv")
    assert (
        stats.valid == 0 and "before 2020-01-01 (ROTE_EARLIEST_EVENT_TIME)" in stats.first["implausible time"]
    )
    monkeypatch.setenv("ROTE_EARLIEST_EVENT_TIME", "not a date")
    with pytest.raises(ConfigError, match="ROTE_EARLIEST_EVENT_TIME"):
        list(iter_records(DATA / "StudentRecord_raw_head.csv"))


def test_load_actions_counts_what_it_leaves_out() -> None:
    stats = ImportStats()
    actions = load_actions(NOISY, stats=stats)
    assert len(actions) == 1749 and stats.invalid == {"implausible time": 3}


def test_headline_names_the_dialect() -> None:
    _, stats = _stats(NOISY)
    assert (
        stats.headline()
        == "1752 rows read (actionlogger, ';'-separated, utf-8): 1749 valid, 3 invalid (dead-lettered)"
    )


def test_eval_discovery_takes_the_shared_column_options_and_reports_dropped_rows(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rote.cli import app

    res = CliRunner().invoke(app, ["eval", "discovery", str(NOISY), "--format", "actionlogger", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["events"] == 1749 and out["import"]["invalid"] == {"implausible time": 3}
    path = tmp_path / "mine.csv"
    rows = ["when|what|where|who"]
    for day in range(6):
        for i, (what, where) in enumerate(
            [("open", "Sheet"), ("copy", "A1"), ("paste", "Name"), ("save", "Form")]
        ):
            rows.append(f"2024-05-0{day + 1}T09:00:{i:02d}Z|{what}|{where}|ann")
    path.write_text("\n".join(rows) + "\n")
    args = [
        "eval",
        "discovery",
        str(path),
        "--format",
        "csv",
        "--delimiter",
        "pipe",
        "--time-col",
        "when",
        "--action-cols",
        "what,where",
        "--user-col",
        "who",
        "--json",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["events"] == 24 and out["import"]["delimiter"] == "|" and not out["import"]["invalid"]
    bad = CliRunner().invoke(app, [*args[:5], "--time-col", "nope"])
    assert bad.exit_code != 0 and "no time column 'nope' (--time-col)" in (bad.stderr or bad.output)


def test_jsonl_is_read_as_utf8_whatever_its_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'\xff\xfe garbage\n{"event_id": "e1", "user_id": "u", "timestamp": "2024-01-01T00:00:00Z",'
        b' "app": "Excel", "action_type": "copy"}\n'
    )
    recs, stats = _stats(path)
    assert stats.encoding == "utf-8-sig" and stats.valid == 1
    assert recs[0].error == "line 1: not valid utf-8 text (pass --encoding)"


def test_a_generic_logs_url_file_and_sheet_columns_are_the_target(tmp_path: Path) -> None:
    """Where an action happened is what an automation needs (open_file needs the file, a browser step its
    URL): recognised columns of a generic log go to the target, not to the free attributes."""
    path = tmp_path / "log.csv"
    path.write_text(
        "time;action;FileName;Page URL;sheet;note\n"
        "2024-05-01T09:00:00Z;openFile;report.xlsx;;Data;x\n"
        "2024-05-01T09:00:05Z;goToUrl;;https://forms.test/new;;y\n",
        encoding="utf-8",
    )
    options = CsvOptions(time_col="time", action_cols=("action",))
    opened, went = load_actions(path, fmt="csv", csv_options=options)
    assert opened.target.file == "report.xlsx" and opened.target.sheet == "Data"
    assert went.target.url == "https://forms.test/new"
    assert opened.attributes == {"note": "x"} and went.attributes == {"note": "y"}


def test_xes_attributes_missing_from_the_first_event_are_still_columns(tmp_path: Path) -> None:
    """XES events are sparse: a new user's ProM export had `element` and `sheet` on most events but not
    the first, so `--action-cols concept:name,element` was refused and the sheets never became targets.
    ProM's global default `__INVALID__` means "no value": an event without a name is missing one."""
    path = tmp_path / "prom.xes"
    events = [
        '<event><string key="concept:name" value="openWorkbook"/>'
        '<date key="time:timestamp" value="2024-05-01T09:00:00.000+01:00"/></event>',
        '<event><string key="concept:name" value="getCell"/><string key="element" value="A2"/>'
        '<string key="sheet" value="Claims"/>'
        '<date key="time:timestamp" value="2024-05-01T09:00:05.000+01:00"/></event>',
        '<event><date key="time:timestamp" value="2024-05-01T09:00:09.000+01:00"/></event>',
    ]
    path.write_text(
        '<?xml version="1.0"?><log xes.version="1.0"><global scope="event">'
        '<string key="concept:name" value="__INVALID__"/></global>'
        "<trace>" + "".join(events) + "</trace></log>",
        encoding="utf-8",
    )
    options = CsvOptions(action_cols=("concept:name", "element"))
    recs = list(iter_records(path, csv_options=options))
    got = [r.action for r in recs if r.action is not None]
    assert [a.action_type for a in got] == ["openWorkbook", "getCell"]
    assert got[1].target.field == "A2" and got[1].target.sheet == "Claims"
    assert [r.error for r in recs if r.error] == ["line 1: concept:name is missing"]


def test_instance_col_none_says_the_cases_are_not_routine_instances() -> None:
    """A process-mining export's traces are sessions or days: scored as routine instances they gave a new
    user "instance F1 0.000" with no way to switch it off."""
    from typer.testing import CliRunner

    from rote.cli import app

    path = DATA / "bosco_log1.xes"
    assert "instance" in next(iter(iter_records(path))).labels
    none = CsvOptions(instance_col="none")
    assert all("instance" not in r.labels for r in iter_records(path, csv_options=none))
    args = ["eval", "discovery", str(path), "--format", "xes", "--json"]
    scored = json.loads(CliRunner().invoke(app, args).stdout)
    unscored = json.loads(CliRunner().invoke(app, [*args, "--instance-col", "none"]).stdout)
    assert scored["mean_best_jaccard"] is not None and unscored["mean_best_jaccard"] is None
    assert unscored["events"] == scored["events"] == 300


def test_a_wrong_encoding_that_breaks_most_rows_is_refused_not_half_replayed(tmp_path: Path) -> None:
    """A new user's cp1252 export read with `--encoding utf-8`: 588 of 1,070 rows were dead-lettered as
    undecodable and the rest replayed with exit status 0. Most rows undecodable means the wrong encoding:
    refused before anything is sent; a few damaged lines stay a few dead letters."""
    path = tmp_path / "export.csv"
    rows = [f"2024-01-0{1 + k % 9}T09:00:{k:02d}Z;Eingabe;Straße {k}" for k in range(40)]
    path.write_bytes(("time;action;value\n" + "\n".join(rows) + "\n").encode("cp1252"))
    opts = CsvOptions(time_col="time", action_cols=("action",), value_col="value", encoding="utf-8")
    with pytest.raises(ImportFormatError, match=r"40 of 40 rows are not valid utf-8 text.*--encoding"):
        read_log(path, fmt="csv", csv_options=opts)
    with pytest.raises(ImportFormatError, match="--encoding"):
        load_actions(path, fmt="csv", csv_options=opts)
    mostly = tmp_path / "mostly.csv"
    good = [r.encode("utf-8") for r in rows[:30]] + [r.encode("cp1252") for r in rows[30:]]
    mostly.write_bytes(b"time;action;value\n" + b"\n".join(good) + b"\n")
    log = read_log(mostly, fmt="csv", csv_options=opts)  # 10 of 40 damaged: read, each one a dead letter
    assert log.stats.valid == 30 and log.stats.invalid == {"encoding": 10}


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Hélène Lefèvre, Tòrres-Àlvarez, Ångström, Straße", "cp1252"),  # a new user's: read as cp1250
        ("Señor Muñoz pagó la factura número 12 en España", "cp1252"),
        ("Müller, Köln, Größe", "cp1252"),
        ("Zażółć gęślą jaźń, Příliš žluťoučký kůň úpěl ďábelské ódy", "cp1250"),
        ("Árvíztűrő tükörfúrógép és ősz", "cp1250"),
    ],
)
def test_western_and_central_european_code_pages_are_told_apart(
    tmp_path: Path, text: str, encoding: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(("time;action;value\n" + f"2024-01-08T09:00:00Z;type;{text}\n" * 50).encode(encoding))
    assert resolve_format(path, "auto", None)[1] == encoding
    (first, *_) = load_actions(path, csv_options=CsvOptions(time_col="time", action_cols=("action",)))
    assert first.value == text


def test_a_logs_own_action_names_are_mapped_and_sheet_cells_are_cells(tmp_path: Path) -> None:
    """A new user's German export: `Kopieren`, `Einfügen`, `Klicken` are not words the automation
    generator knows (every automation was rejected: "action type 'Klicken' has no action-API operation"),
    and `Tabelle1!A4` in the element column made every row a step of its own."""
    from rote.generator.plan import op_for

    path = tmp_path / "export.csv"
    path.write_text(
        "Zeit;Aktion;Element;Wert\n"
        "2024-01-08T09:00:00Z;Kopieren;Tabelle1!A4;RE-2026-0004\n"
        "2024-01-08T09:00:02Z;Klicken;Rechnungsnummer;\n"
        "2024-01-08T09:00:03Z;Einfügen;Rechnungsnummer;RE-2026-0004\n"
        "2024-01-08T09:00:05Z;kopieren;'Offene Posten'!$B$12;12,50\n"
        "2024-01-08T09:00:07Z;Scrollen;Seite;\n",
        encoding="utf-8",
    )
    mapping = (("Kopieren", "copy"), ("Einfügen", "paste"), ("Klicken", "click"))
    opts = CsvOptions(
        time_col="Zeit", action_cols=("Aktion", "Element"), value_col="Wert", action_map=mapping
    )
    acts = load_actions(path, fmt="csv", csv_options=opts)
    assert [a.action_type for a in acts] == ["copy", "click", "paste", "copy", "Scrollen"]  # case-blind
    assert [op_for(a.action_type) for a in acts[:4]] == ["copy", "click", "paste", "copy"]
    first, _, _, second, _ = acts
    where = (first.target.sheet, first.target.column, first.target.row, first.target.cell)
    assert where == ("Tabelle1", "A", 4, "A4")
    assert first.target.field is None and acts[1].target.field == "Rechnungsnummer"
    assert (second.target.sheet, second.target.cell) == ("Offene Posten", "B12")
    from rote.discovery.abstraction import ActionAbstraction

    assert ActionAbstraction().label(first) == "copy:Tabelle1!A"  # the column's step, the row a value
    pairs = parse_action_map("Kopieren=copy, Seite öffnen=openUrl")
    assert pairs == (("Kopieren", "copy"), ("Seite öffnen", "openUrl"))
    listed = tmp_path / "map.txt"
    listed.write_text("# German\nKopieren=copy\n\nZelle, auswählen=readCell\n", encoding="utf-8")
    assert parse_action_map(str(listed)) == (("Kopieren", "copy"), ("Zelle, auswählen", "readCell"))
    with pytest.raises(ConfigError, match="LOG=ROTE"):
        parse_action_map("Kopieren=copy,broken")
    long_list = ",".join(f"Aktion{k}=click" for k in range(40))  # longer than a file name may be
    assert len(parse_action_map(long_list)) == 40
    # a blank sheet column does not wipe the sheet the cell reference names
    blank = tmp_path / "blank.csv"
    blank.write_text("time;action;where;sheet\n2024-01-08T09:00:00Z;copy;Tabelle1!A4;\n", encoding="utf-8")
    opts2 = CsvOptions(time_col="time", action_cols=("action", "where"))
    (only,) = load_actions(blank, fmt="csv", csv_options=opts2)
    assert (only.target.sheet, only.target.cell) == ("Tabelle1", "A4")


def test_a_quote_that_never_closes_loses_no_row_and_hides_no_password(tmp_path: Path) -> None:
    """A new user's German export: a value began with a quote (`"Zitat Kunde: ...`) that never closed, and
    the CSV reader took the 275 rows after it, a password typed into `Kennwort` among them, as that one
    cell's text: "25 rows, 25 valid", exit 0, and the password in clear in the event's value. The line is now
    read as plain text (its quote kept) and the rows after it as rows; a cell with a real line break (a note)
    is still one cell, and a header repeated where two exports were joined is skipped and counted."""
    head = "Zeitstempel;Benutzer;Element;Wert\r\n"
    rows = [f"02.11.2026 08:{m:02d}:00,000;zb;Feld {m};Wert {m}\r\n" for m in range(10)]
    rows[3] = '02.11.2026 08:03:00,000;zb;Notiz;"Zitat Kunde: bitte bis Freitag\r\n'
    rows[6] = "02.11.2026 08:06:00,000;zb;Kennwort;Sommer2026!Kö\r\n"
    note = '02.11.2026 08:10:00,000;zb;Notiz;"zwei\r\nZeilen; mit Semikolon"\r\n'
    path = tmp_path / "export.csv"
    path.write_text(head + "".join(rows) + head + note, encoding="utf-8-sig")
    opts = CsvOptions(time_col="Zeitstempel", action_cols=("Element",), user_col="Benutzer", value_col="Wert")
    recs, stats = _stats(path, csv_options=opts)
    assert stats.valid == 11 and stats.invalid_total == 0, stats.describe()
    assert stats.skipped == {"repeated header": 1} and "line 12" in stats.first["repeated header"]
    assert stats.stray_quotes == 1 and stats.first["stray quote"] == "line 5"
    assert any("quote that never closes" in line for line in stats.describe())
    values = [r.payload.get("value") for r in recs]
    assert "Zitat Kunde: bitte bis Freitag" in values  # the quote closed at the line's end
    assert "zwei\r\nZeilen; mit Semikolon" in values or "zwei\nZeilen; mit Semikolon" in values
    assert not any("Sommer2026" in json.dumps(r.payload, ensure_ascii=False) for r in recs)
    assert stats.to_dict()["stray_quotes"] == 1


def test_real_multi_line_cells_stay_whole_whatever_they_hold(tmp_path: Path) -> None:
    """The reviewer of the stray-quote reading: a note whose lines hold the delimiter, or a multi-line cell
    in the first column, was split into rows, and an e-mail address in a note became a "bad timestamp"
    reason in clear. A line counts as a row of its own only with the header's width and a readable time;
    the closing line of a cell (its quote inside a cell) never does. A stray quote before quoted cells that
    hold the delimiter, and rows with trailing empty cells after it, still read right."""
    head = "value,ts,action,extra\n"
    files = {
        "note.csv": head + '"Rückruf erbeten:\nanna.schmidt@example.com, 0171 2345678, Hauptstr. 1, Berlin",'
        "2026-01-01T00:00:00Z,type,\nv,2026-01-01T00:00:01Z,click,\n",
        "first.csv": head + '"Line one\nline two",2026-01-01T00:00:00Z,type,x\n'
        "v,2026-01-01T00:00:01Z,click,\n",
        "commas.csv": head + '"a,b\nc,d,e,f",2026-01-01T00:00:00Z,type,\n',
    }
    opts = CsvOptions(time_col="ts", action_cols=("action",), value_col="value")
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        recs, stats = _stats(path, fmt="csv", csv_options=opts)
        assert stats.stray_quotes == 0, name
        assert "anna.schmidt" not in json.dumps(stats.to_dict()), name
        first = recs[0].payload if recs[0].error is None else {}
        assert "\n" in str(first.get("value")), (name, recs[0])
    path = tmp_path / "stray.csv"
    path.write_text(
        "ts,action,value,extra\n"
        '2026-01-01T00:00:00Z,"type","abc,def\n'
        "2026-01-01T00:00:01Z,click,v,,,\n"
        "2026-01-01T00:00:02Z,click,v2,\n",
        encoding="utf-8",
    )
    recs, stats = _stats(path, fmt="csv", csv_options=CsvOptions(time_col="ts", action_cols=("action",)))
    assert stats.stray_quotes == 1 and stats.valid == 3
    assert [(r.payload["action_type"], r.payload.get("value")) for r in recs] == [
        ("type", "abc,def"),
        ("click", "v"),
        ("click", "v2"),
    ]


def test_an_action_mapped_to_ignore_is_left_out_and_counted(tmp_path: Path) -> None:
    """A new user's tracker logs a window-focus event between most steps; no rote action means it, and
    mapping it to `waitFor` to get automations was a workaround. `LOG=ignore` leaves those rows out, counted
    as skipped, and the CLI accepts `ignore` as a target (a misspelt target is still refused)."""

    from rote.cli.import_options import _action_map

    path = tmp_path / "export.csv"
    path.write_text(
        "Zeit;Ereignis;Element\n"
        "2024-01-08T09:00:00Z;Fenster aktiviert;\n"
        "2024-01-08T09:00:02Z;Kopieren;Tabelle1!A4\n"
        "2024-01-08T09:00:03Z;FENSTER AKTIVIERT;\n"
        "2024-01-08T09:00:05Z;Einfügen;Rechnungsnummer\n"
        "2024-01-08T09:00:06Z;ignore;Ein Ereignis namens ignore\n",
        encoding="utf-8",
    )
    mapping = _action_map("Fenster aktiviert=Ignore,Kopieren=copy,Einfügen=paste")
    opts = CsvOptions(time_col="Zeit", action_cols=("Ereignis", "Element"), action_map=mapping)
    recs, stats = _stats(path, fmt="csv", csv_options=opts)
    assert [r.payload["action_type"] for r in recs] == ["copy", "paste", "ignore"]  # its own "ignore"
    assert stats.skipped == {"ignored": 2} and "'Fenster aktiviert'" in stats.first["ignored"]
    with pytest.raises(ConfigError, match=r"^--action-map: 'ignroe' is not an action"):
        _action_map("Fenster aktiviert=ignroe")
    # the log's own "ignore", mapped to ignore, is left out too (the review found it kept)
    opts = CsvOptions(
        time_col="Zeit", action_cols=("Ereignis", "Element"), action_map=_action_map("ignore=ignore")
    )
    recs, stats = _stats(path, fmt="csv", csv_options=opts)
    assert stats.skipped == {"ignored": 1} and len(recs) == 4


def test_the_next_rows_of_each_invalid_kind_are_named_by_line(tmp_path: Path) -> None:
    """Only the first invalid row of each kind was named; a new user found the second (line 1291) only by
    decoding a dead letter's base64."""
    rows = [f"2024-05-01T09:00:{i:02d}Z,step{i}\n" for i in range(30)]
    for k in (3, 9, 12, 20, 22, 24, 26, 28):
        rows[k] = "not a time,step\n"
    path = tmp_path / "log.csv"
    path.write_text("timestamp,activity\n" + "".join(rows), encoding="utf-8")
    _, stats = _stats(path)
    assert stats.invalid == {"bad timestamp": 8} and stats.first["bad timestamp"].startswith("line 5:")
    assert stats.also["bad timestamp"] == [11, 14, 22, 24, 26]
    assert stats.describe()[0].endswith("; also lines 11, 14, 22, 24, 26, …")
    assert stats.to_dict()["also"] == {"bad timestamp": [11, 14, 22, 24, 26]}


def test_naive_timestamps_are_read_in_the_zone_tz_names(tmp_path: Path) -> None:
    """A new user in Berlin: their tracker writes local times without an offset and rote took them as UTC
    (an hour off in winter, two in summer). `--tz Europe/Berlin` reads them as local time; times with an
    offset or Z, and epoch numbers, are read as they say; an unknown zone is refused before any row."""

    from rote.cli.import_options import csv_options

    path = tmp_path / "export.csv"
    path.write_text(
        "Zeitstempel;Ereignis\n"
        "02.11.2026 08:34:53,737;Kopieren\n"  # winter: UTC+1
        "2026-07-01 09:00:00;Kopieren\n"  # summer: UTC+2
        "2026-07-01T09:00:00Z;Kopieren\n"
        "1782896400;Kopieren\n",
        encoding="utf-8",
    )
    opts = csv_options(time_col="Zeitstempel", action_cols="Ereignis", tz="Europe/Berlin")
    recs, _ = _stats(path, fmt="csv", csv_options=opts)
    assert [r.payload["timestamp"] for r in recs] == [  # (in time order)
        "2026-07-01T07:00:00Z",
        "2026-07-01T09:00:00Z",
        "2026-07-01T09:00:00Z",
        "2026-11-02T07:34:53.737000Z",
    ]
    utc, _ = _stats(path, fmt="csv", csv_options=csv_options(time_col="Zeitstempel", action_cols="Ereignis"))
    assert utc[-1].payload["timestamp"] == "2026-11-02T08:34:53.737000Z"  # the default: naive is UTC
    with pytest.raises(ConfigError, match=r"^--tz: unknown time zone 'Mars/Olympus'"):
        csv_options(tz="Mars/Olympus")


def test_instance_col_names_the_truth_files_column_not_the_logs(tmp_path: Path) -> None:
    """A new user kept the truth apart from the log (the log has no `Instanz` column): `--truth truth.csv
    --instance-col Instanz` failed on the log, "no instance column 'Instanz'"; without the flag the error hid
    the accepted names behind "...". With a truth file the flag names its column; the error lists them."""
    from typer.testing import CliRunner

    from rote.cli import app

    head = "when|what|where|who"
    rows = []
    for day in range(6):
        for i, (what, where) in enumerate(
            [("open", "Sheet"), ("copy", "A1"), ("paste", "Name"), ("save", "Form")]
        ):
            rows.append((f"2024-05-0{day + 1}T09:00:{i:02d}Z|{what}|{where}|ann", f"case{day}"))
    log, truth, bare = tmp_path / "log.csv", tmp_path / "truth.csv", tmp_path / "bare.csv"
    log.write_text("\n".join([head, *(r for r, _ in rows)]) + "\n")
    truth.write_text("\n".join([head + "|Instanz", *(f"{r}|{c}" for r, c in rows)]) + "\n")
    bare.write_text("\n".join([head, *(r for r, _ in rows)]) + "\n")
    base = ["eval", "discovery", str(log), "--format", "csv", "--delimiter", "pipe", "--time-col", "when"]
    base += ["--action-cols", "what,where", "--user-col", "who", "--json"]
    res = CliRunner().invoke(app, [*base, "--truth", str(truth), "--instance-col", "Instanz"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["instance_f1"] == 1.0
    res = CliRunner().invoke(app, [*base, "--truth", str(bare)])
    assert res.exit_code == 2
    assert "looked for caseID, case:concept:name, case_id" in (res.stderr or res.output)


def test_us_dates_and_a_12_hour_clock_are_read_as_time_format_says(tmp_path: Path) -> None:
    """A new user's Windows export writes `11/03/2026 2:05:07 PM`: every row was refused ("not ISO-8601")
    and nothing said what to do. The refusal now names `--time-format`; MDY or DMY read slashed dates
    (12 AM is midnight, 12 PM noon), a strptime format reads anything else; a quoted multi-line note between
    such rows is still one cell, and a quote that never closes swallows no US-dated row after it (the
    stray-quote check reads times in the same format)."""

    from rote.cli.import_options import csv_options

    path = tmp_path / "export.csv"
    path.write_text(
        "When,Action,Typed Text\r\n"
        "11/03/2026 2:05:07 PM,type,hello\r\n"
        "11/03/2026 12:00:01 AM,type,midnight\r\n"
        '11/03/2026 12:30:00 PM,type,"a note, with a comma\r\n11/03/2026 1:00:00 PM,and a line"\r\n'
        "11/13/2026 9:15 AM,click,\r\n",
        encoding="utf-8-sig",
    )
    recs, stats = _stats(path, fmt="csv", csv_options=csv_options(time_col="When", action_cols="Action"))
    assert stats.valid == 0 and stats.invalid == {"bad timestamp": 4}
    assert "--time-format MDY" in stats.first["bad timestamp"]
    for fmt in ("MDY", "mdy", "%m/%d/%Y %I:%M:%S %p"):
        opts = csv_options(
            time_col="When",
            action_cols="Action",
            value_col="Typed Text",
            tz="America/New_York",
            time_format=fmt,
        )
        recs, stats = _stats(path, fmt="csv", csv_options=opts)
        recs = [r for r in recs if r.error is None]
        stamps = [r.payload["timestamp"] for r in recs]
        if fmt.startswith("%"):  # the format says seconds: the row without them is refused, by name
            assert stats.invalid == {"bad timestamp": 1}
            assert "does not match --time-format" in stats.first["bad timestamp"]
            assert len(stamps) == 3
            continue
        assert stats.valid == 4 and stats.stray_quotes == 0, stats.describe()
        assert stamps == [
            "2026-11-03T05:00:01Z",
            "2026-11-03T17:30:00Z",
            "2026-11-03T19:05:07Z",
            "2026-11-13T14:15:00Z",
        ]
        assert recs[1].payload["value"] == "a note, with a comma\r\n11/03/2026 1:00:00 PM,and a line"
    stray = tmp_path / "stray.csv"
    stray.write_text(
        'When,Action,Typed Text\n11/03/2026 2:05:07 PM,type,"Quote from the customer\n'
        + "".join(f"11/03/2026 2:06:{s:02d} PM,type,row {s}\n" for s in range(5)),
        encoding="utf-8",
    )
    opts = csv_options(time_col="When", action_cols="Action", value_col="Typed Text", time_format="MDY")
    recs, stats = _stats(stray, fmt="csv", csv_options=opts)
    assert stats.valid == 6 and stats.stray_quotes == 1, stats.describe()
    assert [r.payload["value"] for r in recs][1:] == [f"row {s}" for s in range(5)]
    day_first = csv_options(time_col="When", action_cols="Action", time_format="DMY")
    recs, stats = _stats(path, fmt="csv", csv_options=day_first)
    assert stats.invalid == {"bad timestamp": 1}  # 11/13 is no day-first date
    assert next(r.payload["timestamp"] for r in recs if r.error is None) == "2026-03-11T00:00:01Z"
    with pytest.raises(
        ConfigError, match=r"^--time-format: time format 'MM/DD/YYYY' is neither MDY, DMY nor"
    ):
        csv_options(time_format="MM/DD/YYYY")
    # a directive strptime does not know, a stray %, or a zone name it would drop: refused as the flag
    for bad, why in (("%Q", "not a strptime format"), ("%Y%", "not a strptime format"), ("%d %H %Z", "%Z")):
        with pytest.raises(ConfigError, match=rf"^--time-format: .*{why}"):
            csv_options(time_format=bad)


def test_an_encoding_that_refuses_the_bytes_is_a_one_line_refusal(tmp_path: Path) -> None:
    """`--encoding utf-16` on a UTF-8 file: the codec raised UnicodeError mid-read and the command died with
    "internal error" (exit 1). It is bad input: a one-line refusal naming the flag, nothing read, exit 2."""
    from typer.testing import CliRunner

    from rote.cli import app

    path = tmp_path / "log.csv"
    path.write_text("timestamp,action\n2026-11-02T09:00:00Z,click\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match=r"cannot be read as utf-16 .*pass another --encoding"):
        read_log(path, fmt="csv", csv_options=CsvOptions(encoding="utf-16"))
    res = CliRunner().invoke(
        app,
        ["eval", "discovery", str(path), "--format", "csv", "--encoding", "utf-16", "--instance-col", "none"],
    )
    assert res.exit_code == 2, res.output
    assert "internal error" not in res.output and "cannot be read as utf-16" in res.output


def test_default_column_names_match_in_any_case_and_a_wrong_delimiter_is_named(tmp_path: Path) -> None:
    """A new user's export (`When,Action,...`): `Action` was not taken for `action` although the refusal
    listed it; and with `--delimiter ';'` on the comma file the refusal showed the whole header as one
    column without saying why. Default names now match in any case; a one-column header names the delimiter
    it holds."""
    path = tmp_path / "export.csv"
    path.write_text("Timestamp,ACTION,Control\n2026-11-02T09:00:00Z,click,OK\n", encoding="utf-8")
    recs, stats = _stats(path, fmt="csv")
    assert stats.valid == 1 and recs[0].payload["action_type"] == "click"
    with pytest.raises(
        ImportFormatError, match=r"read as one column: is the delimiter ','\? pass --delimiter"
    ):
        list(iter_records(path, fmt="csv", csv_options=CsvOptions(delimiter=";")))
    with pytest.raises(ImportFormatError, match=r"read as one column: is the delimiter ','\?"):
        list(iter_records(path, fmt="csv", csv_options=CsvOptions(delimiter="tab", time_col="Timestamp")))


def test_a_file_cut_short_is_said_and_its_rows_kept(tmp_path: Path) -> None:
    """A new user's copy cut off inside a note (`"Hi all,` then `wo`): the cut row was counted valid and
    nothing was said; cut in the middle of a row, only "2 columns" was. Every row is still kept (the cut
    one as read, or dead-lettered for its columns), and the import says the file looks cut short; a whole
    file, a quoted note across lines included, says nothing of the kind."""
    head = "timestamp,action,value\n"
    rows = "".join(f"2026-11-02T09:00:{s:02d}Z,type,v{s}\n" for s in range(5))
    whole = tmp_path / "whole.csv"
    whole.write_text(head + rows + '2026-11-02T09:01:00Z,type,"Hi all,\nwork is done"\n', encoding="utf-8")
    recs, stats = _stats(whole, fmt="csv")
    assert stats.valid == 6 and stats.cut_short is None
    # a row over two lines is named by the line it starts on (its id too), as a person counts it
    assert recs[-1].line == 7 and "-7-" in recs[-1].payload["event_id"]
    in_quote = tmp_path / "in_quote.csv"
    in_quote.write_text(head + rows + '2026-11-02T09:01:00Z,type,"Hi all,\nwo', encoding="utf-8")
    recs, stats = _stats(in_quote, fmt="csv")
    assert stats.valid == 6 and recs[-1].payload["value"] == "Hi all,\nwo"
    assert stats.cut_short == "line 7: the file ends inside a quoted cell of this row"
    assert any("looks cut short" in line for line in stats.describe())
    assert stats.to_dict()["cut_short"] == stats.cut_short
    mid_row = tmp_path / "mid_row.csv"
    mid_row.write_text(head + rows + "2026-11-02T09:01:00Z,ty", encoding="utf-8")
    recs, stats = _stats(mid_row, fmt="csv")
    assert stats.valid == 5 and stats.invalid == {"columns": 1}
    assert stats.first["columns"].endswith("the file ends here: cut short?")
    assert stats.cut_short is not None
    # a last line with a cell too many, without a line break, is no cut (the review's case)
    extra = tmp_path / "extra.csv"
    extra.write_text(head + rows + "2026-11-02T09:01:00Z,type,v,extra", encoding="utf-8")
    recs, stats = _stats(extra, fmt="csv")
    assert stats.invalid == {"columns": 1} and stats.cut_short is None
    assert not stats.first["columns"].endswith("cut short?")


def test_a_gzip_bomb_is_refused_before_it_fills_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack sweep of 2026-12-02: every record of a log is held before anything is sent, so 75 KB of gzip
    (14 MB of short JSON lines) took 417 MB. A gzipped log may expand to 100x its size (at least 8 MB;
    `ROTE_MAX_GZIP_RATIO`): real exports compress 5-30x."""
    from rote.importers.sniff import open_binary

    line = json.dumps(
        {"event_id": "e", "user_id": "u", "timestamp": "2026-01-01T09:00:00Z", "app": "a", "action_type": "t"}
    )
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(("\n".join([line] * 150_000) + "\n").encode(), 9))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImportFormatError, match=r"bomb.jsonl.gz: expands to more than 8 MB .*gzip bomb"):
        read_log(bomb)
    monkeypatch.setenv("ROTE_MAX_GZIP_RATIO", "100000")  # the operator's say-so: it reads whole
    with open_binary(bomb) as fh:
        assert len(fh.read()) > 8 << 20
    monkeypatch.setenv("ROTE_MAX_GZIP_RATIO", "lots")
    with pytest.raises(ImportFormatError, match="ROTE_MAX_GZIP_RATIO='lots'"):
        read_log(bomb)
