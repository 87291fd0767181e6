"""The executor without Kafka: policy, and real runs in run hosts (uid, rlimits, audit hook, timeout),
with the production drivers on real files and on the form replica in Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_generator_leno import SLICE, leno_candidate
from test_registry import CFG, file_candidate

from rote.demo.form import FormServer
from rote.demo.students import WORKBOOK_NAME, students_from_log, write_workbook
from rote.drivers.browser import CHROMIUM
from rote.generator import generate
from rote.generator.bundle import _nul_params
from rote.generator.codegen import template_version
from rote.runner import policy
from rote.runner.executor import Executor, RunnerConfig
from rote.streams.schemas import Automation, GeneratedSource, RunRequest

#: the form automation's two decisions (tick the box; click "Add another response" after the record)
FLAGS = {"do_clickcheckbox_decisionbox": "true", "do_clicklink_add_another_response": "true"}

NEEDS_CHROMIUM = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs /usr/bin/chromium")


def request(a: Automation, params: dict[str, str], run_id: str = "r1", **kw: Any) -> RunRequest:
    return RunRequest(
        run_id=run_id, automation_id=a.automation_id, params=params, requested_at=datetime.now(UTC), **kw
    )


@pytest.fixture
def root() -> Iterator[Path]:
    """A folder the run host's unprivileged uid can use (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="rote-runner-test-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def files_auto() -> Automation:
    return generate(file_candidate(), config=CFG)


@pytest.fixture(scope="module")
def form_auto() -> Automation:
    return generate(leno_candidate(SLICE))


# --------------------------------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------------------------------


def test_refusals(files_auto: Automation) -> None:
    tv = template_version()
    params = dict(files_auto.test_cases[0].inputs)
    ok = request(files_auto, params)
    assert policy.refusal(ok, files_auto, "verified", template_version=tv) is None
    assert policy.refusal(ok, files_auto, "active", template_version=tv) is None
    assert "unknown automation" in str(policy.refusal(ok, None, None, template_version=tv))
    assert "rejected, not verified" in str(policy.refusal(ok, files_auto, "rejected", template_version=tv))
    assert "degraded" in str(policy.refusal(ok, files_auto, "degraded", template_version=tv))
    allowed = request(files_auto, params, allow_degraded=True)
    assert policy.refusal(allowed, files_auto, "degraded", template_version=tv) is None
    assert "missing parameters" in str(
        policy.refusal(request(files_auto, {}), files_auto, "verified", template_version=tv)
    )
    assert "regenerate" in str(policy.refusal(ok, files_auto, "verified", template_version="other"))
    old = request(files_auto, params, version=files_auto.version + 1)
    assert "not the current version" in str(policy.refusal(old, files_auto, "verified", template_version=tv))


def test_a_source_edited_on_the_topic_is_refused(files_auto: Automation) -> None:
    assert policy.source_matches_plan(files_auto)
    src = files_auto.sources["python"]
    evil = src.source.replace("return None", "__import__('os').system('id')\n    return None")
    tampered = files_auto.model_copy(
        update={
            "sources": {
                **files_auto.sources,
                "python": GeneratedSource(**{**src.model_dump(), "source": evil}),
            }
        }
    )
    assert not policy.source_matches_plan(tampered)
    ex = Executor(RunnerConfig())
    out = ex.execute(request(tampered, dict(files_auto.test_cases[0].inputs)), tampered, "verified")
    assert out.metric is None and "not what rote's templates render" in str(out.refused)


def test_a_forged_header_or_step_index_is_not_rendered_into_code(files_auto: Automation) -> None:
    """An attacker's sweep: `generator_version` went into the header unquoted, so a forged `automations`
    record whose version opened a lambda (and a step label that closed it) rendered to code that the
    templates' own output check accepted, and ran in the run host. The version must be a version, a step
    index a whole number, and both are checked where the source is compared."""
    import pydantic

    forged = '1.0.0\ndef run(api, p, _=(lambda s: exec(s))("""#\nimport os\n#'
    with pytest.raises(pydantic.ValidationError, match="generator_version"):
        Automation.model_validate({**files_auto.model_dump(), "generator_version": forged})
    assert not policy.source_matches_plan(files_auto.model_copy(update={"generator_version": forged}))
    step = {**files_auto.plan[0], "i": "0, value=__import__('os').system('id')"}
    plan = [step, *files_auto.plan[1:]]
    assert not policy.source_matches_plan(files_auto.model_copy(update={"plan": plan}))
    assert policy.source_matches_plan(files_auto)  # rote's own record still passes


