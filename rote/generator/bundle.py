"""What the sandbox runs for one test case, and how its recording is judged afterwards.

`build_test_bundle` lays out a self-contained workspace: the generated program, the action-API runtime
(stdlib only), the parameters, and the simulated world (spreadsheet cells as JSON, files as real files
under `world/`). The program records every action it performs. `verify` runs *outside* the jail and
compares that recording with the user's observed actions, so a payload can't declare itself passed: at
worst it can forge a recording of exactly the right actions, which is what the test demands anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from rote.errors import RoteError
from rote.generator import codegen, plan
from rote.generator.runtime import ActionError, relative_parts
from rote.streams.schemas import Automation, StepTiming, TestCase

RUNNABLE_LANGUAGES: tuple[str, ...] = ("python", "bash")
RECORDINGS = {"python": "recording.jsonl", "bash": "recording.nul"}
MAX_MISMATCHES = 50


class UnsupportedLanguage(RoteError):
    """This automation cannot be run in this language here (AppleScript needs macOS; or the source has
    steps the language cannot express). The runner reports verdict "unsupported" with this reason."""


@dataclass(frozen=True, kw_only=True)
class TestBundle:
    __test__ = False  # not a pytest class

    language: Literal["python", "bash", "applescript"]
    files: dict[str, bytes]
    argv: list[str]
    collect: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SpecVerdict:
    passed: bool
    mismatches: list[str]
    steps: list[StepTiming]
    actions: int = 0
    error: str | None = None
    recorded: list[dict[str, Any]] = field(default_factory=list)


def runtime_source() -> bytes:
    return (resources.files("rote.generator") / "runtime.py").read_bytes()


def runnable_languages(automation: Automation) -> list[str]:
    """Languages whose source is complete and can run in the sandbox's Linux jail."""
    return [
        lang
        for lang in RUNNABLE_LANGUAGES
        if lang in automation.sources
        and automation.sources[lang].supported
        and automation.sources[lang].static_check == "ok"
    ]


def _nul_params(inputs: dict[str, str]) -> bytes:
    out = bytearray()
    for k, v in inputs.items():
        if "\x00" in k or "\x00" in v:
            raise UnsupportedLanguage("a parameter value holds NUL, which Bash cannot carry")
        out += k.encode() + b"\0" + v.encode("utf-8", "surrogateescape") + b"\0"
    return bytes(out)


def _world_files(case: TestCase) -> dict[str, bytes]:
    files: dict[str, bytes] = {"world/.rote-world": b""}
    for path, content in dict(case.environment.get("files", {})).items():
        try:
            rel = "/".join(relative_parts(str(path)))
        except ActionError:
            continue
        files["world/" + rel] = str(content).encode("utf-8", "surrogateescape")
    return files


def build_test_bundle(automation: Automation, case: TestCase, language: str) -> TestBundle:
    src = automation.sources.get(language)
    if language not in RUNNABLE_LANGUAGES:
        raise UnsupportedLanguage(f"{language} cannot run in the Linux sandbox (no osascript)")
    if src is None:
        raise UnsupportedLanguage(f"no {language} source was generated")
    if not src.supported:
        raise UnsupportedLanguage(f"{language} cannot express: " + "; ".join(src.unsupported_steps)[:400])
    if src.static_check != "ok":
        raise UnsupportedLanguage(f"{language} source fails its static check: {src.static_check}")
    files = _world_files(case)
    record = RECORDINGS[language]
    if language == "python":
        files["automation.py"] = src.source.encode()
        files["rote_runtime.py"] = runtime_source()
        files["params.json"] = json.dumps(case.inputs, ensure_ascii=True).encode()
        files["world.json"] = json.dumps(case.environment, ensure_ascii=True).encode()
        argv = [
            "python3",
            "automation.py",
            "--driver",
            "sim",
            "--params",
            "params.json",
            "--world",
            "world.json",
        ]
    else:
        files["automation.sh"] = src.source.encode("utf-8", "surrogateescape")
        files["params.nul"] = _nul_params(case.inputs)
        argv = ["bash", "automation.sh", "--driver", "sim", "--params", "params.nul"]
    argv += ["--root", "world", "--record", record]
    return TestBundle(language=language, files=files, argv=argv, collect=(record,))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------------


