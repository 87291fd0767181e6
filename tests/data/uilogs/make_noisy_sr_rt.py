"""Build `noisy_sr_rt_semicolon.csv`: two real Action Logger routines, interleaved, `;`-separated, with noise.

What a real user's log looks like and rote's own demo log does not: two tasks switched between in blocks (the
first 12 StudentRecord instances and the first 12 Reimbursement instances of Leno et al., four at a
time), unrelated actions in between and inside (mail, news, a worksheet switch, a stray copy), one device
whose clock jumped to 2027 for three rows, and the semicolons a German or French Excel writes. The
Reimbursement blocks are moved onto the StudentRecord day (keeping every gap inside a block) so the file
reads as one working session.

Usage: python make_noisy_sr_rt.py RAW_DIR SEGMENTED_DIR OUT.csv  (the leno-sr-rt folders of the shared data).
Deterministic (seeded), so the committed file can be rebuilt byte for byte.
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

INSTANCES = 12
BLOCK = 4
SEED = 14


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _instance_spans(segmented: Path) -> list[tuple[datetime, datetime]]:
    spans: dict[str, list[datetime]] = {}
    _, rows = _rows(segmented)
    for row in rows:
        spans.setdefault(row["caseID"], []).append(_ts(row["timeStamp"]))
    ordered = sorted((min(v), max(v)) for v in spans.values())
    return ordered


def _blocks(raw: Path, segmented: Path) -> list[list[dict[str, str]]]:
    """The raw rows of each block of BLOCK instances: from a block's first instance start (or the log
    start) to just before the next block's first instance."""
    _, rows = _rows(raw)
    spans = _instance_spans(segmented)[: INSTANCES + 1]
    cuts = [spans[i][0] for i in range(0, INSTANCES + 1, BLOCK)]
    # the getCell that starts an instance is logged a moment before the segmented log's copyCell
    cuts = [c - timedelta(seconds=2) for c in cuts]
    cuts[0] = datetime.min.replace(tzinfo=UTC)
    out: list[list[dict[str, str]]] = [[] for _ in range(len(cuts) - 1)]
    for row in rows:
        t = _ts(row["timeStamp"])
        for i in range(len(cuts) - 1):
            if cuts[i] <= t < cuts[i + 1]:
                out[i].append(row)
                break
    return out


NOISE = [
    {"targetApp": "Chrome", "eventType": "navigate_to", "url": "https://mail.example.com/inbox"},
    {
        "targetApp": "Chrome",
        "eventType": "clickLink",
        "url": "https://mail.example.com/inbox",
        "target.innerText": "Re: timetable",
        "target.tagName": "A",
    },
    {"targetApp": "Chrome", "eventType": "navigate_to", "url": "https://news.example.org/"},
    {
        "targetApp": "Excel",
        "eventType": "selectWorksheet",
        "target.workbookName": "Budget.xlsx",
        "target.sheetName": "Q3",
    },
    {"targetApp": "OS-Clipboard", "eventType": "copy", "content": "see you at 3; room 2.14"},
    {
        "targetApp": "Chrome",
        "eventType": "clickButton",
        "url": "https://calendar.example.com/",
        "target.innerText": "Accept",
        "target.tagName": "BUTTON",
    },
]


def build(raw_dir: Path, seg_dir: Path, out: Path) -> None:
    rng = random.Random(SEED)
    sr_header, _ = _rows(raw_dir / "StudentRecord.csv")
    rt_header, _ = _rows(raw_dir / "Reimbursement.csv")
    header = sr_header + [c for c in rt_header if c not in sr_header]
    sr = _blocks(raw_dir / "StudentRecord.csv", seg_dir / "StudentRecord_segmented.csv")
    rt = _blocks(raw_dir / "Reimbursement.csv", seg_dir / "Reimbursement_segmented.csv")
    user = next(r["userID"] for r in sr[0] if r["userID"])
    rows: list[dict[str, str]] = []
    clock = _ts(sr[0][0]["timeStamp"])
    for sr_block, rt_block in zip(sr, rt, strict=True):
        for block in (sr_block, rt_block):
            start = _ts(block[0]["timeStamp"])
            shift = clock - start
            for row in block:
                moved = dict(row)
                moved["timeStamp"] = _fmt(_ts(row["timeStamp"]) + shift)
                rows.append(moved)
                if rng.random() < 0.03:  # a stray action in the middle of the routine
                    noise = dict(rng.choice(NOISE), userID=user)
                    noise["timeStamp"] = _fmt(_ts(moved["timeStamp"]) + timedelta(milliseconds=300))
                    rows.append(noise)
            clock = _ts(rows[-1]["timeStamp"]) + timedelta(seconds=40)
            for _ in range(rng.randint(2, 5)):  # unrelated work between two blocks
                noise = dict(rng.choice(NOISE), userID=user, timeStamp=_fmt(clock))
                rows.append(noise)
                clock += timedelta(seconds=rng.uniform(3, 20))
            clock += timedelta(minutes=2)
    for k, i in enumerate(sorted(rng.sample(range(len(rows) // 3, len(rows)), 3))):  # a clock gone wrong
        wrong = dict(rng.choice(NOISE), userID=user)
        wrong["timeStamp"] = f"2027-03-0{k + 1}T09:1{k}:00.000Z"
        rows.insert(i, wrong)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, delimiter=";", restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
