"""From a routine candidate to a target-neutral plan, its parameters, and held-out test cases.

The plan is what every language template renders: one entry per routine step with the action-API
operation, its target and how its value is obtained. Everything that varies between the observed
instances is inferred from the *training* instances only (what the discoverer's `parameter` hint says
is a starting point, not the truth): a cell address whose row moves with the instance becomes a `row`
parameter, a value that can be computed from earlier values becomes data flow, a value nobody can
compute becomes an input parameter, and steps the user only sometimes does get a yes/no parameter.
The remaining (held-out) instances become test cases the generated program must reproduce exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rote.generator import exprs
from rote.generator.exprs import Expr
from rote.generator.synthesis import AtomCache, SynthesisConfig, synthesize
from rote.privacy.tokens import REDACTED_RE, contains_redaction, holds_marker
from rote.streams.schemas import MAX_TEST_CASES, Candidate, ExpectedAction, RoutineInstance, Target, TestCase

#: Target fields that identify what an action is done to (column/row are implied by `cell`).
TARGET_KEYS: tuple[str, ...] = (
    "workbook",
    "sheet",
    "cell",
    "field",
    "element",
    "element_type",
    "url",
    "file",
    "title",
)

#: How each action-API operation gets its value: "input" (the automation supplies it), "observed"
#: (the world returns it: a cell, the clipboard, a file) or None (the action has no value).
OPS: dict[str, str | None] = {
    "copy_cell": "observed",
    "read_cell": "observed",
    "paste": "observed",
    "read_file": "observed",
    "fill_field": "input",
    "copy": "input",
    "write_file": "input",
    "copy_file": "input",
    "move_file": "input",
    "click": None,
    "open_url": None,
    "open_file": None,
    "make_dir": None,
    "delete_file": None,
    "wait_for": None,
}
UNKNOWN_OP = "unknown"

_ALIASES: dict[str, str] = {
    "copycell": "copy_cell",
    "getcell": "read_cell",
    "readcell": "read_cell",
    "selectcell": "read_cell",
    "paste": "paste",
    "pastevalue": "paste",
    "editfield": "fill_field",
    "insertvalue": "fill_field",
    "editcell": "fill_field",
    "fill": "fill_field",
    "fillfield": "fill_field",
    "input": "fill_field",
    "type": "fill_field",
    "typetext": "fill_field",
    "settext": "fill_field",
    "changefield": "fill_field",
    "copy": "copy",
    "ctrlc": "copy",
    "click": "click",
    "clickbutton": "click",
    "clicklink": "click",
    "clickcheckbox": "click",
    "clickradiobutton": "click",
    "clicktextfield": "click",
    "submit": "click",
    "gotourl": "open_url",
    "openurl": "open_url",
    "navigate": "open_url",
    "navigateto": "open_url",
    "openfile": "open_file",
    "openworkbook": "open_file",
    "readfile": "read_file",
    "writefile": "write_file",
    "createfile": "write_file",
    "savefile": "write_file",
    "copyfile": "copy_file",
    "movefile": "move_file",
    "renamefile": "move_file",
    "mkdir": "make_dir",
    "makedir": "make_dir",
    "createfolder": "make_dir",
    "createdirectory": "make_dir",
    "deletefile": "delete_file",
    "removefile": "delete_file",
    "wait": "wait_for",
    "waitfor": "wait_for",
    "waitforpage": "wait_for",
    # a web page's answer to the step before (Bosco et al.'s loggers: `waitResponse` on the answering URL,
    # e.g. www.webpage.com/ok after a log-in): wait until that page is there
    "waitresponse": "wait_for",
    "waitforresponse": "wait_for",
    "waitforload": "wait_for",
    "waitforpageload": "wait_for",
    "pageload": "wait_for",
}


def op_for(action_type: str) -> str:
    """The action-API operation for a logger's action type ("copyCell", "insertValue", "clickButton")."""
    key = re.sub(r"[^a-z0-9]", "", action_type.lower())
    return _ALIASES.get(key, UNKNOWN_OP)


def slug(text: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not s or not s[0].isalpha():
        s = "p_" + s
    return s[:40].rstrip("_")


_CELL = re.compile(r"^\$?([A-Z]{1,3})\$?([1-9][0-9]{0,6})$")


@dataclass(frozen=True, kw_only=True)
class PlanConfig:
    #: Share of instances held out as test cases (the rest are used to infer the plan).
    holdout_fraction: float = 0.5
    min_train: int = 3
    max_train: int = 10
    max_test_cases: int = MAX_TEST_CASES
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)


