"""Build `bosco_log1_pm.csv` and `bosco_log1.xes` from `bosco_log1_300.csv`: the same 300 events as a
process-mining tool would export them.

The CSV has the column names pm4py, Disco and Celonis write (``case:concept:name``, ``concept:name``,
``time:timestamp``, ``org:resource``, ``lifecycle:transition``) with the activity flattened into one label as
such tools do (action, field and application, e.g. ``paste_Special code_Web``); the XES file (IEEE 1849)
holds the same events as one trace per case, with the standard extensions declared, a global default, and
each trace's case id as a trace attribute. Deterministic.

Usage: python make_pm_xes.py  (writes beside this file)
"""

from __future__ import annotations

import csv
from pathlib import Path
from xml.sax.saxutils import quoteattr

HERE = Path(__file__).resolve().parent
RESOURCE = "clerk-7"


def _label(row: dict[str, str]) -> str:
    parts = [row["eventType"], row.get("Label") or row.get("Column") or "", row["source"]]
    return "_".join(p for p in parts if p)


def build() -> None:
    with (HERE / "bosco_log1_300.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    extra = ["Value", "Url", "Sheet"]
    with (HERE / "bosco_log1_pm.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        pm = ["case:concept:name", "concept:name", "time:timestamp", "org:resource", "lifecycle:transition"]
        writer.writerow([*pm, *extra])
        for row in rows:
            stamp = row["timeStamp"].replace("T", " ").replace("Z", "+00:00")
            writer.writerow(
                [row["caseID"], _label(row), stamp, RESOURCE, "complete", *(row.get(c, "") for c in extra)]
            )
    out = [
        '<?xml version="1.0" encoding="UTF-8" ?>',
        '<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">',
        '  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>',
        '  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>',
        '  <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>',
        '  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>',
        '  <global scope="event">',
        f'    <string key="org:resource" value="{RESOURCE}"/>',
        "  </global>",
        '  <string key="concept:name" value="bosco log1, first 300 events"/>',
    ]
    cases: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        cases.setdefault(row["caseID"], []).append(row)
    for case, events in cases.items():
        out.append("  <trace>")
        out.append(f'    <string key="concept:name" value={quoteattr(case)}/>')
        for row in events:
            out.append("    <event>")
            out.append(f'      <string key="concept:name" value={quoteattr(_label(row))}/>')
            out.append(f'      <date key="time:timestamp" value={quoteattr(row["timeStamp"])}/>')
            out.append('      <string key="lifecycle:transition" value="complete"/>')
            if row.get("Value"):
                out.append(f'      <string key="Value" value={quoteattr(row["Value"])}/>')
            out.append("    </event>")
        out.append("  </trace>")
    out.append("</log>")
    (HERE / "bosco_log1.xes").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build()
