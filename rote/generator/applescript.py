"""A static checker for AppleScript source, because `osacompile` only exists on macOS.

It is not a full AppleScript compiler (the language's grammar depends on each application's
dictionary); it checks what a quoting or template bug would break: the lexical level (string literals
with only AppleScript's escapes, nested (* *) comments, «chevron» codes, line continuations), bracket
balance per statement, values that sit next to each other without an operator (the tell-tale of a
string that was closed early), handler definitions, and the block structure (tell/if/repeat/try/
considering/ignoring/with timeout/using terms from/on ... with matching `end`). It also evaluates string
expressions (literals joined with `&`, `(character id N)`), which the tests use to prove that a value
embedded in a script means exactly that value.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_OPERATORS = set("&(){},:=+-*/^<>≤≥≠'.")
_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")

#: Words that may follow a value (a string) in an expression or statement; any other word right after a
#: string means the string ended early ("say "hi"" lexes as "say ", hi, "").
WORDS_AFTER_VALUE = {
    "is",
    "isn",
    "isnt",
    "as",
    "and",
    "or",
    "of",
    "in",
    "contains",
    "contain",
    "does",
    "doesn",
    "starts",
    "start",
    "ends",
    "end",
    "begins",
    "begin",
    "equals",
    "equal",
    "comes",
    "come",
    "then",
    "to",
    "thru",
    "through",
    "div",
    "mod",
    "by",
    "from",
    "else",
    "with",
    "without",
    "given",
    "at",
    "into",
    "before",
    "after",
    "not",
    "greater",
    "less",
    "than",
    "using",
    "for",
    "returning",
    "on",
    "onto",
    "over",
    "under",
    "behind",
    "beside",
    "beneath",
    "out",
    "instead",
    "since",
    "apart",
    "around",
    "between",
    "against",
    "whose",
    "where",
    "that",
    "the",
    "are",
    "aren",
    "isn't",
    "ignoring",
    "considering",
}

BLOCK_WORDS = {
    "tell",
    "if",
    "repeat",
    "try",
    "considering",
    "ignoring",
    "timeout",
    "transaction",
    "using",
    "script",
}


@dataclass(frozen=True)
class Token:
    kind: str  # "str" | "num" | "id" | "op" | "chevron" | "nl"
    text: str
    line: int
    value: str = ""


class _LexError(Exception):
    def __init__(self, line: int, msg: str) -> None:
        super().__init__(f"line {line}: {msg}")


def tokenize(source: str) -> list[Token]:
    toks: list[Token] = []
    i, line, n = 0, 1, len(source)
    while i < n:
        ch = source[i]
        if ch in " \t\u00a0":
            i += 1
        elif ch in "\r\n":
            if ch == "\r" and i + 1 < n and source[i + 1] == "\n":
                i += 1
            toks.append(Token("nl", "\n", line))
            line += 1
            i += 1
        elif ch == "¬":  # continuation: the statement goes on after the line break
            j = i + 1
            while j < n and source[j] in " \t":
                j += 1
            if j < n and source[j] == "\r" and j + 1 < n and source[j + 1] == "\n":
                j += 1
            if j >= n or source[j] not in "\r\n":
                raise _LexError(line, "¬ must end the line")
            line += 1
            i = j + 1
        elif source.startswith("--", i) or (ch == "#" and (not toks or toks[-1].kind == "nl")):
            while i < n and source[i] not in "\r\n":
                i += 1
        elif source.startswith("(*", i):
            depth, i = 1, i + 2
            start_line = line
            while depth:
                if i >= n:
                    raise _LexError(start_line, "unterminated (* comment")
                if source.startswith("(*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*)", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += source[i] == "\n"
                    i += 1
        elif ch == '"':
            start_line = line
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise _LexError(start_line, "unterminated string literal")
                c = source[j]
                if c == '"':
                    break
                if c == "\\":
                    if j + 1 >= n or source[j + 1] not in _ESCAPES:
                        raise _LexError(line, f"invalid escape \\{source[j + 1 : j + 2]!s} in string")
                    buf.append(_ESCAPES[source[j + 1]])
                    j += 2
                    continue
                line += c == "\n"
                buf.append(c)
                j += 1
            toks.append(Token("str", source[i : j + 1], start_line, "".join(buf)))
            i = j + 1
        elif ch == "«":
            j = source.find("»", i)
            if j < 0 or "\n" in source[i:j]:
                raise _LexError(line, "unterminated «chevron»")
            toks.append(Token("chevron", source[i : j + 1], line))
            i = j + 1
        elif ch == "|":
            j = source.find("|", i + 1)
            if j < 0 or "\n" in source[i:j]:
                raise _LexError(line, "unterminated |identifier|")
            toks.append(Token("id", source[i : j + 1], line))
            i = j + 1
        elif ch.isdigit():
            m = _NUMBER.match(source, i)
            assert m is not None
            toks.append(Token("num", m.group(0), line))
            i = m.end()
        elif _IDENT_START.match(ch):
            m = _IDENT.match(source, i)
            assert m is not None
            toks.append(Token("id", m.group(0), line))
            i = m.end()
        elif ch in _OPERATORS:
            toks.append(Token("op", ch, line))
            i += 1
        else:
            raise _LexError(line, f"unexpected character {ch!r}")
    return toks


def _statements(toks: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = []
    cur: list[Token] = []
    for t in toks:
        if t.kind == "nl":
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def _words(stmt: list[Token]) -> list[str]:
    return [t.text.lower() for t in stmt if t.kind == "id"]


def _check_statement(stmt: list[Token]) -> list[str]:
    problems: list[str] = []
    line = stmt[0].line
    depth: list[str] = []
    pairs = {")": "(", "}": "{"}
    for t in stmt:
        if t.kind == "op" and t.text in "({":
            depth.append(t.text)
        elif t.kind == "op" and t.text in ")}":
            if not depth or depth[-1] != pairs[t.text]:
                problems.append(f"line {t.line}: unbalanced {t.text!r}")
                return problems
            depth.pop()
    if depth:
        problems.append(f"line {line}: unclosed {depth[-1]!r}")
    values = ("str", "num", "chevron")
    for a, b in itertools.pairwise(stmt):
        if a.kind in values and b.kind in values:
            problems.append(
                f"line {b.line}: two values with no operator between them ({a.text[:20]} {b.text[:20]})"
            )
        elif a.kind == "op" and a.text == ")" and b.kind in ("str", "num"):
            problems.append(f"line {b.line}: value right after ')'")
        elif a.kind == "str" and b.kind == "id" and b.text.lower() not in WORDS_AFTER_VALUE:
            problems.append(
                f"line {b.line}: word {b.text[:20]!r} right after a string (a quote closed early?)"
            )
        elif a.kind == "str" and b.kind == "op" and b.text == "(":
            problems.append(f"line {b.line}: '(' right after a string")
        elif a.kind == "op" and b.kind == "op" and a.text == "&" and b.text in "&)},":
            problems.append(f"line {b.line}: '&' with nothing after it")
    if stmt[-1].kind == "op" and stmt[-1].text in "&,(":
        problems.append(f"line {stmt[-1].line}: statement ends with {stmt[-1].text!r}")
    if stmt[0].kind == "op" and stmt[0].text in "&,)":
        problems.append(f"line {line}: statement starts with {stmt[0].text!r}")
    words = _words(stmt)
    if words[:1] == ["set"] and "to" not in words:
        problems.append(f"line {line}: 'set' without 'to'")
    return problems


def _block_of(stmt: list[Token]) -> tuple[str, str | None]:
    """('open', kind) | ('close', kind-or-None) | ('middle', kind) | ('plain', None)."""
    first = stmt[0]
    w = _words(stmt)
    head = first.text.lower() if first.kind == "id" else ""
    if head == "end":
        return ("close", w[1] if len(w) > 1 else None)
    if head in ("on", "to") and len(w) > 1 and w[1] != "error":
        if head == "to" or len(stmt) < 2 or stmt[1].kind != "id":
            return ("plain", None)
        return ("open", "handler:" + stmt[1].text.lower())
    if head == "on" and w[1:2] == ["error"]:
        return ("middle", "try")
    if head == "else":
        return ("middle", "if")
    if head == "if":
        return ("open", "if") if w[-1] == "then" and stmt[-1].kind == "id" else ("plain", None)
    if head == "tell":
        return ("plain", None) if "to" in w[1:] else ("open", "tell")
    if head in ("repeat", "try", "considering", "ignoring"):
        return ("open", head)
    if head == "script" and len(w) > 1:
        return ("open", "script")
    if head == "with" and w[1:2] in (["timeout"], ["transaction"]):
        return ("open", w[1])
    if head == "using" and w[1:3] == ["terms", "from"]:
        return ("open", "using")
    return ("plain", None)


def check(source: str) -> list[str]:
    """Problems found in `source` (empty when it passes)."""
    try:
        toks = tokenize(source)
    except _LexError as exc:
        return [str(exc)]
    problems: list[str] = []
    stack: list[tuple[str, int]] = []
    for stmt in _statements(toks):
        problems.extend(_check_statement(stmt))
        kind, what = _block_of(stmt)
        line = stmt[0].line
        if kind == "open" and what is not None:
            if what.startswith("handler:") and stack:
                problems.append(f"line {line}: handler defined inside a {stack[-1][0]} block")
            if what.startswith("handler:"):
                problems.extend(_check_handler_header(stmt))
            stack.append((what, line))
        elif kind == "middle":
            if not stack or stack[-1][0] != what:
                problems.append(f"line {line}: '{stmt[0].text} ...' outside an {what} block")
        elif kind == "close":
            if not stack:
                problems.append(f"line {line}: 'end' with no open block")
                continue
            top, _ = stack.pop()
            expected = top.split(":", 1)[1] if top.startswith("handler:") else top
            if what is not None and what != expected and not (top.startswith("handler:") and what == "run"):
                problems.append(f"line {line}: 'end {what}' closes a {expected} block")
    for what, line in stack:
        problems.append(f"line {line}: {what} block is never closed")
    return problems


def _check_handler_header(stmt: list[Token]) -> list[str]:
    if len(stmt) == 2:
        return []
    rest = stmt[2:]
    if rest[0].text != "(" or rest[-1].text != ")":
        return []  # labelled-parameter handlers: accepted as written
    inner = rest[1:-1]
    for k, t in enumerate(inner):
        want_id = k % 2 == 0
        if (want_id and t.kind != "id") or (not want_id and t.text != ","):
            return [f"line {t.line}: bad handler parameter list"]
    return []


def string_value(expr: str) -> str:
    """Evaluate a string expression made of literals, `&` and `(character id N)`."""
    toks = [t for t in tokenize(expr) if t.kind != "nl"]
    out: list[str] = []
    i = 0
    expect_value = True
    while i < len(toks):
        t = toks[i]
        if (
            t.kind == "op"
            and t.text in "()"
            and not (t.text == "(" and i + 3 < len(toks) and toks[i + 1].text == "character")
        ):
            i += 1
            continue
        if expect_value:
            if t.kind == "str":
                out.append(t.value)
                i += 1
            elif t.text == "(" and [x.text for x in toks[i + 1 : i + 3]] == ["character", "id"]:
                if i + 4 >= len(toks) or toks[i + 3].kind != "num" or toks[i + 4].text != ")":
                    raise ValueError("bad (character id N)")
                out.append(chr(int(toks[i + 3].text)))
                i += 5
            else:
                raise ValueError(f"not a string expression at {t.text!r}")
            expect_value = False
        else:
            if t.text != "&":
                raise ValueError(f"expected '&', got {t.text!r}")
            expect_value = True
            i += 1
    if expect_value:
        raise ValueError("string expression ends without a value")
    return "".join(out)
