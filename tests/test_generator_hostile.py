"""Hostile values: every generated script stays valid and treats every value as data.

Each value of the corpus enters the generated programs three ways: as a constant baked into the source,
as a run-time parameter, and as data read from the world (a cell, a file) that flows through
transformations into later actions. The Python and Bash programs are compiled (`py_compile`, `bash -n`)
and RUN against the simulator; the recording and the files written must hold exactly the value, and the
marker file the payloads try to create must not exist. AppleScript is checked by our parser, which also
proves that the literal denotes exactly the value and that the program's token structure does not depend
on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rote.generator import applescript, codegen, exprs
from rote.generator.bundle import UnsupportedLanguage, build_test_bundle, verify
from rote.generator.quoting import QuotingError, as_string, py_literal, sh_quote
from rote.generator.replay import run_local
from rote.streams.schemas import Automation, ExpectedAction, Target
from rote.streams.schemas import TestCase as Case

MARK = "PWNED"


def corpus(pwned: Path) -> list[str]:
    p = str(pwned)
    return [
        "'",
        '"',
        "'; rm -rf / #",
        '"; rm -rf / #',
        f"$(touch {p})",
        f"`touch {p}`",
        f"; touch {p}",
        f"&& touch {p} ||",
        f"| touch {p}",
        f"x\ntouch {p}\n",
        f"a\r\ntouch {p}\r\n",
        "a\x00b",
        "trailing newline\n\n",
        "\ttabs\t",
        "-n",
        "--help",
        "*",
        "~",
        "$HOME ${HOME} $((1+1)) ${P[row]}",
        "$'\\n'",
        "\\",
        "\\'",
        '\\"',
        "'''",
        '"""',
        "\\x00 \\n \\u0041",
        f"__import__('os').system('touch {p}')",
        f"'+__import__('os').system('touch {p}')+'",
        f'"]); import os; os.system("touch {p}") #',
        f'" & (do shell script "touch {p}") & "',
        "(* not a comment *) -- nor this ¬",
        "«event sysoexec»",
        "{{ 7*7 }}",
        "{% for x in range(3) %}{{ x }}{% endfor %}",
        "{# comment #}<#jinja# #jinja#>",
        "%s %(x)s {0}",
        "名前 ñ é 🙂 Ω",
        "\u202eevil\u202c \u200b zero width",
        "line\u2028separator\u2029para",
        "\x1b[31mred\x1b[0m \x07 \x7f",
        "A" * 50_000,
        "",
        " ",
    ]


def _step(
    i: int, op: str, target: dict[str, Any], value: dict[str, Any] | None, *, binds: bool = False
) -> dict[str, Any]:
    return {
        "i": i,
        "label": f"{op} {i}",
        "action_type": op,
        "app": "test",
        "op": op,
        "target": {k: exprs.const(v) if isinstance(v, str) else v for k, v in target.items()},
        "value": value,
        "guard": None,
        "binds": binds,
    }


def _automation(
    steps: list[dict[str, Any]], params: list[str], cases: list[Case], languages: tuple[str, ...]
) -> Automation:
    meta = codegen.RenderMeta(
        name="hostile",
        automation_id="a-hostile",
        version=1,
        candidate_id="c",
        candidate_version=1,
        generator_version="test",
    )
    return Automation(
        automation_id="a-hostile",
        version=1,
        candidate_id="c",
        candidate_version=1,
        user_id="u",
        name="hostile",
        generator_version="test",
        template_version=codegen.template_version(),
        state="generated",
        plan=steps,
        parameters=params,
        sources={lang: codegen.render(lang, steps, params, meta) for lang in languages},
        test_cases=cases,
        created_at=datetime.now(UTC),
    )


def _safe_name(v: str) -> str:
    """The value as a file name, unless it cannot be one (both runtimes read \\ as a separator, since
    logged paths are often Windows paths)."""
    ok = v.strip() and not set(v) & {"/", "\\", "\x00"} and v not in (".", "..") and len(v.encode()) < 200
    return v if ok else "plain-name"


