"""A routine as a person reads it: its name, what tells the variant apart, and its standard procedure.

Discovery fills `Candidate.name`, `variant_note` and `sop`; the views (`rote automations show`, the run
summary, the report) read them here, so a routine is named and described the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

from rote.streams.schemas import Candidate


def candidate_name(c: Candidate) -> str:
    """Discovery's human name for the routine, or its first steps when it has none."""
    if c.name:
        return c.name
    from rote.workflow.model import routine_name

    return routine_name(c)


def latest_candidate(run_dir: Path, candidate_id: str) -> Candidate | None:
    """The latest version of one candidate in a run archive (None when the archive lacks it)."""
    from rote.archive import read_events
    from rote.streams.topics import CANDIDATES

    found: Candidate | None = None
    for c in read_events(run_dir, CANDIDATES.name, Candidate):
        if c.candidate_id == candidate_id and (found is None or c.version >= found.version):
            found = c
    return found


def describe(c: Candidate) -> list[str]:
    """Lines for a terminal: the name, the variant note, then the numbered procedure."""
    lines = [f"routine: {candidate_name(c)}"]
    if c.variant_note:
        lines.append(f"variant: {c.variant_note}")
    if c.sop:
        lines.append("standard operating procedure:")
        lines += [f"  {step}" for step in c.sop]
    return lines
