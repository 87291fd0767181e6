"""Scoring discovery against ground truth, as ``../shared/data/uilogs/README.md`` defines it.

1. Routine identification: each ground-truth variant (a distinct label sequence of the instances) is matched
   to the discovered routine whose action *set* has the best Jaccard with its action set; we report the mean
   over variants (`mean_best_jaccard`) and the share matched at >= 0.8 (`matched_share`).
2. Instance recovery: a discovered occurrence (its set of events) matches a ground-truth instance when the
   event sets' Jaccard is >= 0.8. Matching is one-to-one (an instance found twice counts once; the second
   find is a false positive). Precision, recall, F1.
3. Event level: precision/recall/F1 of "this event belongs to some routine instance".

Labels on both sides use the same `ActionAbstraction`, so results are comparable only with that abstraction.

**Raw logs scored against preprocessed ground truth.** Leno et al.'s segmented files are not the raw log:
``getCell`` + ``copy`` were merged into one ``copyCell`` (taking the ``copy``'s time) and ``clickTextField``
was dropped. Discovery runs on the *raw* log; for scoring, each raw event is mapped to the ground-truth event
with the same timestamp and action type (``copy`` -> ``copyCell``/``copyRange``); raw events with no
counterpart (``getCell``, ``clickTextField``) are outside the scored universe, exactly as the preprocessing
put them outside the ground truth. A discovered routine's action set is then the set of ground-truth labels
of the events its steps matched (the majority label per step).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rote.discovery.abstraction import ActionAbstraction
from rote.discovery.miner import DiscoveryConfig, DiscoveryResult, discover
from rote.errors import ImportFormatError, ValidationError
from rote.importers import CsvOptions, Format, ImportedRecord, iter_records
from rote.importers.options import INSTANCE_COLUMNS
from rote.streams.schemas import UserAction, decode

MATCH = 0.8
#: The scores `score_result` gives and `evaluate_file` always reports (None when the log has no ground
#: truth), in the order the CLI prints them.
SCORE_METRICS: tuple[str, ...] = (
    "mean_best_jaccard",
    "matched_share",
    "instance_precision",
    "instance_recall",
    "instance_f1",
    "event_precision",
    "event_recall",
    "event_f1",
)


def jaccard(a: set[Any], b: set[Any]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def prf(tp: int, n_pred: int, n_true: int) -> tuple[float | None, float | None, float | None]:
    p = tp / n_pred if n_pred else None
    r = tp / n_true if n_true else None
    f = (
        2 * p * r / (p + r)
        if p is not None and r is not None and (p + r) > 0
        else (0.0 if p is not None and r is not None else None)
    )
    return p, r, f


@dataclass(frozen=True, kw_only=True)
class Truth:
    """Ground truth in one universe of event ids: instance of each event, label of each event."""

    instance_of: dict[str, str]
    label_of: dict[str, str]
    universe: set[str]
    routine_of: dict[str, str] = field(default_factory=dict)
    #: raw event id -> ground-truth event id (identity when the truth is in the file itself)
    mapping: dict[str, str] | None = None


def log_options(options: CsvOptions | None, truth_path: Path | None) -> CsvOptions | None:
    """The options the log itself is read with: with a separate truth file, `--instance-col` and
    `--routine-col` name the truth file's columns, which the log need not have."""
    if truth_path is None or options is None:
        return options
    return replace(options, instance_col=None, routine_col=None)


def _load(
    path: Path, fmt: Format, options: CsvOptions | None, user_id: str
) -> tuple[list[UserAction], list[ImportedRecord]]:
    actions: list[UserAction] = []
    records: list[ImportedRecord] = []
    for rec in iter_records(path, fmt=fmt, user_id=user_id, csv_options=options):
        if rec.error is not None:
            continue
        try:
            actions.append(decode(UserAction, rec.payload))
        except ValidationError:
            continue
        records.append(rec)
    return actions, records


def truth_from_labels(
    actions: Sequence[UserAction], records: Sequence[ImportedRecord], ab: ActionAbstraction
) -> Truth | None:
    inst = {
        a.event_id: r.labels["instance"]
        for a, r in zip(actions, records, strict=True)
        if "instance" in r.labels
    }
    if not inst:
        return None
    routine = {
        a.event_id: r.labels["routine"]
        for a, r in zip(actions, records, strict=True)
        if "routine" in r.labels
    }
    return Truth(
        instance_of=inst,
        label_of={a.event_id: ab.label(a) for a in actions},
        universe={a.event_id for a in actions},
        routine_of=routine,
    )


_COPY_LIKE = ("copyCell", "copyRange")


