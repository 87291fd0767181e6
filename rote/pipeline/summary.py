"""The run's summary, computed from its archive, and how it reads for a person.

`summarize` returns plain JSON (`rote run --json`); `render` lays it out for a terminal of any width. Every
count is one a reader can reconcile with another view: "actions in" are the file's valid rows (the demo's
injected malformed events are counted apart), tests are tallied per language as ran / passed / unsupported
(`rote.report.tally`), automation states are the registry's (the same as `rote automations list`),
the hours that could be saved leave out routines whose automation was rejected, and ROI comes with the
arithmetic and cost model behind it (`rote.report.roi`).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rote.archive import last_run_dir, read_events
from rote.demo.run import FORM_NOT_RUN, automation_runs, demo_form
from rote.importers import ImportStats
from rote.pipeline.options import Progress
from rote.report.roi import explain_roi
from rote.report.routine import candidate_name
from rote.report.tally import TestTally, current_version_verdicts
from rote.report.units import count, duration, hours, money, plural
from rote.streams.schemas import Candidate, OptimizationReport, TestResult
from rote.streams.topics import (
    ANOMALIES,
    AUTOMATIONS,
    CANDIDATES,
    CATALOGUE,
    DEAD_LETTERS,
    OPTIMIZATION_REPORTS,
    TEST_RESULTS,
    USER_ACTIONS,
)

#: Lifecycle states in the order a reader follows them (the registry's vocabulary, shared by every view).
STATE_ORDER = ("generated", "testing", "verified", "active", "degraded", "rejected", "retired")
TOP = 5


def summarize(
    run_dir: Path,
    state: Progress,
    *,
    seconds: float,
    replay: Path,
    broker_kind: str,
    imported: ImportStats | None = None,
    run_log: Path | None = None,
) -> dict[str, Any]:
    """The run's outcome, from the archive: what every topic received and what came of it."""
    from rote.generator.registry import from_archive

    candidates: dict[str, Candidate] = {}
    for c in read_events(run_dir, CANDIDATES.name, Candidate):
        if c.candidate_id not in candidates or c.version >= candidates[c.candidate_id].version:
            candidates[c.candidate_id] = c
    registry = from_archive(run_dir)
    records = registry.records()
    state_of = {r.candidate_id: r.state for r in records}
    tests = TestTally()
    for r in records:
        for lang, verdict in current_version_verdicts(r.test_results):
            tests.add(lang, verdict)
    results = list(read_events(run_dir, TEST_RESULTS.name, TestResult))
    reports = list(read_events(run_dir, OPTIMIZATION_REPORTS.name, OptimizationReport))
    efficiency = dict(reports[-1].efficiency) if reports else {}
    kept = [c for c in candidates.values() if state_of.get(c.candidate_id) not in ("rejected", "retired")]
    automated = [c for c in kept if state_of.get(c.candidate_id) in ("verified", "active", "degraded")]
    states = registry.counts_by_state()
    return {
        "replay": str(replay),
        "broker": broker_kind,
        "seconds": round(seconds, 1),
        "timed_out": state.timed_out,
        "error": state.error,
        "import": imported.to_dict() if imported is not None else None,
        "events_in": state.produced,
        "rows_rejected": state.import_rejected,
        "injected_invalid_events": state.injected_bad,
        "dead_letters": state.counts.get(DEAD_LETTERS.name, 0),
        "candidates": len(candidates),
        "top_candidates": [
            {
                "candidate_id": c.candidate_id,
                "name": candidate_name(c),
                "variant_note": c.variant_note,
                "sop": list(c.sop),
                "score": round(c.score, 1),
                "occurrences": c.occurrences,
                "steps": len(c.steps),
                "mean_duration_seconds": round(c.mean_duration_seconds, 1),
                "estimated_hours_saved_per_year": round(c.estimated_hours_saved_per_year, 1),
                "automation_state": state_of.get(c.candidate_id),
            }
            for c in sorted(candidates.values(), key=lambda c: (-c.score, c.candidate_id))[:TOP]
        ],
        "automations": {s: states[s] for s in sorted(states, key=_state_rank)},
        "test_results": len(results),
        "tests_passed": sum(1 for r in results if r.passed),
        "tests": tests.to_dict(),
        "simulated_production_runs": automation_runs(run_dir)["simulated"],
        "automation_runs": automation_runs(run_dir),
        "demo_form": demo_form(state),
        "anomalies": state.counts.get(ANOMALIES.name, 0),
        "reports": len(reports),
        "estimated_hours_saved_per_year": round(sum(c.estimated_hours_saved_per_year for c in kept), 1),
        "automated_hours_saved_per_year": round(sum(c.estimated_hours_saved_per_year for c in automated), 1),
        "rejected_hours_left_out": round(
            sum(c.estimated_hours_saved_per_year for c in candidates.values() if c not in kept), 1
        ),
        "time_saved_seconds": _round(efficiency.get("time_saved_seconds")),
        "value_saved": _round(efficiency.get("value_saved"), 2),
        "cost": {k: _round(v, 2) for k, v in (efficiency.get("cost") or {}).items()},
        "currency": efficiency.get("currency"),
        "roi": _round(efficiency.get("roi"), 4),
        "roi_explained": explain_roi(efficiency),
        "topics": {spec.name: state.counts.get(spec.name, 0) for spec in CATALOGUE},
        "archive": str(run_dir),
        "run_log": str(run_log) if run_log is not None else None,
    }


