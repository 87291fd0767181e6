"""Prometheus rules and deploy files: promtool checks and unit tests (the CI log shows their output),
plus the conventions promtool does not check (annotations, runbook anchors, generated copies)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prom_harness import PROMTOOL, RULES_DIR, require_binary

from rote.dashboards import k8s_rules

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "deploy" / "prometheus"
RUNBOOKS = REPO / "docs" / "runbooks.md"
REQUIRED_ALERTS = {
    "RoteAnomalyDetected",
    "RoteAutomationFailureRateHigh",
    "RoteSandboxStopReasonsSpiking",
    "RoteConsumerLagGrowing",
    "RotePipelineStalled",
    "RoteDeadLettersRising",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([require_binary(PROMTOOL), *args], capture_output=True, text=True, cwd=REPO)
    # Shown in the CI log (pytest -rA / -s) so a reader sees promtool's own verdict.
    print(f"$ promtool {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", *sorted(str(p) for p in RULES_DIR.glob("*.yml")))
    assert result.returncode == 0
    assert result.stdout.count("SUCCESS") == len(list(RULES_DIR.glob("*.yml")))


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(PROM_DIR / "tests" / "alerts_test.yml"))
    assert result.returncode == 0
    assert "SUCCESS" in result.stdout


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """Sanity check of the harness: a test expecting the anomaly alert one minute early fails."""
    text = (PROM_DIR / "tests" / "alerts_test.yml").read_text()
    text = text.replace("- ../rules/", f"- {RULES_DIR}/")
    broken = text.replace("      - eval_time: 6m   # pending", "      - eval_time: 7m   # pending", 1)
    assert broken != text
    path = tmp_path / "broken_test.yml"
    path.write_text(broken)
    assert _promtool("test", "rules", str(path)).returncode != 0


def test_required_alerts_with_severity_and_annotations() -> None:
    alerts = {a["alert"]: a for a in _alerts()}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "{{ $labels.severity }}"), name
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), f"{name}: no {key}"
        assert "for" in rule, f"{name}: alerts without for: page on a single bad evaluation"


def test_runbook_urls_point_at_existing_sections() -> None:
    headings = re.findall(r"^##+ (.+)$", RUNBOOKS.read_text(), flags=re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    for rule in _alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md", url
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"


def test_every_alert_is_unit_tested_before_and_after_it_fires() -> None:
    doc = yaml.safe_load((PROM_DIR / "tests" / "alerts_test.yml").read_text())
    cases = [c for t in doc["tests"] for c in t.get("alert_rule_test", [])]
    for rule in _alerts():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']}: no 'not yet firing' case"
        firing = [c for c in mine if c.get("exp_alerts")]
        assert firing, f"{rule['alert']}: no firing case"
        for case in firing:
            for exp in case["exp_alerts"]:
                assert "severity" in exp["exp_labels"], rule["alert"]
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}


def test_k8s_rules_configmap_matches_the_rule_files() -> None:
    doc = yaml.safe_load(k8s_rules.CONFIGMAP.read_text())
    assert doc["kind"] == "ConfigMap"
    assert doc["data"] == {p.name: p.read_text() for p in sorted(RULES_DIR.glob("*.yml"))}
    assert k8s_rules.CONFIGMAP.read_text() == k8s_rules.render()


def test_grafana_provisioning_and_compose_agree_on_the_dashboards_path() -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "rote.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../dashboards/json:{path}:ro" in mounts
    assert set(compose["services"]) >= {"kafka", "worker", "sandbox-runner", "prometheus", "grafana"}
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["type"] == "prometheus"


def test_k8s_manifests_scrape_the_ports_the_processes_serve() -> None:
    from rote.metrics import DEFAULT_METRICS_PORT, DEFAULT_SANDBOX_METRICS_PORT

    for name, port, var in (
        ("worker", DEFAULT_METRICS_PORT, "ROTE_METRICS_PORT"),
        ("sandbox-runner", DEFAULT_SANDBOX_METRICS_PORT, "ROTE_SANDBOX_METRICS_PORT"),
    ):
        docs = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / f"{name}.yaml").read_text()))
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        service = next(d for d in docs if d["kind"] == "Service")
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env[var] == str(port)
        assert pod["spec"]["containers"][0]["ports"][0]["containerPort"] == port