# --------------------------------------------------------------------------------------------------
# quoting functions on their own
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["python", "bash", "applescript"])
def test_literals_round_trip(lang: str, tmp_path: Path) -> None:
    for v in corpus(tmp_path / MARK):
        if lang == "python":
            import ast

            assert ast.literal_eval(py_literal(v)) == v
            assert "\n" not in py_literal(v)
        elif lang == "bash":
            if "\x00" in v:
                with pytest.raises(QuotingError):
                    sh_quote(v)
                continue
            if len(v) > 10_000:
                continue  # checked below through a file; argv has a per-argument limit
            out = subprocess.run(
                ["bash", "-c", f"printf '%s' {sh_quote(v)}"], capture_output=True, check=True
            )
            assert out.stdout.decode() == v
        else:
            lit = as_string(v)
            assert applescript.check(f"set x to {lit}\n") == []
            assert applescript.string_value(lit) == v
            assert all(ch.isprintable() or ch == " " for ch in lit)
    assert not (tmp_path / MARK).exists()


# --------------------------------------------------------------------------------------------------
# Python: constants, parameters and world data, compiled and run
# --------------------------------------------------------------------------------------------------


def test_python_hostile_values_are_data(tmp_path: Path) -> None:
    pwned = tmp_path / MARK
    url = "http://forms.example/new"
    for n, v in enumerate(corpus(pwned)):
        derived = exprs.concat([exprs.split(exprs.step(2), ";", 0), exprs.const("|"), exprs.step(2)])
        steps = [
            _step(0, "fill_field", {"field": "f1", "url": url}, exprs.const(v)),
            _step(1, "fill_field", {"field": "f2", "url": url}, exprs.param("v")),
            _step(2, "copy_cell", {"workbook": "W", "sheet": "S", "cell": "A1"}, None, binds=True),
            _step(3, "fill_field", {"field": "f3", "url": url}, derived),
            _step(4, "write_file", {"file": "out/c.txt"}, exprs.const(v)),
            _step(5, "write_file", {"file": "out/p.txt"}, exprs.param("v")),
        ]
        d = v.split(";")[0] + "|" + v
        case = Case(
            case_id=f"h{n}",
            inputs={"v": v},
            environment={"sheets": {"W": {"S": {"A1": v}}}},
            expected=[
                ExpectedAction(action_type="fill_field", target=Target(field="f1"), value=v),
                ExpectedAction(action_type="fill_field", target=Target(field="f2"), value=v),
                ExpectedAction(action_type="copy_cell", target=Target(cell="A1"), value=v),
                ExpectedAction(action_type="fill_field", target=Target(field="f3"), value=d),
                ExpectedAction(action_type="write_file", target=Target(file="out/c.txt"), value=v),
                ExpectedAction(action_type="write_file", target=Target(file="out/p.txt"), value=v),
            ],
        )
        auto = _automation(steps, ["v"], [case], ("python",))
        src = auto.sources["python"]
        assert src.supported and src.static_check == "ok", (n, src.static_check)
        script = tmp_path / f"compile{n}.py"
        script.write_text(src.source, encoding="utf-8")
        subprocess.run([sys.executable, "-m", "py_compile", str(script)], check=True, capture_output=True)
        wd = tmp_path / f"run{n}"
        run = run_local(build_test_bundle(auto, case, "python"), workdir=wd)
        verdict = verify(auto, case, run.collected, exit_code=run.exit_code)
        assert verdict.passed, (n, verdict.mismatches, run.stderr[-500:])
        for name in ("c.txt", "p.txt"):
            assert (wd / "world" / "out" / name).read_bytes().decode("utf-8") == v
    assert not pwned.exists()


