"""`rote runner` and `rote automations run`: help, bad input as one line, and a local run from an archive
with the production drivers on real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_registry import CFG, file_candidate

from rote.archive import ArchiveWriter
from rote.errors import ConfigError
from rote.generator import generate, replay
from rote.runner.request import parse_params
from rote.streams.schemas import TestResult, encode

ROTE = [sys.executable, "-m", "rote.cli"]


def rote(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROTE, *args], capture_output=True, text=True, timeout=300, check=False)


def test_help() -> None:
    assert "run-requests" in rote("runner", "--help").stdout
    out = rote("automations", "run", "--help").stdout
    assert "--param" in out and "--broker" in out and "--allow-degraded" in out


def test_params() -> None:
    assert parse_params(["row=7", "note=a=b", "empty="]) == {"row": "7", "note": "a=b", "empty": ""}
    for bad in ("row", "=1", "1x=2", "a b=3"):
        with pytest.raises(ConfigError, match="NAME=VALUE"):
            parse_params([bad])
    proc = rote("automations", "run", "x", "--param", "nope")
    assert proc.returncode == 2 and "--param needs NAME=VALUE" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def world() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rote-runner-cli-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_local_run_from_an_archive(tmp_path: Path, world: Path) -> None:
    a = generate(file_candidate(), config=CFG)
    archive = tmp_path / "last-run"
    w = ArchiveWriter(archive)
    w.write("automations", encode(a))
    for case in a.test_cases:  # tested for real (the sandbox's contract, without the jail)
        for lang in ("python", "bash"):
            v = replay(a, case, lang)
            assert v.passed
            w.write(
                "test-results",
                encode(
                    TestResult(
                        result_id=uuid.uuid4().hex,
                        automation_id=a.automation_id,
                        version=a.version,
                        case_id=case.case_id,
                        language=lang,
                        verdict="passed",
                        passed=True,
                        exit_code=0,
                        stop_reason="exited",
                        wall_seconds=0.1,
                        cpu_seconds=0.1,
                        peak_memory_bytes=0,
                        output_bytes=0,
                        started_at=datetime.now(UTC),
                    )
                ),
            )
    w.close()
    case = a.test_cases[0]
    for rel, content in dict(case.environment["files"]).items():
        (world / rel).parent.mkdir(parents=True, exist_ok=True)
        (world / rel).write_text(str(content))
    for p in [world, *world.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    args = [f"{k}={v}" for k, v in case.inputs.items()]
    proc = rote(
        "automations",
        "run",
        a.automation_id,
        "--from",
        str(archive),
        "--root",
        str(world),
        "--json",
        *[x for arg in args for x in ("--param", arg)],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metric = json.loads(proc.stdout)
    assert metric["outcome"] == "succeeded" and metric["source"] == "production" and len(metric["steps"]) == 4
    written = next(e for e in case.expected if e.action_type == "writeFile")
    assert (world / str(written.target.file)).read_text() == written.value
    refused = rote("automations", "run", "auto-nope", "--from", str(archive), "--json")
    assert refused.returncode == 1 and "unknown automation" in json.loads(refused.stdout)["refused"]
