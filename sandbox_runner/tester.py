"""Turning one automation into its test requests and each request into exactly one signed `TestResult`.

No Kafka here (the service in `service.py` feeds it), so every rule is tested directly:

- A *test request* is one (automation id, version, test case, language). Its result id is derived from
  those four and nothing else (`result_id_for`), so testing the same request again, after a crash, a
  rebalance or a redelivery, produces a result with the same id that replaces the first, never a second.
- Every request ends in exactly one result, whatever happens: a run that passed or failed, `unsupported`
  for a language that cannot run here, and verdict `error` with stop reason `setup` for anything that
  went wrong on the runner's side (a bundle that cannot be built, a jail that cannot be set up, a bug in
  the verifier). Nothing raised while testing one request can take the others with it.
- Every result is signed (`rote.security.verdicts`) before it leaves, so the registry can tell a verdict
  from this runner apart from one anybody else wrote to the topic.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rote import metrics
from rote.errors import RoteError, SandboxError
from rote.sandbox_runner.job import JobSpec, RunResult
from rote.sandbox_runner.limits import Limits
from rote.sandbox_runner.stats import SandboxStats
from rote.security.verdicts import sign, sign_result
from rote.streams.schemas import MAX_TEST_CASES, Automation, RunMetric, StepTiming, TestCase, TestResult

__all__ = ["AutomationTester", "Outcome", "TestRequest", "requests_of", "result_id_for"]

log = logging.getLogger(__name__)

#: `rote.generator.bundle.build_test_bundle`'s shape: returns an object with files, argv and collect.
BuildBundle = Callable[[Automation, TestCase, str], Any]
#: `rote.generator.bundle.verify`'s shape: returns an object with passed, mismatches and steps.
Verify = Callable[..., Any]


class Runner(Protocol):
    def run(self, job: JobSpec) -> RunResult: ...


def _default_builder() -> tuple[BuildBundle, Verify, type[Exception]]:
    from rote.generator.bundle import UnsupportedLanguage, build_test_bundle, verify

    return build_test_bundle, verify, UnsupportedLanguage


def result_id_for(automation_id: str, version: int, case_id: str, language: str) -> str:
    """The id of the one result a test request has: the same request always gets the same id.

    A hash, because the four parts together may be longer than an id may be (256); JSON-encoded first so
    that no two different requests can join into the same string ("a:b" + "c" versus "a" + "b:c").
    """
    raw = json.dumps([automation_id, version, case_id, language], ensure_ascii=True).encode()
    return "tr-" + hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True)
class TestRequest:
    """One test the runner owes a result for."""

    __test__ = False  # not a pytest test class

    automation: Automation
    case: TestCase
    language: str

    @property
    def result_id(self) -> str:
        a = self.automation
        return result_id_for(a.automation_id, a.version, self.case.case_id, self.language)


def requests_of(automation: Automation) -> list[TestRequest]:
    """Every test request an automation makes: each test case in each language it has a source for.

    Only automations in state `generated` are tested, and only those with test cases: one without (a
    routine seen too few times to hold instances out) is rejected by the registry with that reason, so
    it is not an error here (a dead letter for it would page operators over an expected case). Raises
    `ValueError` (the service dead-letters the event with it) when the automation cannot be tested as
    asked: no source to test, or two test cases sharing an id, whose results would replace each other.
    """
    if automation.state != "generated" or not automation.test_cases:
        return []
    if not automation.sources:
        raise ValueError("a generated automation with no sources: nothing to test")
    if len(automation.test_cases) > MAX_TEST_CASES:
        # the schema refuses it on the topic; this one was built in process (a forged record costs the jail
        # cases x languages x its wall limit)
        raise ValueError(
            f"{len(automation.test_cases)} test cases, over the {MAX_TEST_CASES} an automation may hold"
        )
    seen: set[str] = set()
    for case in automation.test_cases:
        if case.case_id in seen:
            raise ValueError(f"test case id {case.case_id!r} appears twice; each needs its own result")
        seen.add(case.case_id)
    return [
        TestRequest(automation, case, language)
        for case in automation.test_cases
        for language in sorted(automation.sources)
    ]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    result: TestResult
    #: None when nothing ran (a language that cannot run here, a setup error): a run record with no run
    #: would count as a failed 0-second run in the registry's success rate and the anomaly detectors.
    metric: RunMetric | None


class AutomationTester:
    """Tests automations in a jail and turns each request into one signed result, and one metric if it ran."""

    def __init__(
        self,
        *,
        runner: Runner,
        limits: Limits,
        concurrency: int,
        result_key: bytes,
        build_bundle: BuildBundle | None = None,
        verify: Verify | None = None,
        unsupported_error: type[Exception] | None = None,
        runner_name: str | None = None,
    ) -> None:
        default_build, default_verify, default_unsupported = _default_builder()
        self.runner = runner
        self.limits = limits
        self.result_key = result_key
        self.build_bundle = build_bundle or default_build
        self.verify = verify or default_verify
        self.unsupported_error = unsupported_error or default_unsupported
        #: Host and pid: two runners on one host are told apart in results and logs.
        self.runner_name = runner_name or f"{socket.gethostname()}:{os.getpid()}"
        self.stats = SandboxStats()
        self._sem = asyncio.Semaphore(concurrency)

    async def test(self, automation: Automation) -> list[Outcome]:
        """One outcome per request of `automation` (`requests_of`); raises only what `requests_of` raises."""
        return list(await asyncio.gather(*(self.test_one(r) for r in requests_of(automation))))

    async def test_one(self, request: TestRequest) -> Outcome:
        """Exactly one outcome for `request`; never raises (a failure here is verdict `error`)."""
        started = datetime.now(UTC)
        try:
            return await self._one(request, started)
        except Exception as exc:  # a runner-side bug must still end in a result, not a lost test
            log.exception("testing %s failed", request.result_id)
            return self._finish(request, started, error=f"the runner failed: {type(exc).__name__}: {exc}")

    async def _one(self, req: TestRequest, started: datetime) -> Outcome:
        if req.language == "applescript":
            why = "AppleScript is unsupported on this platform"
            if shutil.which("osascript"):
                why = "AppleScript cannot be jailed by bubblewrap; not run"
            return self._finish(req, started, unsupported=why)
        try:
            bundle = self.build_bundle(req.automation, req.case, req.language)
        except self.unsupported_error as exc:
            return self._finish(req, started, unsupported=str(exc))
        except RoteError as exc:
            return self._finish(req, started, error=f"cannot build the test bundle: {exc}")
        job = JobSpec(files=bundle.files, argv=bundle.argv, collect=bundle.collect, limits=self.limits)
        async with self._sem:
            try:
                run = await asyncio.to_thread(self.runner.run, job)
            except SandboxError as exc:
                return self._finish(req, started, error=str(exc))
        verdict = self.verify(req.automation, req.case, run.collected, exit_code=run.exit_code)
        return self._finish(req, started, run=run, verdict=verdict)

    def _finish(
        self,
        req: TestRequest,
        started: datetime,
        *,
        run: RunResult | None = None,
        verdict: Any = None,
        unsupported: str | None = None,
        error: str | None = None,
    ) -> Outcome:
        a, language = req.automation, req.language
        mismatches: list[str] = []
        steps: list[StepTiming] = []
        if run is not None and verdict is not None:
            passed = run.ok and verdict.passed
            verdict_name = "passed" if passed else "failed"
            stop_reason = run.stop_reason
            detail = run.detail
            mismatches = [str(m)[:2000] for m in list(verdict.mismatches)[:50]]
            steps = list(verdict.steps)
            if not passed and run.ok and mismatches:
                detail = f"{detail}; the recorded actions differ from the observed ones"
        elif unsupported is not None:
            passed, verdict_name, stop_reason, detail = False, "unsupported", "unsupported", unsupported
        else:
            passed, verdict_name, stop_reason, detail = False, "error", "setup", error or "unknown error"
        result = TestResult(
            result_id=req.result_id,
            automation_id=a.automation_id,
            version=a.version,
            case_id=req.case.case_id,
            language=language,
            verdict=verdict_name,
            passed=passed,
            exit_code=run.exit_code if run else None,
            signal=run.signal if run else None,
            stop_reason=stop_reason,
            detail=detail[:2000],
            wall_seconds=run.wall_seconds if run else 0.0,
            cpu_seconds=run.cpu_seconds if run else 0.0,
            peak_memory_bytes=run.peak_memory_bytes if run else 0,
            output_bytes=run.output_bytes if run else 0,
            mismatches=mismatches,
            started_at=started,
            runner=self.runner_name,
        )
        result = sign_result(result, self.result_key)
        metric = (
            None
            if run is None
            else RunMetric(
                run_id=result.result_id,
                automation_id=a.automation_id,
                version=a.version,
                source="sandbox",
                started_at=started,
                duration_seconds=result.wall_seconds,
                success=passed,
                cpu_seconds=result.cpu_seconds,
                peak_memory_bytes=result.peak_memory_bytes,
                steps=steps,
            )
        )
        if metric is not None:
            metric = sign(metric, self.result_key)
        self.stats.learn_one(result)
        metrics.SANDBOX_RUNS.labels(language=language, verdict=verdict_name, stop_reason=stop_reason).inc()
        if run is not None:
            metrics.SANDBOX_RUN_SECONDS.labels(language=language).observe(run.wall_seconds)
        return Outcome(result=result, metric=metric)
