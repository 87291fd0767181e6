"""A real Prometheus (the Debian package's /usr/bin/prometheus) on loopback, for integration tests.

Use the `prometheus` fixture factory (import it into a test module or conftest):

    from prom_harness import prometheus  # noqa: F401  (the fixture)

    def test_x(prometheus):
        prom = prometheus(targets=["127.0.0.1:9464"], alert_for="2s")
        prom.wait_for_scrapes(3)
        assert prom.query("up")

Each instance gets its own temp dir, free port, 1 s scrape and evaluation intervals and a copy of the
repository's rule files (with every alert's `for:` replaced by `alert_for`, so a firing test takes
seconds, not minutes). Instances are stopped at fixture teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def require_binary(path: str) -> str:
    """Skip locally when Prometheus is not installed, but fail in CI, where skipping would hide it."""
    if Path(path).exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing: CI must install the Debian 'prometheus' package")
    pytest.skip(f"{path} not installed (apt-get install prometheus)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except (OSError, ValueError, KeyError) as exc:  # not up yet / partial answer
            last_exc = exc
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}"
        + (f" (last error: {last_exc})" if last_exc else "")
    )


def copy_rules(dest: Path, *, alert_for: str | None) -> list[Path]:
    """Copy the repo's rule files; optionally shorten every alert's `for:`."""
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for src in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(src.read_text(encoding="utf-8"))
        if alert_for is not None:
            for group in doc.get("groups", []):
                for rule in group.get("rules", []):
                    if "alert" in rule and "for" in rule:
                        rule["for"] = alert_for
        path = dest / src.name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        out.append(path)
    return out


def recording_rule_names() -> list[str]:
    doc = yaml.safe_load((RULES_DIR / "recording.yml").read_text(encoding="utf-8"))
    return [r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r]


@dataclass
class Prometheus:
    url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False, default=None)

    # ---- HTTP API --------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise ValueError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (empty list = no data)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def alert_states(self, name: str) -> list[str]:
        return [a["state"] for a in self.alerts() if a["labels"].get("alertname") == name]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def wait_for_scrapes(self, n: int, *, job: str | None = None, timeout: float = 60) -> None:
        """Wait until every (matching) target is up and has at least `n` samples of `up`."""
        sel = f'{{job="{job}"}}' if job else ""

        def ready() -> bool:
            res = self.query(f"count_over_time(up{sel}[5m]) >= {n} and up{sel} == 1")
            return bool(res) and len(res) == len(
                [t for t in self.targets() if not job or t["labels"].get("job") == job]
            )

        wait_until(ready, timeout=timeout, what=f"{n} successful scrapes")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()


def start_prometheus(
    workdir: Path,
    *,
    targets: list[str],
    job: str = "rote-worker",
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    alert_for: str | None = "2s",
    with_rules: bool = True,
) -> Prometheus:
    binary = require_binary(PROMETHEUS)
    workdir.mkdir(parents=True, exist_ok=True)
    rule_files = copy_rules(workdir / "rules", alert_for=alert_for) if with_rules else []
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "scrape_timeout": scrape_interval, "static_configs": [{"targets": targets}]}
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    log_path = workdir / "prometheus.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    prom = Prometheus(
        url=f"http://127.0.0.1:{port}", workdir=workdir, process=process, log_path=log_path, _log=log
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{prom.log_tail()}")
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
            return resp.status == 200

    try:
        wait_until(ready, timeout=30, what="prometheus /-/ready")
    except BaseException:
        prom.stop()
        raise
    return prom


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Factory fixture: `prometheus(targets=[...], alert_for="2s")` starts one; all stop at teardown."""
    started: list[Prometheus] = []

    def factory(**kwargs: Any) -> Prometheus:
        prom = start_prometheus(tmp_path / f"prometheus-{len(started)}", **kwargs)
        started.append(prom)
        return prom

    yield factory
    for prom in started:
        prom.stop()