def test_a_new_version_is_checked_once_even_by_runs_starting_together(
    files_auto: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of a new automation starting at once check its source once, one after the other: on CI one
    of two concurrent checks failed to render and refused a verified automation's run."""
    import threading
    import time

    active, most, calls = [0], [0], [0]
    lock = threading.Lock()

    def slow_check(a: Automation) -> bool:
        with lock:
            active[0] += 1
            calls[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return True

    monkeypatch.setattr(policy, "source_matches_plan", slow_check)
    ex = Executor(RunnerConfig())
    req = request(files_auto, dict(files_auto.test_cases[0].inputs))
    out: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: out.append(ex.check(req, files_auto, "verified"))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [None, None, None] and calls[0] == 1 and most[0] == 1


def test_committing_steps_and_retry_policy(form_auto: Automation, files_auto: Automation) -> None:
    committing = policy.committing_steps(form_auto.plan)
    submit = next(st["i"] for st in form_auto.plan if st["label"].startswith("clickButton"))
    assert committing == {submit}  # text fields, the checkbox and the link change nothing
    assert policy.committing_steps(files_auto.plan) == {0, 2, 3}  # make_dir, write_file, copy_file
    rp = policy.RetryPolicy(retries=2)
    assert policy.should_retry("failed", [0, 1], committing, 1, rp)
    assert not policy.should_retry("failed", [0, submit], committing, 1, rp)  # it submitted: never again
    assert not policy.should_retry("failed", [0], committing, 3, rp)  # attempts used up
    assert not policy.should_retry("succeeded", [], committing, 1, rp)
    assert policy.needs_browser(form_auto.plan) and not policy.needs_browser(files_auto.plan)


# --------------------------------------------------------------------------------------------------
# real runs
# --------------------------------------------------------------------------------------------------


def _world(case: Any, root: Path) -> None:
    for rel, content in dict(case.environment.get("files", {})).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(content))
    for p in [root, *root.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)


def test_file_routine_runs_for_real_in_python_and_bash(files_auto: Automation, root: Path) -> None:
    """The same generated file routine, Python through the executor (production drivers, run host under
    its own uid) and Bash with its production driver, on real files; both leave the expected files."""
    case = files_auto.test_cases[0]
    expected = {e.target.file: e.value for e in case.expected if e.action_type == "writeFile"}
    for lang in ("python", "bash"):
        world = root / lang
        world.mkdir()
        _world(case, world)
        if lang == "python":
            ex = Executor(RunnerConfig(root=world, retries=0))
            try:
                m = ex.execute(
                    request(files_auto, dict(case.inputs), run_id="py"), files_auto, "verified"
                ).metric
            finally:
                ex.close()
            assert m is not None and m.outcome == "succeeded", m
            assert [s.step for s in m.steps] == [0, 1, 2, 3] and all(s.duration_seconds > 0 for s in m.steps)
            assert m.source == "production" and m.success and m.duration_seconds > 0
        else:
            script = world.parent / "automation.sh"
            script.write_text(files_auto.sources["bash"].source)
            params = world.parent / "params.nul"
            params.write_bytes(_nul_params(dict(case.inputs)))
            proc = subprocess.run(
                ["bash", str(script), "--driver", "prod", "--root", str(world), "--params", str(params)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
        for rel, text in expected.items():
            assert (world / str(rel)).read_text() == text, (lang, rel)
        copied = [e.value for e in case.expected if e.action_type == "copyFile"]
        assert copied and all((world / str(c)).is_file() for c in copied)
        if os.geteuid() == 0 and lang == "python":
            owner = {(world / str(rel)).stat().st_uid for rel in expected}
            assert owner == {RunnerConfig().uid}  # the run host ran as the runner's unprivileged uid


def test_a_production_runs_error_is_redacted(files_auto: Automation, root: Path) -> None:
    """An attacker's sweep: a run's error quotes its step's target with the real run-time value (a file
    named after a person), and it went to the metrics topic as it was."""
    case = files_auto.test_cases[0]
    params = dict(case.inputs)
    key = next(k for k, v in params.items() if str(v).startswith("inbox/"))
    params[key] = "inbox/ana.lopez@example.org-salary.txt"  # not there: the read fails, naming it
    world = root / "w"
    world.mkdir()
    world.chmod(0o777)  # the run host's own uid works in it
    ex = Executor(RunnerConfig(root=world, retries=0))
    try:
        m = ex.execute(request(files_auto, params, run_id="pii"), files_auto, "verified").metric
    finally:
        ex.close()
    assert m is not None and not m.success and m.error
    assert "ana.lopez@example.org" not in m.error and "<email:" in m.error


def test_closed_run_hosts_leave_no_open_pipes(files_auto: Automation, root: Path) -> None:
    """A host the executor replaces or closes leaves no pipe to the garbage collector (each was a
    ResourceWarning in the run log of `rote run`, counted among the run's warnings)."""
    import gc
    import threading
    import time
    import warnings

    case = files_auto.test_cases[0]
    _world(case, root)
    readers = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        ex = Executor(RunnerConfig(root=root, retries=0, max_hosts=1))
        try:
            run = request(files_auto, dict(case.inputs), run_id="pipes")
            m = ex.execute(run, files_auto, "verified").metric
            assert m is not None and m.outcome == "succeeded", m
        finally:
            ex.close()
        deadline = time.monotonic() + 10  # the host's pipe readers end at end of file
        while set(threading.enumerate()) - readers and time.monotonic() < deadline:
            time.sleep(0.05)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_host_limits_and_audit_hook(root: Path) -> None:
    """The host's own guards, in a fresh interpreter: rlimits cannot be raised back, and a connection
    off the allow-list or a new process is refused by the audit hook."""
    code = """
import resource, socket, subprocess, sys
from rote.runner.host import install_audit_hook, set_limits
set_limits(cpu=50, nofile=64, fsize=1 << 20, nproc=None)
assert resource.getrlimit(resource.RLIMIT_NOFILE) == (64, 64)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    print("raised")
except ValueError:
    pass
install_audit_hook({("127.0.0.1", 9)})
for target in (("127.0.0.1", 1), ("192.0.2.1", 80)):
    s = socket.socket()
    try:
        s.connect(target)
    except PermissionError as e:
        print("blocked", target[0], target[1])
    except OSError:
        print("reached", target)
try:
    subprocess.run(["true"])
except PermissionError:
    print("no processes")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["blocked 127.0.0.1 1", "blocked 192.0.2.1 80", "no processes"]


@pytest.fixture
def workbook_root(root: Path) -> Path:
    write_workbook(students_from_log(), root / WORKBOOK_NAME)
    (root / WORKBOOK_NAME).chmod(0o644)
    return root


@NEEDS_CHROMIUM
def test_form_runs_in_chromium_and_fails_with_the_step_when_the_page_changes(
    form_auto: Automation, workbook_root: Path
) -> None:
    students = students_from_log()
    params = {**FLAGS, "row": "7"}
    with FormServer(students) as form:
        ex = Executor(RunnerConfig(root=workbook_root, sites=form.site_mapping(), step_timeout=3, retries=0))
        try:
            ok = ex.execute(request(form_auto, params, run_id="ok"), form_auto, "verified").metric
        finally:
            ex.close()
        assert ok is not None and ok.outcome == "succeeded", ok
        assert len(ok.steps) == len(form_auto.plan) and ok.attempts == 1
        assert form.snapshot()["correct"] == 1 and form.snapshot()["incorrect"] == []
    # a redesigned page: the name field is now "FullName"
    with FormServer(students, rename={"SingleLine": "FullName"}) as form:
        ex = Executor(
            RunnerConfig(
                root=workbook_root, sites=form.site_mapping(), step_timeout=2, retries=1, retry_backoff=0.1
            )
        )
        try:
            bad = ex.execute(request(form_auto, params, run_id="bad"), form_auto, "verified").metric
        finally:
            ex.close()
    assert bad is not None and bad.outcome == "failed" and not bad.success
    first_web = next(st["i"] for st in form_auto.plan if "field" in st["target"])
    assert bad.failed_step == first_web
    assert bad.error is not None and f"step {first_web} (" in bad.error and "field='SingleLine'" in bad.error
    assert bad.attempts == 2  # nothing was submitted: retried once by policy, failed again


@NEEDS_CHROMIUM
def test_a_run_past_its_timeout_is_killed_and_names_the_step(
    form_auto: Automation, workbook_root: Path
) -> None:
    students = students_from_log()
    with FormServer(students, slow_after=0, slow_seconds=30) as form:  # the page never comes in time
        ex = Executor(
            RunnerConfig(
                root=workbook_root, sites=form.site_mapping(), step_timeout=60, run_timeout=8, retries=0
            )
        )
        try:
            m = ex.execute(
                request(form_auto, {**FLAGS, "row": "3", "do_clickcheckbox_decisionbox": "false"}),
                form_auto,
                "verified",
            ).metric
        finally:
            ex.close()
    assert m is not None and m.outcome == "timeout" and "exceeded 8 s at step" in (m.error or "")
    assert m.failed_step is not None and m.duration_seconds < 30
