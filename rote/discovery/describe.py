"""Names, variant notes and standard operating procedures (SOPs) for routines, in plain language.

Why: a routine called "getCell:Sheet1!A … clickLink:Add another response (48 steps)" means nothing to the
person who does it every day. What they recognise is the documents and forms involved and the data that
flows between them: "Copy a record from StudentRecords.xlsx into the NewRecord form". Everything here is
derived from the candidate's own steps (applications, workbooks, sheets, columns, fields, pages) and from
its parameters (which value flows from which step; what format the values have), deterministically and
without any external service, so the same routine always reads the same.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rote.privacy.tokens import REDACTED_RE
from rote.streams.schemas import UNKNOWN_APP, RoutineInstance, RoutineStep

MAX_NAME = 300
MAX_NOTE = 500
MAX_LINE = 500

_COPY = ("copy", "copycell", "copyrange", "getcell", "getrange", "readcell")
_TYPE = (
    "paste",
    "editfield",
    "insertvalue",
    "type",
    "typetext",
    "input",
    "setvalue",
    "fill",
    "insertboolvalue",
)
_CLICK = ("click", "press", "select", "check", "choose", "submit")
_OPEN = ("openfile", "openworkbook", "open", "savefile", "save", "closefile")
_NAV = ("gotourl", "navigate", "navigate_to", "openurl", "createnewtab", "waitresponse")

#: two numbers and a year: day first or month first, as the values show (`_date_order`)
_NUMERIC_DATE = re.compile(r"^(\d{2})([-/.])(\d{2})\2\d{4}$")
_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "YYYY-MM-DD"),
    (re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"), "an e-mail address"),
    (re.compile(r"^\+?[\d\s().-]{7,}$"), "a phone number"),
    (re.compile(r"^-?\d+$"), "a whole number"),
    (re.compile(r"^-?\d+[.,]\d+$"), "a decimal number"),
)


@dataclass(frozen=True)
class Description:
    name: str
    variant_note: str | None
    sop: list[str] = field(default_factory=list)


def _kind(action_type: str) -> str:
    t = action_type.casefold()
    for kind, names in (("copy", _COPY), ("type", _TYPE), ("open", _OPEN), ("nav", _NAV)):
        if t in names:
            return kind
    if t.startswith(_CLICK):
        return "click"
    if t.startswith(("paste", "insert", "edit", "type")):
        return "type"
    if t.startswith(("copy", "get")):
        return "copy"
    return "other"


def _humanize(text: str) -> str:
    """``Address_AddressLine1`` -> ``Address AddressLine1``; ``www_webpage_com`` -> ``www webpage com``."""
    t = re.sub(r"[_\s]+", " ", text).strip()
    return t[:80]


def _page(url: str | None) -> str | None:
    """A form's or page's name from its URL: the last meaningful path segment, else the host."""
    if not url:
        return None
    text = url.split("?", 1)[0].split("#", 1)[0]
    text = re.sub(r"^[a-z]+://", "", text).rstrip("/")
    parts = [p for p in text.split("/") if p]
    if not parts:
        return None
    for seg in reversed(parts[1:]):
        if not seg.isdigit() and len(seg) > 1:
            return seg
    return parts[0]


def _document(step: RoutineStep) -> str | None:
    t = step.target
    return t.workbook or t.file


def _where(step: RoutineStep) -> str:
    """Where a step acts, in words."""
    t = step.target
    if t.column:
        sheet = f" of {t.sheet}" if t.sheet else ""
        doc = f" in {t.workbook}" if t.workbook else ""
        return f"column {t.column}{sheet}{doc}"
    if t.cell:
        return f"cell {t.cell}" + (f" of {t.sheet}" if t.sheet else "")
    if t.field:
        return _humanize(t.field)
    if t.title:
        return f'"{_humanize(t.title)}"'
    if t.element:
        return f'"{_humanize(t.element)}"'
    if t.workbook or t.file:
        return str(t.workbook or t.file)
    if t.url:
        return _page(t.url) or t.url
    key = step.label.split(":", 1)[1] if ":" in step.label else ""
    app = step.app if step.app != UNKNOWN_APP else ""
    return _humanize(key) if key else app or "the screen"


def value_format(values: Sequence[str | None]) -> str | None:
    """The format all observed values share (DD-MM-YYYY, an e-mail address, ...), if any."""
    vals = [v.strip() for v in values if v and v.strip()]
    if len(vals) < 2:
        return None
    dated = _date_order(vals)
    if dated is not None:
        return dated
    for pattern, text in _FORMATS:
        if all(pattern.match(v) for v in vals):
            return text
    return None


def _date_order(vals: Sequence[str]) -> str | None:
    """`DD/MM/YYYY` or `MM/DD/YYYY` (with the values' separator) when a value shows which number is the day
    (one above 12); `NN/NN/YYYY` when none does. Every such date was called DD/MM/YYYY, and a US user's due
    dates (11/27/2026) were described as day first. Dotted dates (`16.11.2026`) are day first; they were
    described as phone numbers."""
    matches = [_NUMERIC_DATE.match(v) for v in vals]
    if not all(matches):
        return None
    seps = {m.group(2) for m in matches if m}
    if len(seps) != 1:
        return None
    sep = seps.pop()
    firsts = [int(m.group(1)) for m in matches if m]
    seconds = [int(m.group(3)) for m in matches if m]
    day_first = any(a > 12 for a in firsts) and all(b <= 12 for b in seconds)
    month_first = any(b > 12 for b in seconds) and all(a <= 12 for a in firsts)
    if sep == "." and all(b <= 12 for b in seconds):
        day_first = True  # dotted dates are day first wherever they are written (16.11.2026)
    order = "DD{0}MM{0}YYYY" if day_first else "MM{0}DD{0}YYYY" if month_first else None
    if order is None:
        return f"a date (NN{sep}NN{sep}YYYY)"
    return order.format(sep)


def _step_values(instances: Sequence[RoutineInstance], k: int) -> list[str | None]:
    return [inst.values[k] if k < len(inst.values) else None for inst in instances]


def _origin(steps: Sequence[RoutineStep], k: int) -> int:
    """Follow a value back through the steps that only pass it on (a clipboard copy) to where it came from."""
    seen = {k}
    while True:
        p = steps[k].parameter
        if p is None or p.kind != "derived" or p.source_step is None or not 0 <= p.source_step < len(steps):
            return k
        if p.source_step in seen:
            return k
        k = p.source_step
        seen.add(k)


def sop_lines(steps: Sequence[RoutineStep], instances: Sequence[RoutineInstance]) -> list[str]:
    """One numbered plain-language line per step, with where each value comes from."""
    lines: list[str] = []
    for k, step in enumerate(steps):
        kind = _kind(step.action_type)
        where = _where(step)
        app = f"In {step.app}, " if step.app and step.app != UNKNOWN_APP else ""  # no "In unknown, ..."
        p = step.parameter
        fmt = value_format(_step_values(instances, k)) if p is not None and p.kind != "constant" else None
        as_fmt = f", as {fmt}," if fmt else ""
        if kind == "copy":
            varies = " (the row changes each time)" if step.target.column and not step.target.cell else ""
            text = f"{app}copy the value from {where}{varies}"
        elif kind == "type":
            verb = "paste" if step.action_type.casefold().startswith("paste") else "type"
            if p is None:
                text = f"{app}{verb} into {where}"
            elif p.kind == "derived" and p.source_step is not None and 0 <= p.source_step < len(steps):
                src = steps[_origin(steps, p.source_step)]
                text = f"{app}{verb} the value from {_where(src)}{as_fmt} into {where}"
            elif p.kind == "constant":
                text = f"{app}{verb} {_constant(p.constant or '')} into {where}"
            else:
                text = f"{app}{verb} the {where} value{as_fmt} into {where} (it varies: supplied each time)"
        elif kind == "click":
            text = f"{app}click {where}"
        elif kind == "open":
            text = f"{app}{step.action_type.replace('File', '').lower() or 'open'} {where}"
        elif kind == "nav":
            verb = "wait for" if step.action_type.casefold() == "waitresponse" else "go to"
            text = f"{app}{verb} {_page(step.target.url) or where}"
        else:
            text = f"{app}{_humanize(step.action_type)} on {where}"
        if step.optional:
            text += " (only sometimes)"
        if not app:
            text = text[:1].upper() + text[1:]
        lines.append(f"{k + 1}. {text}"[:MAX_LINE])
    return lines[:200]


#: What a redaction token stands for, in words (`rote.privacy.tokens`).
_TOKEN_WORDS = {
    "email": "e-mail address",
    "phone": "phone number",
    "card": "card number",
    "iban": "IBAN",
    "ip": "IP address",
    "mac": "MAC address",
    "password": "password",
    "secret": "secret",
}


def _constant(value: str) -> str:
    """A value typed the same every time, quoted; one that is wholly a pseudonym or marker (`<email:1a10…>`)
    in words: the SOP is for people, who cannot read the token (and the value is private)."""
    token = value.strip()
    if REDACTED_RE.fullmatch(token) is None:
        return f'"{value[:60]}"'
    words = _TOKEN_WORDS.get(token[1:].split(":", 1)[0].rstrip(">"), "national id number")
    return f"the same {words} each time (kept private)"


def routine_name(steps: Sequence[RoutineStep]) -> str:
    """ "Copy a record from StudentRecords.xlsx into the NewRecord form", or the closest we can say."""
    kinds = [_kind(s.action_type) for s in steps]
    docs = Counter(d for s in steps if (d := _document(s)))
    pages = Counter(p for s in steps if s.app and (p := _page(s.target.url)))
    fields = [s.target.field for s, kd in zip(steps, kinds, strict=True) if kd == "type" and s.target.field]
    apps = list(dict.fromkeys(s.app for s in steps if s.app and s.app != UNKNOWN_APP))
    doc = docs.most_common(1)[0][0] if docs else None
    page = pages.most_common(1)[0][0] if pages else None
    flows = sum(
        1
        for s in steps
        if s.parameter is not None and s.parameter.kind == "derived" and _kind(s.action_type) == "type"
    )
    n_fields = len(set(fields))
    if "copy" in kinds and ("type" in kinds or flows):
        src = f" from {doc}" if doc else (f" from {apps[0]}" if apps else "")
        dst = f" into the {_humanize(page)} form" if page else (f" into {apps[-1]}" if len(apps) > 1 else "")
        what = f"a record ({n_fields} fields)" if n_fields > 1 else "a value"
        name = f"Copy {what}{src}{dst}"
    elif "type" in kinds and page:
        name = f"Fill in the {_humanize(page)} form ({n_fields} fields)" if n_fields else f"Fill in {page}"
    elif "type" in kinds and fields:
        shown = ", ".join(_humanize(f) for f in list(dict.fromkeys(fields))[:3])
        name = f"Enter {shown}" + (f" in {apps[0]}" if apps else "")
    elif doc:
        name = f"Work on {doc}" + (f" in {apps[0]}" if apps else "")
    else:
        ends = [(_humanize(st.action_type), _where(st)) for st in (steps[0], steps[-1])]
        name = " … ".join(act if where == "the screen" else f"{act} {where}" for act, where in ends)
    return f"{name} ({len(steps)} steps)"[:MAX_NAME]


def variant_note(steps: Sequence[RoutineStep], others: Sequence[Sequence[str]]) -> str | None:
    """What tells this variant apart from the user's most similar other variant (None if there is none)."""
    mine = [s.label for s in steps]
    ms = set(mine)
    best: Sequence[str] | None = None
    best_j = 0.0
    for o in others:
        os_ = set(o)
        j = len(ms & os_) / len(ms | os_) if ms | os_ else 0.0
        if j > best_j or (j == best_j and best is not None and list(o) < list(best)):
            best, best_j = o, j
    if best is None or best_j < 0.5:
        return None
    extra = [s for s in steps if s.label not in set(best)]
    missing = [lab for lab in dict.fromkeys(best) if lab not in ms]
    parts = []
    if extra:
        shown = "; ".join(f"{_humanize(s.action_type)} {_where(s)}" for s in extra[:4])
        more = f" and {len(extra) - 4} more" if len(extra) > 4 else ""
        parts.append(f"also does {shown}{more}")
    if missing:
        shown = "; ".join(_humanize(lab.replace(":", " ")) for lab in missing[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        parts.append(f"skips {shown}{more}")
    if parts:
        # steps both have, done a different number of times (a retried log-in is five steps again, not
        # one: "skips waitResponse …/error" alone hid that the variants differ by a whole retry)
        counts, theirs = Counter(mine), Counter(best)
        for word, pick in (("fewer", lambda a, b: a < b), ("more", lambda a, b: a > b)):
            labs = [lab for lab in dict.fromkeys(best) if lab in ms and pick(counts[lab], theirs[lab])]
            if labs:
                shown = "; ".join(_humanize(lab.replace(":", " ")) for lab in labs[:3])
                more = f" and {len(labs) - 3} more" if len(labs) > 3 else ""
                parts.append(f"does {shown}{more} {word} times")
    if not parts:
        parts.append(_same_labels(mine, list(best)))
    # "the 14-step variant" beside a 14-step routine reads as itself (a new user's run summary)
    which = f"other {len(best)}-step" if len(best) == len(mine) else f"{len(best)}-step"
    return (f"Unlike the {which} variant: " + ", ".join(parts))[:MAX_NOTE]


def _same_labels(mine: list[str], best: list[str]) -> str:
    """How two variants with the same actions differ: a prefix (a routine seen stopping early), a longer run,
    the same steps reordered, or steps repeated a different number of times."""
    if mine == best[: len(mine)]:
        return f"stops after its first {len(mine)} steps"
    if best == mine[: len(best)]:
        more = len(mine) - len(best)
        return f"goes on for {more} more step{'s' if more > 1 else ''}"
    if sorted(mine) == sorted(best):
        return "same steps in another order"
    return "repeats some of its steps a different number of times"


def describe(
    steps: Sequence[RoutineStep], instances: Sequence[RoutineInstance], others: Sequence[Sequence[str]]
) -> Description:
    return Description(
        name=routine_name(steps) if steps else "",
        variant_note=variant_note(steps, others),
        sop=sop_lines(steps, instances),
    )
