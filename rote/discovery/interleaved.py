"""Scoring discovery on interleaved logs the way de Leoni & Khan (BPM 2026) score their method.

Their evaluator (`evaluate_clusters_with_jc` in github.com/Faizanunipd/Discovering-Shared-Action-Routines):
each discovered routine is a *set of action labels*; a numeric suffix ``_N`` added by their label splitting
is stripped first; its score is the best Jaccard coefficient against the transition labels of **every**
ground-truth Petri net of the setting (labels starting with ``start``/``end`` dropped); a log's score is the
mean over the scored routines. We score rote's top-K routines (K = number of routine types, one variant per
routine: `DiscoveryResult.heads`), missing ones counting 0.

That metric alone rewards one routine holding every label, so we also report how many routines were found
and how many *distinct* true routines the top K match at Jaccard >= 0.8 (a one-to-one matching of routines to
ground-truth label sets; nets with identical label sets count once). Where events carry their routine type
(logs we generate, `synth.py`), the mean over true routines of the best match among the top K is reported too.
"""

from __future__ import annotations

import csv
import re
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rote.discovery.candidates import DiscoveryResult
from rote.discovery.config import DiscoveryConfig
from rote.discovery.miner import discover
from rote.errors import ImportFormatError

MATCH = 0.8
_SUFFIX = re.compile(r"^(.*)_(\d+)$")


@dataclass(frozen=True, slots=True)
class NoTarget:
    """An action with nothing but a label (the interleaved logs' ``concept:name`` is already flattened)."""

    field: None = None
    element: None = None
    element_type: None = None
    workbook: None = None
    sheet: None = None
    cell: None = None
    column: None = None
    row: None = None
    url: None = None
    file: None = None
    title: None = None


_NO_TARGET = NoTarget()


@dataclass(frozen=True, slots=True)
class LogAction:
    """A labelled log row seen through the attributes discovery reads (duck-typed like `UserAction`).

    Not validated as a `UserAction`: these research logs carry timestamps in 2027, which ingress rightly
    refuses from a live device, but which are just times in a file here.
    """

    event_id: str
    user_id: str
    timestamp: datetime
    app: str
    action_type: str
    value: str | None = None
    duration_seconds: float | None = None
    target: Any = _NO_TARGET
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LabelledLog:
    actions: list[LogAction]
    #: routine type of each event (event id -> type), when the log says (noise events have none)
    routine_of: dict[str, str]


