"""The executor benchmark runs end to end on a small archive (a smoke test: numbers are its output, not
asserted)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_generator_leno import SLICE, leno_candidate

from rote.archive import ArchiveWriter
from rote.drivers.browser import CHROMIUM
from rote.generator import GeneratorConfig, generate, replay
from rote.generator.plan import PlanConfig
from rote.runner.bench import bench
from rote.streams.schemas import TestResult, encode


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs /usr/bin/chromium")
def test_bench_enters_records_and_reports_its_measures(tmp_path: Path) -> None:
    c = leno_candidate(SLICE)
    a = generate(c, config=GeneratorConfig(plan=PlanConfig(holdout_fraction=0.2)))  # as in test_runner_kafka
    w = ArchiveWriter(tmp_path)
    w.write("candidates", encode(c))
    w.write("automations", encode(a))
    for case in a.test_cases:
        v = replay(a, case, "python")
        assert v.passed, v.mismatches
        w.write(
            "test-results",
            encode(
                TestResult(
                    result_id=uuid.uuid4().hex,
                    automation_id=a.automation_id,
                    version=a.version,
                    case_id=case.case_id,
                    language="python",
                    verdict="passed" if v.passed else "failed",
                    passed=v.passed,
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
    out = bench(tmp_path, rows=2, hosts=1)
    assert out["succeeded"] == out["submitted"] == out["correct"] == 2
    assert out["records_per_minute"] > 0 and out["human_baseline_seconds"] > 0
