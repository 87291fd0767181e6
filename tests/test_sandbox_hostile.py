"""Every program in tests/hostile/ must be contained with the stop reason its header expects.

The programs really run, in the real jail; nothing is mocked. Root and bubblewrap are required: locally
the suite skips without them, in CI (CI=true) that is a failure, because the acceptance of the sandbox is
exactly this suite passing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rote.sandbox_runner.hostile import HostBait, HostileCase, load_suite, run_case
from rote.sandbox_runner.jail import Jail

CASES = load_suite(Path(__file__).parent / "hostile")


@pytest.fixture(scope="module")
def jail() -> Iterator[Jail]:
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but the hostile suite cannot run (needs root and bubblewrap)")
        pytest.skip("the hostile suite needs root and bubblewrap")
    with Jail(max_concurrency=1) as j:
        yield j


@pytest.fixture(scope="module")
def bait() -> Iterator[HostBait]:
    b = HostBait()
    yield b
    b.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_program_is_contained(jail: Jail, bait: HostBait, case: HostileCase) -> None:
    outcome = run_case(jail, case, bait)
    r = outcome.result
    assert outcome.contained, (
        f"{case.name}: {outcome.problems}\nstdout: {r.stdout[-600:]!r}\nstderr: {r.stderr[-600:]!r}"
    )
