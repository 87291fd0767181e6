"""Render a plan to Python, Bash and AppleScript through sandboxed Jinja2 templates.

The templates (in `templates/`) hold the program structure; values only ever reach them through the
quoting filters (`py`, `sh`, `as_`, `comment`) or the expression renderers built on them, and the
environment is Jinja2's SandboxedEnvironment with StrictUndefined, so a template bug is an error at
generation time rather than a silently empty value, and template code cannot reach Python internals.
A value that *contains* template syntax ("{{ 7*7 }}") is harmless: rendering output is never rendered
again.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from rote.generator import applescript, exprs
from rote.generator.exprs import Expr
from rote.generator.plan import UNKNOWN_OP
from rote.generator.quoting import QuotingError, as_string, comment_text, py_literal, sh_quote
from rote.streams.schemas import GeneratedSource

LANGUAGES: tuple[str, ...] = ("python", "bash", "applescript")
TEMPLATE_FILES = {"python": "python.py.j2", "bash": "bash.sh.j2", "applescript": "applescript.applescript.j2"}
FILE_NAMES = {"python": "automation.py", "bash": "automation.sh", "applescript": "automation.applescript"}

#: Bash is for file and OS work: GUI actions (cells, fields, clicks, clipboard) have no honest Bash form.
BASH_OPS = {
    "make_dir",
    "write_file",
    "read_file",
    "copy_file",
    "move_file",
    "delete_file",
    "open_file",
    "open_url",
}
_BASH_VALUE_OPS = {"write_file", "copy_file", "move_file"}
_BASH_RESULT = {"read_file": '"$REPLY"'}

_AS_HANDLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "copy_cell": ("copyCell", ("workbook", "sheet", "cell")),
    "read_cell": ("readCell", ("workbook", "sheet", "cell")),
    "paste": ("pasteInto", ("url", "field")),
    "fill_field": ("fillField", ("url", "field", "=value")),
    "copy": ("copyValue", ("=value",)),
    "click": ("clickElement", ("url", "field|element", "title")),
    "open_url": ("openURL", ("url",)),
    "wait_for": ("waitFor", ("url",)),
    "open_file": ("openFile", ("file",)),
    "read_file": ("readFile", ("file",)),
    "write_file": ("writeFile", ("file", "=value")),
    "copy_file": ("copyFile", ("file", "=value")),
    "move_file": ("moveFile", ("file", "=value")),
    "make_dir": ("makeDir", ("file",)),
    "delete_file": ("deleteFile", ("file",)),
}


class Unexpressible(Exception):
    """A step or expression has no faithful form in a target language."""


def template_text(language: str) -> str:
    return (resources.files("rote.generator") / "templates" / TEMPLATE_FILES[language]).read_text(
        encoding="utf-8"
    )


def template_version() -> str:
    h = hashlib.sha256()
    for lang in LANGUAGES:
        h.update(template_text(lang).encode())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# expression renderers
# --------------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not (name.isidentifier() and name.isascii()):
        raise Unexpressible(f"bad parameter name {name!r}")
    return name


def py_expr(e: Expr) -> str:
    k = e["k"]
    if k == "const":
        return py_literal(e["s"])
    if k == "param":
        return f"p[{py_literal(_check_name(e['name']))}]"
    if k == "step":
        return f"v{int(e['i'])}"
    if k == "split":
        return f"rt.split({py_expr(e['of'])}, {py_literal(e['sep'])}, {int(e['idx'])})"
    if k in ("strip", "lower", "upper"):
        return f"rt.{k}({py_expr(e['of'])})"
    if k == "concat":
        return "rt.concat(" + ", ".join(py_expr(p) for p in e["parts"]) + ")"
    if k == "cellref":
        return f"rt.cellref({py_literal(e['col'])}, {py_expr(e['row'])}, {int(e['offset'])})"
    raise Unexpressible(f"expression kind {k!r}")


def as_expr(e: Expr) -> str:
    k = e["k"]
    if k == "const":
        return as_string(e["s"])
    if k == "param":
        return f"my getParam(argv, {as_string(_check_name(e['name']))})"
    if k == "step":
        return f"v{int(e['i'])}"
    if k == "split":
        return f"my splitText({as_expr(e['of'])}, {as_string(e['sep'])}, {int(e['idx'])})"
    if k == "strip":
        return f"my stripText({as_expr(e['of'])})"
    if k == "concat":
        return "(" + " & ".join(as_expr(p) for p in e["parts"]) + ")"
    if k == "cellref":
        return f"my cellRef({as_string(e['col'])}, {as_expr(e['row'])}, {int(e['offset'])})"
    raise Unexpressible(f"AppleScript has no Unicode-correct {k}()")


class _BashExpr:
    """Bash has no expressions over strings, so an expression becomes statements that leave pieces in
    temporaries; the result is a word made only of quoted literals and quoted expansions."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self.n = 0

    def _tmp(self, call: str) -> str:
        self.n += 1
        name = f"{self.prefix}_{self.n}"
        self.lines.append(f"{call}; {name}=$REPLY")
        return f'"${name}"'

    def word(self, e: Expr) -> str:
        k = e["k"]
        try:
            if k == "const":
                return sh_quote(e["s"])
            if k == "param":
                return f'"${{P[{_check_name(e["name"])}]}}"'
            if k == "step":
                return f'"$v{int(e["i"])}"'
            if k == "split":
                return self._tmp(f"rote_split {self.word(e['of'])} {sh_quote(e['sep'])} {int(e['idx'])}")
            if k in ("strip", "lower", "upper"):
                return self._tmp(f"rote_{k} {self.word(e['of'])}")
            if k == "concat":
                return "".join(self.word(p) for p in e["parts"])
            if k == "cellref":
                return self._tmp(
                    f"rote_cellref {sh_quote(e['col'])} {self.word(e['row'])} {int(e['offset'])}"
                )
        except QuotingError as exc:
            raise Unexpressible(str(exc)) from None
        raise Unexpressible(f"expression kind {k!r}")