# --------------------------------------------------------------------------------------------------
# Bash: file routines with hostile contents and names, checked by bash -n and run
# --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_hostile_values_are_data(tmp_path: Path) -> None:
    pwned = tmp_path / MARK
    ran = 0
    for n, v in enumerate(corpus(pwned)):
        name = _safe_name(v)
        steps = [
            _step(0, "write_file", {"file": "out/c.txt"}, exprs.const(v)),
            _step(1, "write_file", {"file": "out/p.txt"}, exprs.param("v")),
            _step(2, "read_file", {"file": "in/h.txt"}, None, binds=True),
            _step(
                3,
                "write_file",
                {"file": "out/d.txt"},
                exprs.concat([exprs.split(exprs.step(2), ";", -1), exprs.const("|")]),
            ),
            _step(
                4, "copy_file", {"file": "in/h.txt"}, exprs.concat([exprs.const("out/"), exprs.param("name")])
            ),
        ]
        case = Case(
            case_id=f"b{n}",
            inputs={"v": v, "name": name},
            environment={"files": {"in/h.txt": v}},
            expected=[
                ExpectedAction(action_type="write_file", target=Target(file="out/c.txt"), value=v),
                ExpectedAction(action_type="write_file", target=Target(file="out/p.txt"), value=v),
                ExpectedAction(action_type="read_file", target=Target(file="in/h.txt"), value=v),
                ExpectedAction(
                    action_type="write_file", target=Target(file="out/d.txt"), value=v.split(";")[-1] + "|"
                ),
                ExpectedAction(action_type="copy_file", target=Target(file="in/h.txt"), value="out/" + name),
            ],
        )
        auto = _automation(steps, ["v", "name"], [case], ("bash",))
        src = auto.sources["bash"]
        assert src.static_check == "ok", (n, src.static_check)
        if "\x00" in v:
            # Bash strings cannot hold NUL: the generator says so instead of emitting a truncated value.
            assert not src.supported and any("NUL" in s for s in src.unsupported_steps)
            with pytest.raises(UnsupportedLanguage):
                build_test_bundle(auto, case, "bash")
            continue
        assert src.supported, (n, src.unsupported_steps)
        script = tmp_path / f"check{n}.sh"
        script.write_text(src.source, encoding="utf-8")
        subprocess.run(["bash", "-n", str(script)], check=True, capture_output=True)
        wd = tmp_path / f"run{n}"
        run = run_local(build_test_bundle(auto, case, "bash"), workdir=wd)
        verdict = verify(auto, case, run.collected, exit_code=run.exit_code)
        assert verdict.passed, (n, verdict.mismatches, run.stderr[-500:])
        out = wd / "world" / "out"
        assert (out / "c.txt").read_bytes().decode("utf-8") == v
        assert (out / "p.txt").read_bytes().decode("utf-8") == v
        assert (out / "d.txt").read_bytes().decode("utf-8") == v.split(";")[-1] + "|"
        assert (out / name).read_bytes().decode("utf-8") == v
        ran += 1
    assert ran == len(corpus(pwned)) - 1
    assert not pwned.exists()


# --------------------------------------------------------------------------------------------------
# AppleScript: parsed by our checker; the value is exactly the literal; structure independent of it
# --------------------------------------------------------------------------------------------------


def _collapse_strings(source: str) -> list[tuple[str, str]]:
    toks = [(t.kind, t.text) for t in applescript.tokenize(source)]
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(toks):
        if toks[i][0] == "str":
            out.append(("S", ""))
            i += 1
        elif [t[1] for t in toks[i : i + 3]] == ["(", "character", "id"] and i + 4 < len(toks):
            out.append(("S", ""))
            i += 5
        else:
            out.append(toks[i])
            i += 1
    changed = True
    while changed:
        changed = False
        for k in range(len(out) - 2):
            if out[k] == ("S", "") and out[k + 1] == ("op", "&") and out[k + 2] == ("S", ""):
                out[k : k + 3] = [("S", "")]
                changed = True
                break
            if out[k] == ("op", "(") and out[k + 1] == ("S", "") and out[k + 2] == ("op", ")"):
                out[k : k + 3] = [("S", "")]
                changed = True
                break
    return out


def test_applescript_hostile_values_are_data(tmp_path: Path) -> None:
    url = "http://forms.example/new"

    def script(v: str) -> str:
        steps = [
            _step(0, "fill_field", {"field": "f1", "url": url}, exprs.const(v)),
            _step(1, "fill_field", {"field": "f2", "url": url}, exprs.param("v")),
            _step(2, "copy_cell", {"workbook": "W", "sheet": "S", "cell": "A1"}, None, binds=True),
            _step(
                3,
                "fill_field",
                {"field": "f3", "url": url},
                exprs.concat([exprs.split(exprs.step(2), ";", 0), exprs.const(v)]),
            ),
            _step(4, "write_file", {"file": "/tmp/x.txt"}, exprs.const(v)),
        ]
        src = _automation(steps, ["v"], [], ("applescript",)).sources["applescript"]
        assert src.supported and src.static_check == "ok", src.static_check
        return src.source

    baseline = _collapse_strings(script("benign"))
    for v in corpus(tmp_path / MARK):
        source = script(v)
        assert applescript.check(source) == []
        assert _collapse_strings(source) == baseline, repr(v[:40])
        lit = as_string(v)
        assert f"my fillField({as_string(url)}, {as_string('f1')}, {lit})" in source
        assert applescript.string_value(lit) == v