@dataclass(frozen=True, kw_only=True)
class ParameterSpec:
    name: str
    kind: str  # "row" | "value" | "target" | "flag"
    step: int | None
    description: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    steps: list[dict[str, Any]]
    parameters: list[ParameterSpec]
    train: list[int]
    held_out: list[int]
    notes: list[str]


@dataclass
class _Obs:
    """One instance seen through the candidate's steps."""

    present: list[bool]
    values: list[str | None]
    targets: list[Target]


def _observe(c: Candidate, inst: RoutineInstance) -> _Obs:
    n = len(c.steps)
    present, values, targets = [], [], []
    for s in range(n):
        eid = inst.event_ids[s] if s < len(inst.event_ids) else None
        val = inst.values[s] if s < len(inst.values) else None
        tgt = inst.targets[s] if s < len(inst.targets) else None
        present.append(eid is not None)
        values.append(val)
        targets.append(tgt if tgt is not None else c.steps[s].target)
    return _Obs(present=present, values=values, targets=targets)


def split_instances(c: Candidate, config: PlanConfig) -> tuple[list[int], list[int]]:
    """Chronological split: generate from the older instances, test on the newer ones (never shuffled,
    so a test case is an instance the generator could not have seen)."""
    order = sorted(range(len(c.instances)), key=lambda k: (c.instances[k].start, k))
    n = len(order)
    if n <= 1:
        return order, []
    n_train = math.ceil(n * (1 - config.holdout_fraction))
    n_train = max(min(config.min_train, n - 1), min(n_train, config.max_train), 1)
    n_train = min(n_train, n - 1)
    return order[:n_train], order[n_train:]


class _Names:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, base: str) -> str:
        name, k = base, 2
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name