# --------------------------------------------------------------------------------------------------
# per-language step preparation
# --------------------------------------------------------------------------------------------------


def _prep_python(st: dict[str, Any]) -> dict[str, Any]:
    if st["op"] not in _AS_HANDLERS:
        raise Unexpressible(f"action type {st['action_type']!r} has no action-API operation")
    for key in st["target"]:
        _check_name(key)
    return {}


def _prep_bash(st: dict[str, Any]) -> dict[str, Any]:
    op = st["op"]
    if op == UNKNOWN_OP:  # not "unknown is an application action" (a new user's reason read so)
        raise Unexpressible(f"action type {st['action_type']!r} has no action-API operation")
    if op not in BASH_OPS:
        raise Unexpressible(f"{op} is an application action; Bash only does file and OS operations")
    key = "url" if op == "open_url" else "file"
    if key not in st["target"]:
        raise Unexpressible(f"{op} without a {key} target")
    be = _BashExpr(f"t{st['i']}")
    words = [be.word(st["target"][key])]
    if op in _BASH_VALUE_OPS:
        if st["value"] is None:
            raise Unexpressible(f"{op} without a value")
        words.append(be.word(st["value"]))
    result = _BASH_RESULT.get(op, words[-1])
    return {"pre": be.lines, "words": words, "result": result}


def _prep_applescript(st: dict[str, Any]) -> dict[str, Any]:
    if st["op"] not in _AS_HANDLERS:
        raise Unexpressible(f"action type {st['action_type']!r} has no action-API operation")
    handler, arg_keys = _AS_HANDLERS[st["op"]]
    args: list[str] = []
    for spec in arg_keys:
        if spec == "=value":
            if st["value"] is None:
                raise Unexpressible(f"{st['op']} without a value")
            args.append(as_expr(st["value"]))
            continue
        e = next((st["target"][k] for k in spec.split("|") if k in st["target"]), None)
        args.append(as_expr(e) if e is not None else '""')
    return {"handler": handler, "args": args}


_PREP: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "python": _prep_python,
    "bash": _prep_bash,
    "applescript": _prep_applescript,
}


# --------------------------------------------------------------------------------------------------
# rendering and static checks
# --------------------------------------------------------------------------------------------------


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Bash's ${#array[@]} would open a Jinja comment; templates have no comments, so move the marker away.
        comment_start_string="<#jinja#",
        comment_end_string="#jinja#>",
    )
    env.filters.update(
        py=py_literal,
        sh=sh_quote,
        as_=as_string,
        comment=comment_text,
        pyexpr=py_expr,
        describe=exprs.describe,
    )
    return env