def _state_rank(state: str) -> tuple[int, str]:
    return (STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER), state)


def _round(x: Any, digits: int = 1) -> float | None:
    return round(float(x), digits) if isinstance(x, int | float) else None


# --------------------------------------------------------------------------------------------------
# the view
# --------------------------------------------------------------------------------------------------


def rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(heading, text) lines of the summary, every number in human units; pure, so it is tested as text."""
    out: list[tuple[str, str]] = []
    imp = s.get("import") or {}
    inp = [f"{plural(int(s['events_in']), 'action')} in"]
    if imp.get("repeated_ids"):
        inp.append(f"{plural(int(imp['repeated_ids']), 'repeated record')} (same id and time: learnt once)")
    if s.get("rows_rejected"):
        inp.append(f"{plural(int(s['rows_rejected']), 'invalid row')} of the file dead-lettered")
    skipped = sum((imp.get("skipped") or {}).values())
    if skipped:
        inp.append(f"{plural(skipped, 'row')} skipped")
    if imp.get("stray_quotes"):
        first = (imp.get("first") or {}).get("stray quote", "")
        inp.append(f"{plural(int(imp['stray_quotes']), 'row')} with an unclosed quote read as text ({first})")
    if imp.get("cut_short"):
        inp.append(f"the file looks cut short ({imp['cut_short']})")
    if s.get("injected_invalid_events"):
        inp.append(f"{plural(int(s['injected_invalid_events']), 'injected malformed event')} (demo)")
    inp.append(f"{plural(int(s['dead_letters']), 'dead letter')}")
    out.append(("input", " · ".join(inp)))
    for kind, n in sorted((imp.get("invalid") or {}).items(), key=lambda kv: -kv[1]):
        out.append(("", f"{count(n)} × {kind}; first: {(imp.get('first') or {}).get(kind, '')}"))
    for kind, n in sorted((imp.get("skipped") or {}).items(), key=lambda kv: -kv[1]):
        out.append(("", f"{count(n)} skipped, {kind}; first: {(imp.get('first') or {}).get(kind, '')}"))

    found = plural(int(s["candidates"]), "routine")
    saveable = hours(s.get("estimated_hours_saved_per_year"))
    routines = f"{found} found · {saveable}/year could be saved"
    if s.get("automated_hours_saved_per_year"):
        routines += f" ({hours(s['automated_hours_saved_per_year'])}/year by verified automations)"
    if s.get("rejected_hours_left_out"):
        routines += (
            f"; {hours(s['rejected_hours_left_out'])}/year of routines with a rejected automation left out"
        )
    out.append(("routines", routines))
    for i, c in enumerate(s.get("top_candidates") or [], start=1):
        state = f", automation {c['automation_state']}" if c.get("automation_state") else ""
        steps = "" if f"{c['steps']} steps" in c["name"] else f"{c['steps']} steps, "
        out.append(
            (
                "",
                f"{i}. {c['name']} — {steps}seen {c['occurrences']}×, "
                f"{duration(c.get('mean_duration_seconds'))} each, score {c['score']:.0f}{state}",
            )
        )
        if c.get("variant_note"):
            out.append(("", f"   {c['variant_note']}"))
    autos = s.get("automations") or {}
    out.append(("automations", " · ".join(f"{n} {k}" for k, n in autos.items()) or "none"))
    tests = TestTally.from_dict(s.get("tests") or {})
    out.append(("tests", f"{tests.text()} (current versions; {count(s['test_results'])} results in all)"))
    runs = []
    made = s.get("automation_runs") or {}
    if made.get("production"):
        runs.append(plural(int(made["production"]), "production run"))
    if s.get("simulated_production_runs"):
        runs.append(plural(int(s["simulated_production_runs"]), "simulated run"))
    runs.append(plural(int(s["anomalies"]), "anomaly", "anomalies"))
    out.append(("runs", " · ".join(runs)))
    form = s.get("demo_form")
    if form and form.get("runs_requested") == 0:
        # another log than the bundled one (or nothing verified): say so, not "0 of 50 students"
        out.append(("demo form", f"not run: {FORM_NOT_RUN}"))
    elif form:
        out.append(
            (
                "demo form",
                f"{count(form.get('submitted'))} submissions, "
                f"{count(form.get('correct'))} correct "
                f"({count(form.get('distinct_students_correct'))} of "
                f"{count(form.get('expected'))} students), "
                f"{count(form.get('rejected_malformed'))} rejected as malformed"
                + (
                    f", {count(form['runs_refused'])} runs refused by the executor"
                    if form.get("runs_refused")
                    else ""
                ),
            )
        )
    cur = str(s.get("currency") or "")
    saved = s.get("time_saved_seconds")
    if saved is not None:
        out.append(
            ("time saved", f"{duration(saved)} by production runs, worth {money(s.get('value_saved'), cur)}")
        )
    out.append(("ROI", s.get("roi_explained") or "– (under a cent spent so far: no ratio to give)"))
    out.append(("reports", plural(int(s["reports"]), "optimization report")))
    topics = s.get("topics") or {}
    # a `user-actions` message may carry one user's batch of actions (the actions are counted under "input")
    actions = int(s.get("events_in") or 0)
    # a routine's candidate and an automation are published again as they grow: messages are versions
    distinct = {
        CANDIDATES.name: int(s["candidates"]),
        AUTOMATIONS.name: sum((s.get("automations") or {}).values()),
    }

    def note(k: str, v: int) -> str:
        if k == USER_ACTIONS.name and 0 < v < actions:
            return " (batches of actions)"
        if k in distinct and v > distinct[k] > 0:
            return " (versions)"
        return ""

    shown = [f"{k} {count(v)}{note(k, v)}" for k, v in topics.items()]
    out.append(("messages", " · ".join(shown)))
    return out


def render(s: dict[str, Any], console: Any) -> None:
    """Print the summary on a rich `console`: a two-column grid that wraps at any width, never cuts."""
    from rich.table import Table
    from rich.text import Text

    from rote.report.units import visible

    replay = Path(str(s["replay"])).name
    imp = s.get("import") or {}
    what = f"{replay} ({imp['format']})" if imp.get("format") else replay
    console.print(Text(f"rote run on {s['broker']} — {what} in {duration(s['seconds'])}", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for head, text in rows(s):
        # Text, not markup, and controls shown, not obeyed: names and reasons come from user data
        grid.add_row(Text(visible(head)), Text(visible(text)))
    with console.capture() as captured:
        console.print(grid)
    # a grid pads every line to its width: trailing blanks are noise in a file or a CI log
    laid_out = "\n".join(line.rstrip() for line in captured.get().splitlines())
    console.print(Text.from_ansi(laid_out), soft_wrap=True)
    if s.get("timed_out"):
        console.print(Text("timed out before the pipeline went quiet", style="red"))
    if s.get("error"):
        console.print(Text(str(s["error"]), style="red"))
    tail = f"archive: {s['archive']}"
    if s.get("timed_out") or s.get("error"):
        tail += "  (kept aside; the previous last-run archive is unchanged)"
    else:
        # the commands as they find this archive: without --from they read the default state dir's
        here = Path(str(s["archive"]))
        needs = s.get("archive_needs_from")  # set by `rote run`, which knows the caller's default
        if needs is None:
            needs = here.resolve() != last_run_dir().resolve()
        frm = f" --from {shlex.quote(str(here))}" if needs else ""
        hint = f"  (rote report{frm} --html report.html; rote automations list{frm})"
        if len(tail) + len(hint) <= console.width:
            tail += hint
        else:  # one command a line: wrapped, a path broke in two where a reader copies it
            tail += f"\n  rote report{frm} --html report.html\n  rote automations list{frm}"
    console.print(Text(tail, overflow="fold"))
    if s.get("run_log"):
        console.print(Text(f"log: {s['run_log']}", style="dim", overflow="fold"))