def build_plan(c: Candidate, config: PlanConfig | None = None) -> Plan:
    cfg = config or PlanConfig()
    train, held = split_instances(c, cfg)
    obs = [_observe(c, c.instances[k]) for k in train]
    names = _Names()
    params: list[ParameterSpec] = []
    notes: list[str] = []
    steps: list[dict[str, Any]] = []
    n_steps = len(c.steps)

    # Optional steps: presence differs between training instances. Steps that always co-occur share one
    # yes/no parameter (ticking a box and filling its value is one decision, not two).
    guards: dict[tuple[bool, ...], str] = {}
    step_guard: list[str | None] = [None] * n_steps
    dropped: set[int] = set()
    for s in range(n_steps):
        pattern = tuple(o.present[s] for o in obs)
        if not obs:
            if c.steps[s].optional:
                pattern = (True, False)
            else:
                continue
        if all(pattern) and not c.steps[s].optional:
            continue
        # A step discovery saw missing from some instances stays a yes/no decision even when every
        # training instance happens to have it (the last record of a batch skips "add another").
        if not any(pattern):
            dropped.add(s)
            notes.append(f"step {s} ({c.steps[s].label}) never occurs in the training instances; left out")
            continue
        if pattern not in guards:
            guards[pattern] = names.new("do_" + slug(c.steps[s].label))
            params.append(
                ParameterSpec(
                    name=guards[pattern], kind="flag", step=s, description=f"do '{c.steps[s].label}'?"
                )
            )
        step_guard[s] = guards[pattern]

    # Cell addresses that move with the instance: one `row` parameter plus a fixed offset per step.
    row_param: str | None = None
    base_rows: list[int | None] = [None] * len(obs)
    for k, o in enumerate(obs):
        for s in range(n_steps):
            if s in dropped or step_guard[s] is not None or not o.present[s]:
                continue
            m = _CELL.match(o.targets[s].cell or "")
            if m and len({(ob.targets[s].cell or "") for ob in obs}) > 1:
                base_rows[k] = int(m.group(2))
                break

    bound: set[int] = set()  # steps whose value is available to later steps on every run
    atoms = AtomCache()  # each source's pieces, made once for all the steps that may take from it
    for s, st in enumerate(c.steps):
        if s in dropped:
            continue
        op = op_for(st.action_type)
        present_obs = [o for o in obs if o.present[s]]
        target: dict[str, Expr] = {}
        for key in TARGET_KEYS:
            vals = [getattr(o.targets[s], key) for o in present_obs] or [getattr(st.target, key)]
            if all(v is None for v in vals):
                continue
            fixed = len(set(vals)) == 1 or None in vals
            if fixed and not any(contains_redaction(v) for v in vals if v is not None):
                if len(set(vals)) > 1:
                    notes.append(f"step {s}: {key} missing in some instances; using the first seen")
                target[key] = exprs.const(str(next(v for v in vals if v is not None)))
                continue
            if fixed:  # a pseudonym or a marker: never a literal in generated code, always an input
                pname = names.new(f"{slug(st.label)}_{key}")
                params.append(
                    ParameterSpec(name=pname, kind="target", step=s, description=f"{key} of '{st.label}'")
                )
                target[key] = exprs.param(pname)
                continue
            svals = [str(v) for v in vals]
            if key == "cell":
                e = _infer_cell(svals, [base_rows[k] for k, o in enumerate(obs) if o.present[s]])
                if e is not None:
                    if row_param is None:
                        row_param = names.new("row")
                        params.insert(
                            0,
                            ParameterSpec(
                                name=row_param, kind="row", step=None, description="spreadsheet row"
                            ),
                        )
                    e["row"] = exprs.param(row_param)
                    target[key] = e
                    continue
            e2 = _derive(svals, present_obs, bound, s, None, cfg, atoms)
            if e2 is not None and not has_redacted_literal(e2):
                # (a derived title such as `v4 + " - <email:…> - Gmail"` would carry the token as a literal)
                target[key] = e2
                continue
            pname = names.new(f"{slug(st.label)}_{key}")
            params.append(
                ParameterSpec(name=pname, kind="target", step=s, description=f"{key} of '{st.label}'")
            )
            target[key] = exprs.param(pname)

        value: Expr | None = None
        role = OPS.get(op)
        if role == "input":
            vals2 = [o.values[s] for o in present_obs]
            hint = st.parameter.source_step if st.parameter is not None else None
            if present_obs and all(v is not None for v in vals2):
                svals2 = [v for v in vals2 if v is not None]
                value = _derive(svals2, present_obs, bound, s, hint, cfg, atoms)
                if value is not None and has_redacted_literal(value):
                    value = None
                if value is None and len(set(svals2)) == 1 and not contains_redaction(svals2[0]):
                    value = exprs.const(svals2[0])
            elif not present_obs and st.parameter is not None:
                if (
                    st.parameter.kind == "constant"
                    and st.parameter.constant is not None
                    and not contains_redaction(st.parameter.constant)
                ):
                    value = exprs.const(st.parameter.constant)
                elif st.parameter.kind == "derived" and st.parameter.source_step in bound:
                    value = exprs.step(int(st.parameter.source_step))
            if value is None:
                pname = names.new(f"{slug(st.label)}_value")
                params.append(
                    ParameterSpec(name=pname, kind="value", step=s, description=f"value for '{st.label}'")
                )
                value = exprs.param(pname)
        if op == UNKNOWN_OP:
            notes.append(f"step {s} ({st.label}): action type {st.action_type!r} has no action-API operation")
        steps.append(
            {
                "i": s,
                "label": REDACTED_RE.sub(_token_kind, st.label),
                "action_type": st.action_type,
                "app": st.app,
                "op": op,
                "target": target,
                "value": value,
                "guard": step_guard[s],
                "binds": role is not None,
            }
        )
        if role is not None and step_guard[s] is None:
            bound.add(s)
    return Plan(steps=steps, parameters=params, train=train, held_out=held, notes=notes)


def has_redacted_literal(e: Expr) -> bool:
    """True when a constant anywhere in `e` holds a pseudonym or a marker (redacted data must reach the
    generated program as a run-time parameter, never as a literal in its source)."""
    if e.get("k") == "const":
        return contains_redaction(e.get("s"))
    children = [v for v in e.values() if isinstance(v, dict)]
    children += [p for v in e.values() if isinstance(v, list) for p in v if isinstance(p, dict)]
    return any(has_redacted_literal(c) for c in children)


def _token_kind(m: re.Match[str]) -> str:
    """`<email:9f3a…>` -> `<email>` in step labels (they become comments in the generated code)."""
    return m.group().split(":", 1)[0].rstrip(">") + ">"


def _infer_cell(cells: list[str], base_rows: list[int | None]) -> Expr | None:
    cols, offsets = set(), set()
    for cell, base in zip(cells, base_rows, strict=True):
        m = _CELL.match(cell)
        if m is None or base is None:
            return None
        cols.add(m.group(1))
        offsets.add(int(m.group(2)) - base)
    if len(cols) != 1 or len(offsets) != 1:
        return None
    return exprs.cellref(cols.pop(), exprs.const("0"), offsets.pop())