def truth_from_file(
    raw: Sequence[UserAction],
    truth_actions: Sequence[UserAction],
    truth_records: Sequence[ImportedRecord],
    ab: ActionAbstraction,
) -> Truth:
    """Map raw events onto a preprocessed ground-truth log by (timestamp, action type)."""
    by_key: dict[tuple[float, str], list[str]] = defaultdict(list)
    inst: dict[str, str] = {}
    labels: dict[str, str] = {}
    for a, r in zip(truth_actions, truth_records, strict=True):
        by_key[(round(a.timestamp.timestamp(), 3), a.action_type)].append(a.event_id)
        labels[a.event_id] = ab.label(a)
        if "instance" in r.labels:
            inst[a.event_id] = r.labels["instance"]
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for a in raw:
        t = round(a.timestamp.timestamp(), 3)
        types = [a.action_type, *_COPY_LIKE] if a.action_type == "copy" else [a.action_type]
        for ty in types:
            free = [g for g in by_key.get((t, ty), []) if g not in used]
            if free:
                mapping[a.event_id] = free[0]
                used.add(free[0])
                break
    return Truth(instance_of=inst, label_of=labels, universe=set(labels), mapping=mapping)


def score_result(result: DiscoveryResult, truth: Truth) -> dict[str, Any]:
    m = truth.mapping

    def to_truth(eids: Sequence[str]) -> set[str]:
        if m is None:
            return {e for e in eids if e in truth.universe}
        return {m[e] for e in eids if e in m}

    # 1. routine identification
    instances: dict[str, list[str]] = defaultdict(list)
    for eid in sorted(truth.instance_of, key=lambda e: e):
        instances[truth.instance_of[eid]].append(eid)
    # keep instance events in stream order: universe order is not known here, so sort by label order later
    variants: set[tuple[str, ...]] = set()
    order = {e: i for i, e in enumerate(truth.label_of)}
    for evs in instances.values():
        evs.sort(key=lambda e: order.get(e, 0))
        variants.add(tuple(truth.label_of[e] for e in evs))
    routine_sets: list[set[str]] = []
    for r in result.routines:
        if m is None:
            routine_sets.append(set(r.candidate.routine))
            continue
        per_step: list[Counter[str]] = [Counter() for _ in r.candidate.routine]
        # majority ground-truth label of each step over all occurrences
        for occ_ids in r.step_occurrences:
            for k, raw_id in enumerate(occ_ids):
                if raw_id is not None and raw_id in m:
                    per_step[k][truth.label_of[m[raw_id]]] += 1
        routine_sets.append({c.most_common(1)[0][0] for c in per_step if c})
    best = []
    for var in variants:
        vs = set(var)
        best.append(max((jaccard(vs, rs) for rs in routine_sets), default=0.0))
    mean_best = sum(best) / len(best) if best else None
    matched_share = sum(b >= MATCH for b in best) / len(best) if best else None

    # 2. instance recovery (one-to-one)
    gt_sets = {k: set(v) for k, v in instances.items()}
    matched: set[str] = set()
    tp = n_pred = 0
    predicted_events: set[str] = set()
    for r in result.routines:
        for occ in r.occurrences:
            ev = to_truth(occ)
            if not ev:
                continue
            n_pred += 1
            predicted_events |= ev
            votes = Counter(truth.instance_of[e] for e in ev if e in truth.instance_of)
            if not votes:
                continue
            cand = votes.most_common(1)[0][0]
            if cand not in matched and jaccard(ev, gt_sets[cand]) >= MATCH:
                matched.add(cand)
                tp += 1
    ip, ir, if1 = prf(tp, n_pred, len(gt_sets))
    # 3. event level
    positive = set(truth.instance_of)
    etp = len(predicted_events & positive)
    ep, er, ef1 = prf(etp, len(predicted_events), len(positive))
    return {
        "mean_best_jaccard": mean_best,
        "matched_share": matched_share,
        "instance_precision": ip,
        "instance_recall": ir,
        "instance_f1": if1,
        "event_precision": ep,
        "event_recall": er,
        "event_f1": ef1,
        "variants": len(variants),
        "instances": len(gt_sets),
    }


LENO_PATTERN_SPLIT = re.compile(r"\s+-1\s*")


def read_spmf_patterns(path: Path) -> list[list[str]]:
    """SPMF sequences: items separated by ``-1``, the sequence ended by ``-2``."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        items = [t.strip() for t in LENO_PATTERN_SPLIT.split(line.replace("-2", "")) if t.strip()]
        out.append(items)
    return out


def leno_label(action: UserAction) -> str:
    """Leno et al.'s pattern-file labels: ``copyCell_A``, ``paste_Date_date``, ``clickButton_Submit``."""
    t = action.target
    if action.action_type in ("copyCell", "getCell") and t.column:
        key = t.column
    else:
        key = t.element or t.field or t.title or ""
    key = key.replace("-", "_")
    return f"{action.action_type}_{key}" if key else action.action_type