def test_applescript_checker_catches_naive_quoting_and_bad_blocks() -> None:
    naive = 'set x to "' + 'say "hi"' + '"\n'
    assert applescript.check(naive)
    assert applescript.check('set x to "unterminated\n')
    assert applescript.check('set x to "bad \\q escape"\n')
    assert applescript.check('tell application "Finder"\n  activate\nend if\n')
    assert applescript.check("on run\n  if true then\n    beep\nend run\n")
    assert applescript.check("set x to (1 + 2\n")
    assert applescript.check('set x to "a" "b"\n')
    assert applescript.check('set x to "a" &\n')
    assert applescript.check("(* never closed\n")
    good = (
        'on run argv\n\ttell application "Finder" to activate\n'
        "\tif x then\n\t\tbeep\n\telse\n\t\tbeep 2\n\tend if\nend run\n"
    )
    assert applescript.check(good) == []


# --------------------------------------------------------------------------------------------------
# the marker detection itself works: unquoted interpolation WOULD run the payload
# --------------------------------------------------------------------------------------------------


def test_marker_detects_a_naive_generator(tmp_path: Path) -> None:
    pwned = tmp_path / MARK
    payload = f"$(touch {pwned})"
    subprocess.run(["bash", "-c", f'x="{payload}"; : "$x"'], check=True)
    assert pwned.exists()
    pwned.unlink()
    py = f"__import__('os').system('touch {pwned}')"
    subprocess.run([sys.executable, "-c", f"value = {py}"], check=True)
    assert pwned.exists()