def read_log(
    path: Path,
    *,
    label_col: str = "concept:name",
    time_col: str = "time:timestamp",
    routine_col: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> LabelledLog:
    """A process-mining CSV as one user's stream, sorted by time (stable). `routine_col` (if present) holds
    each event's routine type; an empty cell means noise. Delimiter and encoding are detected as the
    importers detect them (`rote.importers.sniff`) unless given: an export from a spreadsheet in another
    locale (`;`, cp1252) reads the same."""
    from rote.importers.sniff import open_text, sniff, sniff_delimiter

    sniffed = sniff(path, encoding=encoding)
    with open_text(path, sniffed.encoding) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter or sniff_delimiter(sniffed.sample))
        cols = reader.fieldnames or []
        if label_col not in cols or time_col not in cols:
            raise ImportFormatError(f"{path.name}: needs columns {label_col!r} and {time_col!r}")
        rows = []
        for i, row in enumerate(reader):
            try:
                ts = datetime.fromisoformat(row[time_col].strip().replace("Z", "+00:00"))
            except ValueError as exc:
                raise ImportFormatError(f"{path.name}: row {i + 2}: bad timestamp {row[time_col]!r}") from exc
            if ts.tzinfo is None:
                raise ImportFormatError(f"{path.name}: row {i + 2}: timestamp without a time zone")
            rows.append((ts, i, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    actions = []
    routine_of: dict[str, str] = {}
    for ts, i, row in rows:
        eid = f"{path.stem}-{i}"
        actions.append(
            LogAction(event_id=eid, user_id=path.stem, timestamp=ts, app="log", action_type=row[label_col])
        )
        if routine_col and routine_col in row and row[routine_col].strip():
            routine_of[eid] = row[routine_col].strip()
    if not actions:
        raise ImportFormatError(f"{path.name}: no events")
    return LabelledLog(actions=actions, routine_of=routine_of)


def read_pnml_labels(path: Path) -> frozenset[str]:
    """Visible transition labels of a PNML net, without the ``start``/``end`` markers (as the authors do)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ImportFormatError(f"{path.name}: not PNML ({exc})") from exc
    labels = set()
    for tr in root.iter():
        if not tr.tag.endswith("transition"):
            continue
        for name in tr:
            if name.tag.endswith("name"):
                for text in name:
                    if text.tag.endswith("text") and text.text and text.text.strip():
                        labels.add(text.text.strip())
    return frozenset(x for x in labels if not (x.startswith("start") or x.startswith("end")))


def read_models(folder: Path) -> dict[str, frozenset[str]]:
    models = {p.stem: read_pnml_labels(p) for p in sorted(folder.glob("*.pnml"))}
    if not models:
        raise ImportFormatError(f"{folder}: no .pnml ground-truth models")
    return models


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def strip_split_suffix(labels: Sequence[str]) -> set[str]:
    """The authors' `extract_activity_names_and_log_ids`: ``x_3`` -> ``x`` when the suffix is a number."""
    out = set()
    for lab in labels:
        m = _SUFFIX.match(lab)
        out.add(m.group(1) if m else lab)
    return out


@dataclass(frozen=True, kw_only=True)
class TopKScore:
    k: int
    #: the published metric: mean over the top K of each routine's best Jaccard against all models
    mean_jc: float
    per_routine: list[float]
    best_model: list[str]
    routines_found: int
    #: distinct ground-truth label sets matched one-to-one at Jaccard >= 0.8 by the top K
    distinct_matched: int


def score_top_k(routine_sets: Sequence[set[str]], models: dict[str, frozenset[str]], k: int) -> TopKScore:
    top = [strip_split_suffix(sorted(r)) for r in routine_sets[:k]]
    per, best = [], []
    for r in top:
        name, jc = max(((m, jaccard(r, labs)) for m, labs in models.items()), key=lambda t: (t[1], t[0]))
        per.append(jc)
        best.append(name)
    padded = per + [0.0] * (k - len(per))
    distinct = sorted(set(models.values()), key=lambda s: sorted(s))
    pairs = sorted(
        ((jaccard(r, m), i, j) for i, r in enumerate(top) for j, m in enumerate(distinct)), reverse=True
    )
    used_r: set[int] = set()
    used_m: set[int] = set()
    for jc, i, j in pairs:
        if jc < MATCH:
            break
        if i not in used_r and j not in used_m:
            used_r.add(i)
            used_m.add(j)
    return TopKScore(
        k=k,
        mean_jc=sum(padded) / k if k else 0.0,
        per_routine=per,
        best_model=best,
        routines_found=len(routine_sets),
        distinct_matched=len(used_r),
    )


def true_routine_recall(
    routine_sets: Sequence[set[str]], log: LabelledLog, k: int
) -> tuple[float | None, dict[str, float]]:
    """Per-event routine types: each true routine's label set vs the best of the top K (its mean)."""
    if not log.routine_of:
        return None, {}
    label_of = {a.event_id: a.action_type for a in log.actions}
    true: dict[str, set[str]] = {}
    for eid, rt in log.routine_of.items():
        true.setdefault(rt, set()).add(label_of[eid])
    top = routine_sets[:k]
    per = {rt: max((jaccard(labs, r) for r in top), default=0.0) for rt, labs in sorted(true.items())}
    return statistics.mean(per.values()), per


def evaluate_log(
    path: Path,
    models: dict[str, frozenset[str]] | None,
    k: int | None,
    *,
    config: DiscoveryConfig | None = None,
    routine_col: str | None = None,
    columns: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Discover on one log and score it; `columns` are `read_log`'s keyword arguments (label_col, time_col,
    delimiter, encoding) when the log's differ from the shared logs'."""
    log = read_log(path, routine_col=routine_col, **(columns or {}))
    result: DiscoveryResult = discover(log.actions, config, user_id=path.stem)
    heads = result.heads()
    sets = [set(h.candidate.routine) for h in heads]
    n_types = len(set(log.routine_of.values())) if log.routine_of else None
    kk = k or n_types or 1
    out: dict[str, Any] = {
        "log": path.name,
        "events": len(log.actions),
        "k": kk,
        "routines_found": len(heads),
        "true_routines": n_types,
        "top_k": [sorted(s) for s in sets[:kk]],
    }
    if models is not None:
        sc = score_top_k(sets, models, kk)
        out.update(
            mean_jc=round(sc.mean_jc, 4),
            per_routine_jc=[round(x, 4) for x in sc.per_routine],
            best_model=sc.best_model,
            distinct_matched=sc.distinct_matched,
        )
    recall, per = true_routine_recall(sets, log, kk)
    if recall is not None:
        out.update(true_routine_best_match=round(recall, 4), per_true_routine=per)
    return out


def read_reference(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """``reference_scores.csv``: per (setting, log) the published method's score (and rote's of 2026-11)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return {(r["setting"], r["log"]): r for r in csv.DictReader(fh)}


def setting_k(name: str) -> int | None:
    m = re.search(r"(\d+)r\b", name)
    return int(m.group(1)) if m else None


def iter_folder(folder: Path) -> Iterator[Path]:
    def num(p: Path) -> tuple[int, str]:
        m = re.search(r"(\d+)$", p.stem)
        return (int(m.group(1)) if m else 0, p.stem)

    yield from sorted(folder.glob("*.csv"), key=num)