def evaluate_file(
    path: Path,
    *,
    fmt: Format,
    csv_options: CsvOptions | None = None,
    truth_path: Path | None = None,
    truth_format: Format | None = None,
    patterns_path: Path | None = None,
    config: DiscoveryConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Replay a log through `discover` and score it; see the module docstring."""
    cfg = config or DiscoveryConfig()
    ab = cfg.abstraction
    actions, records = _load(path, fmt, log_options(csv_options, truth_path), "eval")
    if not actions:
        raise ImportFormatError(f"{path.name}: no readable events")
    t0 = time.perf_counter()
    total = len(actions)
    result = discover(
        actions, replace(cfg), user_id="eval", progress=(lambda n: progress(n, total)) if progress else None
    )
    seconds = time.perf_counter() - t0
    truth: Truth | None
    truth_actions: list[UserAction] = []
    if truth_path is not None:
        truth_actions, truth_records = _load(truth_path, truth_format or fmt, csv_options, "truth")
        truth = truth_from_file(actions, truth_actions, truth_records, ab)
        # Scored against nothing, every metric would be empty and the command would still succeed.
        if not truth_actions:
            raise ImportFormatError(
                f"{truth_path.name}: no event read from it as a {truth_format or fmt} log (a truth file is "
                "read with the log's format and columns; a log of your own can carry its truth in columns "
                "instead: --instance-col, --routine-col)"
            )
        if not truth.instance_of:
            raise ImportFormatError(
                f"{truth_path.name}: no routine instance column (looked for {', '.join(INSTANCE_COLUMNS)}; "
                "name it with --instance-col)"
            )
        if not truth.mapping:
            raise ImportFormatError(
                f"{truth_path.name}: none of its rows is an event of {path.name} (a truth file is the same "
                "events, segmented, with an instance column; rows are matched by timestamp and action type)"
            )
    else:
        truth = truth_from_labels(actions, records, ab)
    out: dict[str, Any] = dict.fromkeys(SCORE_METRICS)
    if truth is not None:
        out.update(score_result(result, truth))
    out["events"] = len(actions)
    # events whose id was seen before (a record exported twice, with --id-col): taken once
    out["duplicate_events"] = result.duplicates
    out["seconds"] = round(seconds, 3)
    out["events_per_second"] = round(len(actions) / seconds, 1) if seconds > 0 else None
    out["starts"] = result.starts
    if patterns_path is not None and truth is not None:
        out["patterns"] = _pattern_report(
            result, read_spmf_patterns(patterns_path), truth, truth_actions or actions
        )
    out["routines"] = [
        {
            "rank": r.candidate.rank,
            "candidate_id": r.candidate.candidate_id,
            "routine": r.candidate.routine,
            "occurrences": r.candidate.occurrences,
            "score": r.candidate.score,
            "priority": r.candidate.priority,
            "estimated_hours_saved_per_year": r.candidate.estimated_hours_saved_per_year,
            "occurrence_event_ids": r.occurrences,
        }
        for r in result.routines
    ]
    return out


def _pattern_report(
    result: DiscoveryResult, patterns: list[list[str]], truth: Truth, truth_actions: Sequence[UserAction]
) -> list[dict[str, Any]]:
    """Best Jaccard of each known routine pattern (Leno labels) with the discovered routines."""
    leno = {a.event_id: leno_label(a) for a in truth_actions}
    m = truth.mapping
    sets: list[set[str]] = []
    for r in result.routines:
        per_step: list[Counter[str]] = [Counter() for _ in r.candidate.routine]
        for occ in r.step_occurrences:
            for k, eid in enumerate(occ):
                if eid is None:
                    continue
                tid = m.get(eid) if m is not None else eid
                if tid is not None and tid in leno:
                    per_step[k][leno[tid]] += 1
        sets.append({c.most_common(1)[0][0] for c in per_step if c})
    report = []
    for p in patterns:
        ps = set(p)
        scores = [jaccard(ps, s) for s in sets]
        best = max(range(len(scores)), key=lambda i: scores[i]) if scores else None
        report.append(
            {
                "pattern_length": len(p),
                "best_jaccard": round(scores[best], 4) if best is not None else 0.0,
                "best_rank": result.routines[best].candidate.rank if best is not None else None,
            }
        )
    return report


def evaluate_mixed(
    paths: Sequence[Path],
    *,
    noise_rate: float,
    seed: int = 3,
    per_log: int = 300,
    config: DiscoveryConfig | None = None,
) -> dict[str, Any]:
    """Interleave the instances of several labelled Bosco logs, inject noise, discover and score."""
    from rote.discovery.streams import group_instances, mix

    ab = (config or DiscoveryConfig()).abstraction
    logs = []
    for p in paths:
        actions, records = _load(p, "bosco", None, "mix")
        inst = {
            a.event_id: r.labels["instance"]
            for a, r in zip(actions, records, strict=True)
            if "instance" in r.labels
        }
        logs.append(group_instances(actions, inst)[:per_log])
    stream = mix(logs, seed=seed, noise_rate=noise_rate)
    actions = [x.action for x in stream]
    truth = Truth(
        instance_of={x.action.event_id: x.instance for x in stream if x.instance is not None},
        label_of={a.event_id: ab.label(a) for a in actions},
        universe={a.event_id for a in actions},
    )
    result = discover(actions, config)
    out = score_result(result, truth)
    out.update(events=len(actions), routines=len(result.routines), starts=result.starts)
    return out