def test_a_recorded_name_cannot_declare_the_source_encoding(tmp_path: Path) -> None:
    """An attacker's sweep: a field recorded as `coding:unicode_escape` put an encoding declaration into
    the name comment on line 2; Python honours it when it runs the *file*, so a `\\n` in a later comment
    became a line of code that no check on the string saw. Line 2 is now a fixed UTF-8 declaration, and
    the static check compiles the bytes as the interpreter will."""
    pwned = tmp_path / MARK
    payload = f"editField:Name\\n__import__('pathlib').Path({str(pwned)!r}).write_text('x')\\n#"
    meta = codegen.RenderMeta(
        name=f"editField:coding:unicode_escape … {payload}",
        automation_id="a1",
        version=1,
        candidate_id="c1",
        candidate_version=1,
        generator_version="1.0.0",
    )
    src = codegen.render("python", [], [], meta)
    assert src.static_check == "ok" and src.source.splitlines()[1] == "# -*- coding: utf-8 -*-"
    script = tmp_path / "automation.py"
    script.write_text(src.source, encoding="utf-8")
    subprocess.run([sys.executable, str(script), "--help"], capture_output=True, timeout=60, check=False)
    assert not pwned.exists()
    cookie = f"#!/usr/bin/env python3\n# coding:unicode_escape\nx = 1  # {payload}\n"
    assert "encoding declaration" in codegen.static_check("python", cookie)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_both_runtimes_refuse_a_file_that_is_a_symbolic_link(tmp_path: Path) -> None:
    """An attacker's sweep: a link planted as the file itself (not a folder on the way) was followed out
    of the root by read_file, write_file and copy_file; Bash's `rote_path` did no link check at all."""
    from rote.generator.runtime import ActionError, Files

    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "plant.txt").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    steps = [_step(0, "read_file", {"file": exprs.param("f")}, None, binds=True)]
    auto = _automation(steps, ["f"], [], ("bash",))
    script = tmp_path / "a.sh"
    script.write_text(auto.sources["bash"].source, encoding="utf-8")
    for bad in ("plant.txt", "dirlink/outside.txt"):
        with pytest.raises(ActionError, match=r"symbolic link|leaves the automation's root"):
            Files(root).perform("read_file", {"file": bad}, None)
        proc = subprocess.run(
            ["bash", str(script), "--driver", "prod", "--root", str(root), "--set", f"f={bad}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 3 and "symbolic link" in proc.stderr, (bad, proc.stderr)
    (root / "sub" / "ok.txt").write_text("fine")
    proc = subprocess.run(
        ["bash", str(script), "--driver", "prod", "--root", str(root), "--set", "f=sub/ok.txt"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_applescript_file_and_web_handlers_check_paths_and_urls_at_run_time() -> None:
    """An attacker's sweep: the AppleScript handlers took recorded paths and URLs as they were, so
    `writeFile("/Users/victim/Library/LaunchAgents/…")`, `openFile("../../Applications/…")`,
    `openFile("-aTerminal")` and `openURL("javascript:…")` passed the static check. AppleScript cannot run
    here, so this checks the structure: every file handler maps its paths through `rootPath` (the working
    folder, no `..`, no symbolic link, a leading / dropped, so `open` never sees an option) and every page
    is opened through `webURL` (http and https only), as the Python and Bash runtimes check at run time."""
    meta = codegen.RenderMeta(
        name="n", automation_id="a", version=1, candidate_id="c", candidate_version=1, generator_version="t"
    )
    src = codegen.render("applescript", [], [], meta).source
    assert applescript.check(src) == []
    bodies: dict[str, str] = {}
    for block in src.split("\non ")[1:]:
        name = block.split("(", 1)[0]
        bodies[name] = block.split(f"\nend {name}", 1)[0]
    paths = {"openFile": 1, "readFile": 1, "writeFile": 1, "copyFile": 2, "moveFile": 2, "makeDir": 1}
    paths["deleteFile"] = 1
    for handler, n in paths.items():
        assert bodies[handler].count("my rootPath(") == n, handler
    assert "my webURL(pageURL)" in bodies["openURL"] and "my webURL(pageURL)" in bodies["runJavaScript"]
    root = bodies["rootPath"]
    assert '"/../"' in root and "[ -L " in root and 'starts with "/"' in root
    assert 'starts with "https://" or pageURL starts with "http://"' in bodies["webURL"]


def test_a_long_candidate_with_separator_rich_values_costs_bounded_work() -> None:
    """A hostile candidate (120 input steps, every value holding every separator, 60 kB) made the
    generator weigh every earlier step's ~10,000 nested pieces at every step: minutes, then hours as it
    grew, while every other candidate waited. Past the plan's work budget only the nearest steps are split
    (once); the pieces weighed stay within the budget plus a few per source and step, and the automation is
    still generated. Real routines never reach the budget (`test_generator_leno` keeps their plans)."""
    from datetime import UTC, datetime, timedelta

    import rote.generator.synthesis as synthesis
    from rote.generator import generate
    from rote.streams.schemas import Candidate

    n_steps, n_inst = 120, 8
    t0 = datetime(2026, 5, 1, tzinfo=UTC)

    def val(s: int, k: int) -> str:
        return f"a{k}, b{s},c d/e-f.g@h:i;j|k_l\tm\nn{k}"

    steps = [
        {
            "label": f"editField:F{s}",
            "app": "Chrome",
            "action_type": "editField",
            "target": {"field": f"F{s}"},
        }
        for s in range(n_steps)
    ]
    instances = [
        {
            "event_ids": [f"e{k}-{s}" for s in range(n_steps)],
            "values": [val(s, k) for s in range(n_steps)],
            "start": (t0 + timedelta(hours=k)).isoformat(),
            "end": (t0 + timedelta(hours=k, seconds=60)).isoformat(),
        }
        for k in range(n_inst)
    ]
    cand = Candidate.model_validate(
        {
            "candidate_id": "dos",
            "version": 1,
            "user_id": "u1",
            "routine": [s["label"] for s in steps],
            "steps": steps,
            "occurrences": n_inst,
            "instances": instances,
            "score": 90,
            "breakdown": dict.fromkeys(
                ("frequency", "time_cost", "regularity", "determinism", "variability", "length"), 1
            ),
            "mean_duration_seconds": 60,
            "observed_hours_per_year": 10,
            "estimated_hours_saved_per_year": 9,
            "rank": 1,
            "priority": "high",
            "first_seen": t0,
            "last_seen": t0,
            "updated_at": t0,
        }
    )
    caches: list[synthesis.AtomCache] = []
    real_init = synthesis.AtomCache.__init__

    def counting_init(self: synthesis.AtomCache) -> None:
        real_init(self)
        caches.append(self)

    synthesis.AtomCache.__init__ = counting_init  # type: ignore[method-assign]
    try:
        automation = generate(cand)
    finally:
        synthesis.AtomCache.__init__ = real_init  # type: ignore[method-assign]
    assert automation.sources["python"].static_check == "ok"
    cfg = synthesis.SynthesisConfig()
    # past the budget a step weighs 4 pieces per source and ~250 per split source (this one: 120 steps)
    bound = cfg.plan_work_budget + 20_000 + n_steps * (4 * n_steps + cfg.split_sources * 300)
    assert caches and max(c.work for c in caches) <= bound, max(c.work for c in caches)
