"""Run a test bundle in a plain subprocess (no jail): for measurement and for the test suite.

The sandbox runner is the place to run untrusted code; this is for code we just generated from data
we trust (the evaluation logs), where the question is "does it reproduce the user", not containment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rote.generator.bundle import SpecVerdict, TestBundle, build_test_bundle, verify
from rote.streams.schemas import Automation, TestCase


@dataclass(frozen=True, kw_only=True)
class LocalRun:
    exit_code: int
    collected: dict[str, bytes]
    stderr: str


def write_bundle(bundle: TestBundle, workdir: Path) -> None:
    for rel, data in bundle.files.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_local(bundle: TestBundle, *, timeout: float = 60.0, workdir: Path | None = None) -> LocalRun:
    with tempfile.TemporaryDirectory(prefix="rote-replay-") as tmp:
        wd = workdir or Path(tmp)
        write_bundle(bundle, wd)
        argv = list(bundle.argv)
        if argv and argv[0] == "python3":
            argv[0] = sys.executable
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        try:
            proc = subprocess.run(argv, cwd=wd, capture_output=True, timeout=timeout, env=env, check=False)
            code, err = proc.returncode, proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            code, err = -9, "timeout"
        collected = {name: (wd / name).read_bytes() for name in bundle.collect if (wd / name).is_file()}
    return LocalRun(exit_code=code, collected=collected, stderr=err)


def replay(
    automation: Automation, case: TestCase, language: str = "python", *, timeout: float = 60.0
) -> SpecVerdict:
    run = run_local(build_test_bundle(automation, case, language), timeout=timeout)
    return verify(automation, case, run.collected, exit_code=run.exit_code)