def _derive(
    targets: list[str],
    present_obs: list[_Obs],
    bound: set[int],
    s: int,
    hint: int | None,
    cfg: PlanConfig,
    atom_cache: AtomCache | None = None,
) -> Expr | None:
    if any(holds_marker(t) for t in targets):
        return None  # a dropped secret is an input of its own, never another step's value
    sources: dict[int, list[str]] = {}
    for j in sorted(bound):
        if j >= s:
            continue
        vals = [o.values[j] for o in present_obs]
        if all(v is not None and not holds_marker(v) for v in vals):
            sources[j] = [v for v in vals if v is not None]
    if not sources:
        return None
    return synthesize(targets, sources, config=cfg.synthesis, hint=hint, atom_cache=atom_cache)


def instance_inputs(c: Candidate, plan: Plan, k: int) -> dict[str, str] | None:
    """Parameter values that reproduce instance k, or None when the instance cannot be expressed
    (e.g. its row cannot be read off a cell)."""
    o = _observe(c, c.instances[k])
    by_step = {st["i"]: st for st in plan.steps}
    inputs: dict[str, str] = {}
    for p in plan.parameters:
        if p.kind == "flag":
            assert p.step is not None
            inputs[p.name] = "true" if o.present[p.step] else "false"
        elif p.kind == "value":
            assert p.step is not None
            v = o.values[p.step]
            inputs[p.name] = v if v is not None else ""
        elif p.kind == "target":
            assert p.step is not None
            key = p.description.split(" ", 1)[0]
            inputs[p.name] = str(getattr(o.targets[p.step], key) or "")
        elif p.kind == "row":
            row = _instance_row(o, by_step, p.name)
            if row is None:
                return None
            inputs[p.name] = str(row)
    return inputs


def _instance_row(o: _Obs, by_step: dict[int, dict[str, Any]], name: str) -> int | None:
    for s, st in sorted(by_step.items()):
        cell = st["target"].get("cell")
        if cell is None or cell["k"] != "cellref" or cell["row"] != exprs.param(name) or not o.present[s]:
            continue
        m = _CELL.match(o.targets[s].cell or "")
        if m is not None:
            return int(m.group(2)) - int(cell["offset"])
    return None


def environment(c: Candidate, plan: Plan, k: int) -> dict[str, Any]:
    """The simulated world for a run: every spreadsheet cell and file the candidate's instances showed.

    All instances contribute cells, so an automation that reads the wrong row reads a real but wrong
    value (and fails the comparison) instead of conveniently crashing.
    """
    sheets: dict[str, dict[str, dict[str, str]]] = {}
    files: dict[str, str] = {}
    ops = {st["i"]: st["op"] for st in plan.steps}
    order = [kk for kk in range(len(c.instances)) if kk != k] + [k]  # instance k wins on conflicts
    for kk in order:
        o = _observe(c, c.instances[kk])
        for s, op in ops.items():
            if not o.present[s]:
                continue
            t, v = o.targets[s], o.values[s]
            if op in ("copy_cell", "read_cell") and t.cell and v is not None:
                sheets.setdefault(t.workbook or "", {}).setdefault(t.sheet or "", {})[t.cell] = v
            elif op == "read_file" and t.file and v is not None:
                files[t.file] = v
            elif op in ("copy_file", "move_file", "delete_file", "open_file") and t.file and kk == k:
                files.setdefault(t.file, "")
    return {"sheets": sheets, "files": files, "clipboard": ""}


def expected_actions(c: Candidate, plan: Plan, k: int) -> list[ExpectedAction]:
    o = _observe(c, c.instances[k])
    out: list[ExpectedAction] = []
    keys_by_step = {st["i"]: set(st["target"]) for st in plan.steps}
    for s, st in enumerate(c.steps):
        if not o.present[s]:
            continue
        keys = keys_by_step.get(s, set(TARGET_KEYS))
        tgt = Target(**{key: getattr(o.targets[s], key) for key in TARGET_KEYS if key in keys})
        value = o.values[s] if OPS.get(op_for(st.action_type)) is not None else None
        out.append(ExpectedAction(action_type=st.action_type, target=tgt, value=value))
    return out


def make_test_cases(
    c: Candidate, plan: Plan, indices: Sequence[int] | None = None, *, limit: int | None = None
) -> list[TestCase]:
    """Held-out instances as test cases: inputs, the simulated world and the exact expected actions."""
    out: list[TestCase] = []
    for k in plan.held_out if indices is None else indices:
        inputs = instance_inputs(c, plan, k)
        if inputs is None:
            continue
        inst = c.instances[k]
        case_id = f"{c.candidate_id}-i{k}-" + (next((e for e in inst.event_ids if e), None) or "x")[:64]
        out.append(
            TestCase(
                case_id=case_id[:256],
                inputs=inputs,
                environment=environment(c, plan, k),
                expected=expected_actions(c, plan, k),
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out
