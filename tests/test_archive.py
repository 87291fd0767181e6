"""The run archive's life cycle: a run records into a staging folder, a finished run replaces `last-run`,
a failed one is kept aside, and folders of killed runs do not pile up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rote.archive import FAILED_RUN, LAST_RUN, keep_failed, new_run_dir, publish


def _write(folder: Path, text: str) -> None:
    (folder / "candidates.jsonl").write_text(text)


def test_a_finished_run_replaces_last_run_and_a_failed_one_does_not(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path)
    assert first.parent == tmp_path / ".runs" and not any(first.iterdir())
    _write(first, "run 1\n")
    assert publish(first, tmp_path) == tmp_path / LAST_RUN
    assert (tmp_path / LAST_RUN / "candidates.jsonl").read_text() == "run 1\n" and not first.exists()

    failed = new_run_dir(tmp_path)
    _write(failed, "run 2, half done\n")
    assert keep_failed(failed, tmp_path) == tmp_path / FAILED_RUN
    assert (tmp_path / LAST_RUN / "candidates.jsonl").read_text() == "run 1\n"
    assert (tmp_path / FAILED_RUN / "candidates.jsonl").read_text() == "run 2, half done\n"

    second = new_run_dir(tmp_path)
    _write(second, "run 3\n")
    publish(second, tmp_path)
    assert (tmp_path / LAST_RUN / "candidates.jsonl").read_text() == "run 3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".runs", FAILED_RUN, LAST_RUN]


def test_staging_folders_of_killed_runs_are_swept(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that no longer runs
    dead = tmp_path / ".runs" / f"20260101T000000-{proc.pid}"
    dead.mkdir(parents=True)
    _write(dead, "killed\n")
    mine = tmp_path / ".runs" / f"20260101T000000-{os.getpid()}-9"
    mine.mkdir()
    fresh = new_run_dir(tmp_path)
    assert not dead.exists() and mine.exists() and fresh.exists() and fresh != mine
