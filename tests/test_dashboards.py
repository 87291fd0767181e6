"""Dashboards as code: the committed JSON is fresh, every panel has a unit and the datasource variable,
every query parses (promtool) and names metrics that exist, and `rote dashboards push` talks to Grafana's
HTTP API the way Grafana expects."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from prom_harness import PROMTOOL, recording_rule_names, require_binary
from prometheus_client import Counter, Gauge, Histogram, Info
from typer.testing import CliRunner

from rote import metrics as m
from rote.cli import app
from rote.dashboards import JSON_DIR, build, iter_panels, load, panel_queries, render, stale

EXPECTED_UIDS = {
    "rote-pipeline-health",
    "rote-discovery",
    "rote-automations-sandbox",
    "rote-anomalies",
    "rote-efficiency-roi",
}


def test_committed_json_is_fresh() -> None:
    print("dashboards freshness check:", stale() or "fresh")
    assert stale() == []


def test_freshness_check_catches_edits_missing_and_leftover_files(tmp_path: Path) -> None:
    build(tmp_path)
    assert stale(tmp_path) == []
    edited = tmp_path / "rote-anomalies.json"
    edited.write_text(edited.read_text().replace("Anomalies", "Anomalys"))
    (tmp_path / "rote-discovery.json").unlink()
    (tmp_path / "old-dashboard.json").write_text("{}")
    problems = stale(tmp_path)
    assert any("rote-anomalies.json: differs" in p for p in problems)
    assert any("rote-discovery.json: missing" in p for p in problems)
    assert any("old-dashboard.json" in p for p in problems)


def test_five_dashboards_with_stable_uids() -> None:
    dashboards = load()
    assert set(dashboards) == EXPECTED_UIDS
    for uid, dash in dashboards.items():
        assert dash["uid"] == uid
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids
    # Rendering twice gives the same bytes: nothing time- or order-dependent leaks into the JSON.
    assert render() == render()


def test_every_panel_has_a_unit_and_the_datasource_variable() -> None:
    for uid, dash in load().items():
        variables = dash["templating"]["list"]
        expected = {"name": "datasource", "type": "datasource", "query": "prometheus"}
        assert expected.items() <= variables[0].items()
        panels = list(iter_panels(dash))
        assert panels, uid
        for panel in panels:
            where = f"{uid} / {panel['title']}"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where
                assert target["expr"].strip(), where


def test_every_panel_query_parses_with_promtool(tmp_path: Path) -> None:
    """promtool parses PromQL only inside rule files: each query becomes a recording rule."""
    promtool = require_binary(PROMTOOL)
    queries = panel_queries()
    rules = [{"record": f"rote_dashboard_query_{i}", "expr": q.resolved()} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: a malformed expression is reported."""
    promtool = require_binary(PROMTOOL)
    path = tmp_path / "bad.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [
                            {"record": "x", "expr": "sum by (topic (rate(rote_events_consumed_total[5m]))"}
                        ],
                    }
                ]
            }
        )
    )
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True).returncode != 0


def _exposed_names() -> set[str]:
    names = {"up", "time"}
    for v in vars(m).values():
        if isinstance(v, Counter):
            names.add(v._name + "_total")
        elif isinstance(v, Histogram):
            names |= {v._name + s for s in ("_bucket", "_sum", "_count")}
        elif isinstance(v, Info):
            names.add(v._name + "_info")
        elif isinstance(v, Gauge):
            names.add(v._name)
    return names


def test_queries_only_name_metrics_rote_exposes() -> None:
    exposed = _exposed_names()
    recorded = set(recording_rule_names())
    for q in panel_queries():
        for name in re.findall(r"\brote_[a-z_]+\b", q.expr):
            assert name in exposed, f"{q.dashboard} / {q.panel}: unknown metric {name}"
        for name in re.findall(r"\brote:[a-z0-9_:]+", q.expr):
            assert name in recorded, f"{q.dashboard} / {q.panel}: unknown recording rule {name}"


def test_cli_check_prints_one_json_object() -> None:
    result = CliRunner().invoke(app, ["dashboards", "check", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"fresh": True, "problems": []}


def test_cli_check_fails_on_stale_json(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "rote-discovery.json").write_text("{}\n")
    result = CliRunner().invoke(app, ["dashboards", "check", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["fresh"] is False


# ---------------------------------------------------------------------------------------------------
# push, against a fake Grafana that records what it is sent
# ---------------------------------------------------------------------------------------------------


class FakeGrafana(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []
    folders: ClassVar[set[str]] = set()

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization")
        self.requests.append({"method": self.command, "path": self.path, "auth": auth, "body": body})
        return body

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record()
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.folders:
            self._reply(200, {"uid": uid, "title": uid})
        else:
            self._reply(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
            self._reply(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            self._reply(200, {"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1})
        else:
            self._reply(404, {"message": "no such endpoint"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_grafana() -> Iterator[tuple[str, type[FakeGrafana]]]:
    FakeGrafana.requests = []
    FakeGrafana.folders = set()
    server = HTTPServer(("127.0.0.1", 0), FakeGrafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", FakeGrafana
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_push_creates_the_folder_and_upserts_every_dashboard(
    fake_grafana: tuple[str, type[FakeGrafana]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, grafana = fake_grafana
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_test_token")
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sorted(out["pushed"]) == sorted(f"/d/{uid}/x" for uid in EXPECTED_UIDS)

    reqs = grafana.requests
    assert all(r["auth"] == "Bearer glsa_test_token" for r in reqs)
    assert [r["method"] + " " + r["path"] for r in reqs[:2]] == ["GET /api/folders/rote", "POST /api/folders"]
    pushed = [r["body"] for r in reqs if r["path"] == "/api/dashboards/db"]
    committed = load(JSON_DIR)
    assert len(pushed) == len(committed)
    for body in pushed:
        assert body["overwrite"] is True and body["folderUid"] == "rote"
        dash = body["dashboard"]
        expected = {k: v for k, v in committed[dash["uid"]].items() if k not in ("id", "version")}
        assert dash == expected

    # Second push: the folder exists now, so it is not created again.
    grafana.requests = []
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    assert not [r for r in grafana.requests if r["path"] == "/api/folders" and r["method"] == "POST"]


def test_push_without_a_token_fails_without_contacting_grafana(
    fake_grafana: tuple[str, type[FakeGrafana]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, grafana = fake_grafana
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", url])
    assert result.exit_code == 2
    assert "GRAFANA_TOKEN" in result.output
    assert grafana.requests == []