_ENV = _environment()


@functools.lru_cache(maxsize=len(LANGUAGES))
def _template(language: str) -> Any:
    """Each language's template compiled once per process (compiling is most of a render's cost)."""
    return _ENV.from_string(template_text(language))


def static_check(language: str, source: str) -> str:
    """'ok' or the checker's complaint: Python's own compiler, `bash -n`, and our AppleScript parser."""
    if language == "python":
        try:
            tree = ast.parse(source)
            compile(source, "automation.py", "exec")
            # the file is run from its bytes, which honour an encoding declaration (PEP 263) that a
            # string ignores: what runs must be what was checked
            as_file = ast.parse(source.encode("utf-8"))
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            return f"line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)}"
        if ast.dump(as_file) != ast.dump(tree):
            return "the file's encoding declaration changes the program that runs"
        return "ok"
    if language == "bash":
        bash = shutil.which("bash")
        if bash is None:
            return "skipped: bash not found"
        proc = subprocess.run(
            [bash, "-n"], input=source.encode(), capture_output=True, timeout=30, check=False
        )
        return (
            "ok"
            if proc.returncode == 0
            else proc.stderr.decode(errors="replace").strip()[:500] or "bash -n failed"
        )
    if language == "applescript":
        problems = applescript.check(source)
        return "ok" if not problems else "; ".join(problems[:5])
    raise ValueError(f"unknown language {language!r}")


#: What a generator version may be (it is written into the header of every generated source).
GENERATOR_VERSION_PATTERN = r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}"
_GENERATOR_VERSION = re.compile(GENERATOR_VERSION_PATTERN)
_OP = re.compile(r"[a-z][a-z_]{0,63}")


def _check_meta(meta: RenderMeta) -> None:
    """The header's fields that are not comment text must be what they claim: a forged `automations`
    record once put code into `generator_version`, rendered by these templates and so accepted as rote's."""
    if not _GENERATOR_VERSION.fullmatch(meta.generator_version):
        raise ValueError(f"generator_version {meta.generator_version[:40]!r} is not a version")
    for what in (meta.version, meta.candidate_version):
        if type(what) is not int:
            raise ValueError(f"a version is not a whole number: {str(what)[:40]!r}")


@dataclass(frozen=True, kw_only=True)
class RenderMeta:
    name: str
    automation_id: str
    version: int
    candidate_id: str
    candidate_version: int
    generator_version: str


def render(
    language: str, plan_steps: list[dict[str, Any]], parameters: list[str], meta: RenderMeta
) -> GeneratedSource:
    """Render one language. Steps it cannot express are listed and fail loudly if ever run."""
    for p in parameters:
        _check_name(p)
    _check_meta(meta)
    unsupported: list[str] = []
    steps: list[dict[str, Any]] = []
    for st in plan_steps:
        # written into the source unquoted: a whole number and an operation name, nothing else (a forged
        # record's plan is rendered too, when the executor checks that the source is the templates')
        if type(st["i"]) is not int or not _OP.fullmatch(str(st["op"])):
            raise ValueError(f"a plan step's index or operation is not rote's: {str(st['i'])[:40]!r}")
        exprs.validate(st["value"]) if st["value"] is not None else None
        for e in st["target"].values():
            exprs.validate(e)
        view = dict(st, indent="    " if st["guard"] else "", unsupported=False)
        if st["guard"]:
            _check_name(st["guard"])
        if language == "applescript":
            view["indent"] = "\t" if st["guard"] else ""
        try:
            view.update(_PREP[language](st))
        except (Unexpressible, QuotingError) as exc:
            view["unsupported"] = True
            unsupported.append(f"step {st['i']} ({comment_text(st['label'], limit=60)}): {exc}")
        steps.append(view)
    source = _template(language).render(
        name=meta.name,
        automation_id=meta.automation_id,
        version=meta.version,
        candidate_id=meta.candidate_id,
        candidate_version=meta.candidate_version,
        generator_version=meta.generator_version,
        template_version=template_version(),
        parameters=parameters,
        steps=steps,
    )
    return GeneratedSource(
        language=language,
        source=source,
        supported=not unsupported,
        unsupported_steps=unsupported,
        static_check=static_check(language, source),
    )
