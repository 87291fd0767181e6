"""The executor's run logic: one run request in, one `RunMetric` out (or a refusal). No Kafka.

`Executor.execute(request, automation, state)` checks the request against the policy
(`rote.runner.policy`), runs the automation's generated Python in the automation's run host
(`rote.runner.pool`) with the production drivers, retries by policy, and builds the metrics event from
what really happened: wall time of the attempt measured here, per-step timings measured around each
action in the host, the outcome, the error naming the step and the target, the attempts made.
Idempotency by run id is the caller's (the service remembers published runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from rote.config import values_from_env
from rote.drivers.browser import CHROMIUM
from rote.drivers.targets import SiteMap, allowed_hosts
from rote.errors import ConfigError
from rote.privacy import default_redactor
from rote.runner import policy
from rote.runner.pool import HostError, HostProcess, HostResult, Isolation
from rote.streams.schemas import Automation, RunMetric, RunOutcome, RunRequest, StepTiming

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """Executor settings; every field has a `ROTE_RUNNER_<NAME>` variable (docs/automation.md)."""

    #: Folder the automations' files and workbooks are in (the file and spreadsheet drivers' root).
    root: Path = field(default_factory=lambda: Path("."))
    #: Where recorded sites are served now: comma-separated RECORDED=NOW origins.
    sites: str = ""
    #: Seconds one action may wait for its page or element.
    step_timeout: float = 10.0
    #: Wall seconds one run may take, start to finish (the host is killed past it).
    run_timeout: float = 120.0
    retries: int = 2
    retry_backoff: float = 1.0
    chromium: str = CHROMIUM
    #: uid/gid for run hosts when the executor is root.
    uid: int = 60999
    gid: int = 60999
    max_runs_per_host: int = 50
    #: Run hosts alive at once (each a Chromium); also how many runs go on at the same time.
    max_hosts: int = 2
    #: Seconds to wait for the registry feed to learn an automation a request names.
    await_state_seconds: float = 30.0
    state_dir: Path = field(default_factory=lambda: Path(".rote") / "runner")

    def __post_init__(self) -> None:
        if self.step_timeout <= 0 or self.run_timeout <= 0:
            raise ConfigError("runner timeouts must be positive")
        if self.retries < 0:
            raise ConfigError("runner retries must be 0 or more")
        if self.uid == 0 or self.gid == 0:
            raise ConfigError("ROTE_RUNNER_UID/GID must not be 0: automations never run as root")
        SiteMap.parse([self.sites])

    @classmethod
    def from_env(cls, env: Any = None, **overrides: Any) -> RunnerConfig:
        return cls(**values_from_env(cls, env, prefix="ROTE_RUNNER_", overrides=overrides))

    @property
    def site_map(self) -> SiteMap:
        return SiteMap.parse([self.sites])

    @property
    def isolation(self) -> Isolation:
        return Isolation(uid=self.uid, gid=self.gid)

    @property
    def retry_policy(self) -> policy.RetryPolicy:
        return policy.RetryPolicy(retries=self.retries, backoff_seconds=self.retry_backoff)


@dataclass(frozen=True, kw_only=True)
class Execution:
    """What became of a request: a metric (it ran) or a refusal (it did not, and why)."""

    metric: RunMetric | None = None
    refused: str | None = None


HostFactory = Callable[..., HostProcess]
_OUTCOMES: dict[str, RunOutcome] = {o: o for o in get_args(RunOutcome)}


class Executor:
    def __init__(self, config: RunnerConfig, *, host_factory: HostFactory = HostProcess) -> None:
        self.config = config
        self.host_factory = host_factory
        #: idle hosts per automation version, least recently used first
        self._idle: OrderedDict[tuple[str, int], list[HostProcess]] = OrderedDict()
        self._busy = 0
        self._lock = threading.Condition()
        self._checked: dict[tuple[str, int], bool] = {}
        self._check_lock = threading.Lock()
        from rote.generator.codegen import template_version

        self.template_version = template_version()

    def _idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def _acquire(self, a: Automation) -> HostProcess:
        """An idle host of this automation version, or a new one (closing the least recently used idle
        host of another automation when `max_hosts` are alive); waits while all hosts are busy."""
        key = (a.automation_id, a.version)
        evicted: list[HostProcess] = []
        with self._lock:
            while True:
                mine = self._idle.get(key)
                if mine:
                    host = mine.pop()
                    self._busy += 1
                    break
                if self._busy + self._idle_count() < self.config.max_hosts or self._idle_count():
                    while self._idle and self._busy + self._idle_count() >= self.config.max_hosts:
                        old_key, hosts = next(iter(self._idle.items()))
                        evicted.append(hosts.pop(0))
                        if not hosts:
                            del self._idle[old_key]
                    host = self._new_host(a)
                    self._busy += 1
                    break
                self._lock.wait()
        for old in evicted:
            old.close()
        return host

    def _release(self, a: Automation, host: HostProcess) -> None:
        key = (a.automation_id, a.version)
        with self._lock:
            self._busy -= 1
            self._idle.setdefault(key, []).append(host)
            self._idle.move_to_end(key)
            self._lock.notify()

    def _new_host(self, a: Automation) -> HostProcess:
        sites = self.config.site_map
        return self.host_factory(
            root=self.config.root.resolve(),
            sites=sites.to_args(),
            allowed=allowed_hosts(a.plan, sites),
            browser=policy.needs_browser(a.plan),
            step_timeout=self.config.step_timeout,
            chromium=self.config.chromium,
            isolation=self.config.isolation,
            max_runs=self.config.max_runs_per_host,
        )

    def close(self) -> None:
        with self._lock:
            hosts = [h for v in self._idle.values() for h in v]
            self._idle.clear()
        for host in hosts:
            host.close()

    def check(self, request: RunRequest, automation: Automation | None, state: str | None) -> str | None:
        why = policy.refusal(request, automation, state, template_version=self.template_version)
        if why is not None or automation is None:
            return why
        key = (automation.automation_id, automation.version)
        # One check at a time: on CI one of two runs of a new automation, checked at once in two threads,
        # was refused because its plan "did not render" (an exception, not reproduced here; now logged).
        with self._check_lock:
            if key not in self._checked:
                self._checked[key] = policy.source_matches_plan(automation)
        if not self._checked[key]:
            return "the Python source is not what rote's templates render from the plan: refusing to run it"
        return None

    def execute(self, request: RunRequest, automation: Automation | None, state: str | None) -> Execution:
        """Run one request (blocking: call it from a worker thread)."""
        why = self.check(request, automation, state)
        if why is not None:
            return Execution(refused=why)
        assert automation is not None
        committing = policy.committing_steps(automation.plan)
        retry = self.config.retry_policy
        attempt = 0
        while True:
            attempt += 1
            started_at = datetime.now(UTC)
            t0 = time.perf_counter()
            host = self._acquire(automation)
            try:
                result = host.run(
                    request.run_id,
                    automation.sources["python"].source,
                    dict(request.params),
                    self.config.run_timeout,
                )
            except HostError as exc:
                result = HostResult(outcome="error", error=str(exc))
            finally:
                self._release(automation, host)
            wall = time.perf_counter() - t0
            completed = [int(s["step"]) for s in result.steps if s.get("ok")]
            if not policy.should_retry(result.outcome, completed, committing, attempt, retry):
                break
            log.info(
                "run %s of %s: attempt %d %s, retrying",
                request.run_id,
                automation.automation_id,
                attempt,
                result.outcome,
            )
            time.sleep(retry.backoff_seconds * attempt)
        return Execution(metric=self._metric(request, automation, result, started_at, wall, attempt))

    def _metric(
        self,
        request: RunRequest,
        a: Automation,
        r: HostResult,
        started_at: datetime,
        wall: float,
        attempts: int,
    ) -> RunMetric:
        labels = policy.step_labels(a.plan)
        steps = [
            StepTiming(
                step=int(s["step"]),
                label=labels.get(int(s["step"]), "")[:500],
                duration_seconds=float(s["seconds"]),
            )
            for s in r.steps
        ]
        return RunMetric(
            run_id=request.run_id,
            automation_id=a.automation_id,
            version=a.version,
            source="production",
            started_at=started_at,
            duration_seconds=wall,
            success=r.outcome == "succeeded",
            cpu_seconds=r.cpu_seconds,
            steps=steps,
            outcome=_OUTCOMES.get(r.outcome, "error"),
            # an error quotes the step's target and what the page said: real values of a production run
            # (a file named after a person, a page's text), so it is redacted as any text leaving the host
            error=default_redactor().redact_text(r.error) if r.error else r.error,
            failed_step=r.failed_step,
            attempts=attempts,
            request_id=request.run_id,
        )