def _parse_python(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    actions: list[dict[str, Any]] = []
    error = None
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        row = json.loads(raw)
        if not isinstance(row, dict):
            raise ValueError("recording line is not an object")
        if "error" in row:
            error = str(row["error"])
            continue
        actions.append(
            {
                "step": int(row["step"]),
                "op": str(row["op"]),
                "target": {str(k): str(v) for k, v in dict(row.get("target") or {}).items()},
                "value": None if row.get("value") is None else str(row["value"]),
                "duration_seconds": max(0.0, float(row.get("duration_seconds", 0.0))),
            }
        )
    return actions, error


def _parse_bash(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    actions: list[dict[str, Any]] = []
    error = None
    i = 0
    while i < len(fields):
        tag = fields[i]
        if tag == "E":
            error = fields[i + 1]
            i += 2
            continue
        if tag != "A":
            raise ValueError(f"bad record tag {tag[:10]!r}")
        step, op, dur, nkeys = int(fields[i + 1]), fields[i + 2], int(fields[i + 3]), int(fields[i + 4])
        i += 5
        target = {}
        for _ in range(nkeys):
            target[fields[i]] = fields[i + 1]
            i += 2
        has_value = fields[i] == "1"
        value = fields[i + 1] if has_value else None
        i += 2 if has_value else 1
        actions.append(
            {"step": step, "op": op, "target": target, "value": value, "duration_seconds": max(0, dur) / 1e6}
        )
    return actions, error


def _short(v: str | None) -> str:
    if v is None:
        return "None"
    return repr(v) if len(v) <= 60 else repr(v[:57]) + "…"


def verify(
    automation: Automation, case: TestCase, collected: dict[str, bytes], *, exit_code: int | None
) -> SpecVerdict:
    """Judge a run from what it recorded: the same actions, on the same targets, with the same values,
    in the same order as the user did in this held-out instance."""
    mismatches: list[str] = []
    rec_name = next((name for lang, name in RECORDINGS.items() if name in collected), None)
    actions: list[dict[str, Any]] = []
    error: str | None = None
    if rec_name is None:
        mismatches.append("no recording came back")
    else:
        try:
            parse = _parse_python if rec_name == RECORDINGS["python"] else _parse_bash
            actions, error = parse(collected[rec_name])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            mismatches.append(f"recording unreadable: {exc}")
    if error is not None:
        mismatches.append(f"automation stopped: {error[:300]}")
    if exit_code is not None and exit_code != 0:
        mismatches.append(f"exit code {exit_code}")
    for k in range(max(len(case.expected), len(actions))):
        if len(mismatches) >= MAX_MISMATCHES:
            break
        if k >= len(actions):
            exp = case.expected[k]
            mismatches.append(
                f"action {k}: expected {exp.action_type} {_short(exp.value)}, but the run stopped"
            )
            break
        got = actions[k]
        if k >= len(case.expected):
            mismatches.append(f"action {k}: unexpected extra {got['op']} {_short(got['value'])}")
            continue
        exp = case.expected[k]
        want_op = plan.op_for(exp.action_type)
        if got["op"] != want_op:
            mismatches.append(f"action {k}: expected {exp.action_type} ({want_op}), got {got['op']}")
            continue
        for key in plan.TARGET_KEYS:
            want = getattr(exp.target, key)
            if want is not None and got["target"].get(key) != want:
                mismatches.append(
                    f"action {k} {exp.action_type}: {key} {_short(got['target'].get(key))} != {_short(want)}"
                )
        if exp.value is not None and got["value"] != exp.value:
            mismatches.append(
                f"action {k} {exp.action_type}: value {_short(got['value'])} != {_short(exp.value)}"
            )
    labels = {int(st["i"]): str(st["label"]) for st in automation.plan}
    steps = [
        StepTiming(
            step=a["step"],
            label=labels.get(a["step"], a["op"])[:512] or a["op"],
            duration_seconds=a["duration_seconds"],
        )
        for a in actions
        if a["step"] >= 0
    ]
    return SpecVerdict(
        passed=not mismatches,
        mismatches=mismatches[:MAX_MISMATCHES],
        steps=steps,
        actions=len(actions),
        error=error,
        recorded=actions,
    )


def file_name(language: str) -> str:
    return codegen.FILE_NAMES[language]
