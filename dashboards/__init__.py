"""Grafana dashboards as code: `definitions.py` builds them, `json/` holds the committed output.

The JSON is committed so Grafana provisioning (deploy/grafana) and reviewers read it without running
Python; `check()` fails CI when someone edits the code and forgets to rebuild, or edits the JSON by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from rote.dashboards import k8s_rules
from rote.errors import RoteError

JSON_DIR = Path(__file__).resolve().parent / "json"


class StaleDashboardsError(RoteError):
    """The committed dashboard JSON differs from what the code builds."""


def render() -> dict[str, str]:
    """Every dashboard as the exact text written to `json/<uid>.json`."""
    from rote.dashboards.definitions import DASHBOARDS

    out: dict[str, str] = {}
    for uid, builder in DASHBOARDS.items():
        model = builder().build()
        data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
        if data.get("uid") != uid:
            raise RoteError(f"dashboard {uid!r} builds with uid {data.get('uid')!r}")
        _number_panels(data)
        out[uid] = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def _number_panels(data: dict[str, Any]) -> None:
    """Give every panel a stable id: Grafana needs unique ids and the SDK leaves them all 0."""
    next_id = 1
    for panel in data.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for inner in panel.get("panels", []):
            inner["id"] = next_id
            next_id += 1


def build(out_dir: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard's JSON (and, in a checkout, the rules ConfigMap); prune removed dashboards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render()
    written: list[Path] = []
    for uid, text in rendered.items():
        path = out_dir / f"{uid}.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for old in out_dir.glob("*.json"):
        if old.stem not in rendered:
            old.unlink()
    if out_dir == JSON_DIR and k8s_rules.available():
        k8s_rules.CONFIGMAP.write_text(k8s_rules.render(), encoding="utf-8")
        written.append(k8s_rules.CONFIGMAP)
    return written


def stale(out_dir: Path = JSON_DIR) -> list[str]:
    """Names of files that are missing, different from the code's output, or left over."""
    rendered = render()
    problems: list[str] = []
    for uid, text in rendered.items():
        path = out_dir / f"{uid}.json"
        if not path.exists():
            problems.append(f"{path.name}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.name}: differs from the code")
    if out_dir.is_dir():
        for extra in sorted(out_dir.glob("*.json")):
            if extra.stem not in rendered:
                problems.append(f"{extra.name}: no dashboard in the code builds it")
    if out_dir == JSON_DIR and k8s_rules.available():
        cm = k8s_rules.CONFIGMAP
        if not cm.exists() or cm.read_text(encoding="utf-8") != k8s_rules.render():
            problems.append(f"{cm.name}: differs from deploy/prometheus/rules")
    return problems


def check(out_dir: Path = JSON_DIR) -> None:
    """Raise StaleDashboardsError unless the committed JSON is exactly what the code builds."""
    problems = stale(out_dir)
    if problems:
        raise StaleDashboardsError(
            "dashboard JSON is stale (run `rote dashboards build` and commit): " + "; ".join(problems)
        )


def load(out_dir: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out_dir.glob("*.json"))}


@dataclass(frozen=True, kw_only=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def resolved(self, *, rate_interval: str = "5m", range_: str = "1h") -> str:
        """The expression with Grafana's built-in variables replaced, as Grafana would send it."""
        return self.expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)


def iter_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including those nested in collapsed rows."""
    for panel in dash.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> list[PanelQuery]:
    dashboards = load() if dashboards is None else dashboards
    out: list[PanelQuery] = []
    for uid, dash in dashboards.items():
        for panel in iter_panels(dash):
            for target in panel.get("targets", []):
                query = PanelQuery(
                    dashboard=uid, panel=panel["title"], ref_id=target["refId"], expr=target["expr"]
                )
                out.append(query)
    return out
