"""Finding personal identifiers and secrets in free text: candidate patterns, then validation.

Each detector is a regular expression that proposes candidates generously (any separators, embedded in
longer text) and a check that keeps only real identifiers (Luhn, mod 97, national check digits, address
parsers, phone number shapes; see `checks`). Detectors run in priority order and the first to claim a span
keeps it, so a card number is not also read as a phone number, and the password in
`https://bob:pw@host` is not read as an e-mail `pw@host`.

Cost matters more than elegance here: this runs on every action at capture and again at ingress. Each
detector has a gate (a digit count, a character that must be present) computed with C-level string
operations, and the regular expressions only run where the gate passes; the `Redactor` also remembers
which strings held nothing, since application names, field labels and URLs repeat endlessly.

`context` is what the field around a value says it holds (see `labels`): a bare digit run is not a phone
number in general, but it is in a field labelled "Mobile".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rote.privacy import checks
from rote.privacy.tokens import SECRET_MARKER, redacted_spans

#: The classes a deployment can switch on and off (the password class is decided by field, in `labels`).
TEXT_CLASSES: tuple[str, ...] = ("secret", "email", "iban", "national_id", "card", "ip", "phone")


@dataclass(frozen=True, slots=True)
class Finding:
    """A span of text that must be replaced: by a pseudonym of `normalised`, or by `marker`."""

    start: int
    end: int
    cls: str
    kind: str
    normalised: str | None = None
    marker: str | None = None


_DIGITS = str.maketrans("", "", "0123456789")


def digit_count(text: str) -> int:
    return len(text) - len(text.translate(_DIGITS))


# ------------------------------------------------------------------------------------------------------
# secrets: replaced by a marker, never pseudonymised
# ------------------------------------------------------------------------------------------------------

_SECRET_GATE = re.compile(
    r"://[^\s/@]*:[^\s/@]*@|(?i:pass|pwd|pin|secret|token|key|session|authorization|signature)[\w\-]*\s*[=:]"
    r"|(?i:[?&;](?:pw|kennwort)=)"
    r"|eyJ|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abprs]-|PRIVATE KEY|[Bb]earer|[Bb]asic "
    r"|[sr]k_(?:live|test)_|AIza"
)
#: Each pattern's group 1 is what is replaced (the whole match when it has no group).
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # the password in URL userinfo: scheme://user:PASSWORD@host
    re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{0,15}://[^\s/:@]{0,128}:([^\s/@]{1,256})@"),
    # key=value and key: value pairs whose key names a credential (query strings, config text, chat)
    re.compile(
        r"(?i)(?<![a-z0-9])(?:password|passwd|pwd|passphrase|passcode|pin|secret|client_secret|token"
        r"|access_token|refresh_token|id_token|auth_token|api[_\-]?key|apikey|private_key|session_?id"
        r"|authorization|signature)\s*[=:]\s*[\"']?(?!(?:[Bb]earer|[Bb]asic)\s)([^\s&;\"',]{3,512})"
    ),
    # short or common words as the key of a URL query parameter only (`?pw=…&`, `&key=…`)
    re.compile(r"(?i)[?&;](?:pw|pass|passwort|kennwort|key)=([^\s&;#\"']{3,512})"),
    re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    # HTTP authorization values: a long token with both letters and digits after Bearer/Basic
    re.compile(
        r"\b(?:[Bb]earer|[Bb]asic)\s+((?=[A-Za-z0-9\-._~+/]*\d)(?=[A-Za-z0-9\-._~+/]*[A-Za-z])"
        r"[A-Za-z0-9\-._~+/]{12,}=*)"
    ),
)


def _secrets(text: str, _ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if _SECRET_GATE.search(text) is None:
        return
    for pattern in _SECRET_PATTERNS:
        for m in pattern.finditer(text):
            g = 1 if m.re.groups else 0
            if m.start(g) < 0:
                continue
            if m.group(g).startswith("<"):  # already a token or marker
                continue
            yield Finding(m.start(g), m.end(g), "secret", "secret", marker=SECRET_MARKER)


# ------------------------------------------------------------------------------------------------------
# e-mail
# ------------------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+'\-])[\w.+'\-]{1,64}(?:@|%40)(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w\-])"
)


def _emails(text: str, _ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if "@" not in text and "%40" not in text:
        return
    for m in _EMAIL.finditer(text):
        norm = m.group().replace("%40", "@").lower()
        yield Finding(m.start(), m.end(), "email", "email", normalised=norm)


# ------------------------------------------------------------------------------------------------------
# IBAN
# ------------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){11,32}")


def _ibans(text: str, _ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if len(text) < 15 or n_digits < 6:
        return
    for m in _IBAN.finditer(text):
        # The candidate may run on into following words; try the longest prefix that is a valid IBAN
        # and ends where a group ends.
        positions = [m.start() + i for i, ch in enumerate(m.group()) if ch.isalnum()]
        compact = "".join(ch for ch in m.group() if ch.isalnum()).upper()
        for n in checks.iban_prefix_lengths(compact):
            end = positions[n - 1] + 1
            if end < len(text) and text[end].isalnum():
                continue
            if checks.iban_ok(compact[:n]):
                yield Finding(m.start(), end, "iban", "iban", normalised=compact[:n])
                break


# ------------------------------------------------------------------------------------------------------
# payment cards
# ------------------------------------------------------------------------------------------------------

_CARD = re.compile(r"(?<!\w)(?<!\d[.,])\d(?:[ \-]?\d){11,22}(?!\w)(?![.,]\d)")
_GROUP = re.compile(r"\d+")


def _cards(text: str, ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if n_digits < 12:
        return
    relaxed = "card" in ctx
    for m in _CARD.finditer(text):
        found = _card_in(m.group(), relaxed)
        if found is not None:
            yield Finding(m.start() + found[0], m.start() + found[1], "card", "card", normalised=found[2])


def _card_in(candidate: str, relaxed: bool) -> tuple[int, int, str] | None:
    """The longest run of whole digit groups in `candidate` that is a card number, as (start, end,
    digits): "4111 1111 1111 1111 2027" is a card and a year. Windows hold 12-19 digits and, unless the
    field says card, at most five groups (4-4-4-4-3), so a hostile run of single digits costs little."""
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(candidate)]
    ends = [0]
    for a, b in groups:
        ends.append(ends[-1] + b - a)
    max_size = len(groups) if relaxed else min(len(groups), 5)
    for size in range(max_size, 0, -1):
        for i in range(len(groups) - size + 1):
            n = ends[i + size] - ends[i]
            if not 12 <= n <= 19:
                continue
            a, b = groups[i][0], groups[i + size - 1][1]
            piece = candidate[a:b]
            seps = {ch for ch in piece if not ch.isdigit()}
            if len(seps) > 1:
                continue
            # part of a longer hyphenated code (cost centre 01-4450-00-5687-...) is not a card
            if size < len(groups) and "-" in candidate[max(a - 1, 0) : a] + candidate[b : b + 1]:
                continue
            if not relaxed and not _card_layout([e - s for s, e in groups[i : i + size]]):
                continue
            digits = piece.replace(" ", "").replace("-", "")
            if checks.card_ok(digits, any_prefix=relaxed):
                return a, b, digits
    return None


def _card_layout(lengths: list[int]) -> bool:
    """How card numbers are printed: one run, fours with a shorter tail (Visa, Mastercard, Discover, 19-digit
    cards), or 4-6-5 / 4-6-4 (Amex, Diners)."""
    if len(lengths) == 1:
        return True
    if lengths in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4


# ------------------------------------------------------------------------------------------------------
# national id numbers
# ------------------------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w\-])(\d{3})([\- ])(\d{2})\2(\d{4})(?![\w\-])")
_SSN_BARE = re.compile(r"(?<!\w)(\d{3})(\d{2})(\d{4})(?!\w)")
_SSN_CUE = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?)?)\s*[:#=]?\s*$")
_NINO = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![A-Za-z0-9])")
_CPF = re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w])")
_DNI = re.compile(r"(?<!\w)\d{8}-?[A-Za-z](?!\w)")
_NIE = re.compile(r"(?<!\w)[XYZxyz]-?\d{7}-?[A-Za-z](?!\w)")
_OMO = "[0-9LMNPQRSTUVlmnpqrstuv]"  # digits, or the letters that replace them in homocodic codes
_CF = re.compile(
    rf"(?<![A-Za-z0-9])[A-Za-z]{{6}}{_OMO}{{2}}[A-Za-z]{_OMO}{{2}}[A-Za-z]{_OMO}{{3}}[A-Za-z](?![A-Za-z0-9])"
)
_AADHAAR = re.compile(r"(?<![\w\-])[2-9]\d{3}([ \-])\d{4}\1\d{4}(?![\w\-])")
_SIN = re.compile(r"(?<![\w\-])\d{3}([ \-])\d{3}\1\d{3}(?![\w\-])")
_NIR = re.compile(
    r"(?<!\w)[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}(?!\w)"
)

_NATIONAL: tuple[tuple[str, re.Pattern[str], Callable[[str], bool], int], ...] = (
    ("cpf", _CPF, checks.cpf_ok, 11),
    ("nie", _NIE, checks.nie_ok, 7),
    ("dni", _DNI, checks.dni_ok, 8),
    ("cf", _CF, checks.codice_fiscale_ok, 0),
    ("aadhaar", _AADHAAR, checks.aadhaar_ok, 12),
    ("nir", _NIR, checks.nir_ok, 13),
    ("sin", _SIN, checks.sin_ok, 9),
)


def _compact(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum()).upper()


def _national(text: str, ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if n_digits < 6 and not ("L" in text.upper() and len(text) >= 16):  # homocodic codici fiscali
        return
    if n_digits >= 9:
        for m in _SSN.finditer(text):
            if checks.ssn_ok(m.group(1), m.group(3), m.group(4)):
                yield Finding(m.start(), m.end(), "national_id", "ssn", normalised=_compact(m.group()))
        for m in _SSN_BARE.finditer(text):
            cued = "ssn" in ctx or _SSN_CUE.search(text, 0, m.start()) is not None
            if cued and checks.ssn_ok(m.group(1), m.group(2), m.group(3)):
                yield Finding(m.start(), m.end(), "national_id", "ssn", normalised=m.group())
    if n_digits >= 6:
        for m in _NINO.finditer(text):
            compact = _compact(m.group())
            if checks.nino_ok(compact):
                yield Finding(m.start(), m.end(), "national_id", "nino", normalised=compact)
    for kind, pattern, ok, min_digits in _NATIONAL:
        if n_digits < min_digits:
            continue
        for m in pattern.finditer(text):
            if ok(m.group()):
                yield Finding(m.start(), m.end(), "national_id", kind, normalised=_compact(m.group()))


# ------------------------------------------------------------------------------------------------------
# IP and MAC addresses
# ------------------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w)(?!\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[\w.]{1,16})?(?![\w:])")
_MAC = re.compile(r"(?<![\w:\-])[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:\-])")


def _network(text: str, _ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if n_digits >= 4 and "." in text:
        for m in _IPV4.finditer(text):
            norm = checks.ip_normalised(m.group())
            if norm is not None:
                yield Finding(m.start(), m.end(), "ip", "ip", normalised=norm)
    colons = text.count(":")
    if colons >= 2:
        for m in _IPV6.finditer(text):
            norm = checks.ip_normalised(m.group())
            if norm is not None:
                yield Finding(m.start(), m.end(), "ip", "ip", normalised=norm)
    if colons >= 5 or text.count("-") >= 5:
        for m in _MAC.finditer(text):
            yield Finding(m.start(), m.end(), "ip", "mac", normalised=m.group().lower().replace("-", ":"))


# ------------------------------------------------------------------------------------------------------
# phone numbers
# ------------------------------------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w+(])(?<!\d[.,/:\-])"  # not inside a word, a number, a date or a ratio
    # one digit run per group, groups joined by a separator or after a ')': a run of digits can be read
    # only one way, so a long run that fails does not backtrack through every way to cut it
    r"(?:\(?(?:\+|00))?\(?\d{1,15}\)?(?:(?:[ .\-\u00a0]{1,2}|(?<=\)))\(?\d{1,8}\)?){0,7}"
    r"(?!\w)(?![.,/:\-]\d)"
)
_PHONE_SEP = re.compile(r"[ .\-\u00a0()]+")
_NONDIGIT = re.compile(r"\D")
_THOUSANDS = re.compile(r"^\d{1,3}(?:[ .\u00a0]\d{3})+$")
_YEAR_SERIAL = re.compile(r"^(?:19|20)\d\d[-/]\d")


def _joined_on(text: str, at: int) -> bool:
    """Letters joined on before position `at` by a dash, underscore, slash or hash (`RE-`, `INV_`)."""
    return at >= 2 and text[at - 1] in "-_/#" and text[at - 2].isalpha()


#: "Tel: 0412345678": a bare digit run right after a phone word is a phone number.
_PHONE_CUE = re.compile(
    r"(?i)(?:phone|tel|mobile|mob|cell|fax|call|whatsapp)[a-z]*\.?\s*(?:no\.?|nr\.?|#)?\s*[:=]?\s*$"
)


def _phones(text: str, ctx: frozenset[str], n_digits: int) -> Iterator[Finding]:
    if n_digits < 7:
        return
    relaxed = "phone" in ctx
    for m in _PHONE.finditer(text):
        t = m.group()
        digits = _NONDIGIT.sub("", t)
        bare = t.lstrip("(")
        intl = bare.startswith("+") or (
            bare.startswith("00") and bare[2:3] not in ("0", "") and len(t) > len(digits)
        )
        if intl:
            core = digits[2:] if bare.startswith("00") else digits
            if not 8 <= len(core) <= 15:
                continue
            norm = "+" + core
        else:
            n = len(digits)
            if relaxed or (t.isdigit() and _PHONE_CUE.search(text, 0, m.start()) is not None):
                if not 7 <= n <= 15:
                    continue
            else:
                groups = [g for g in _PHONE_SEP.split(t) if g]
                if not 9 <= n <= 12 or (len(groups) < 2 and "(" not in t):
                    continue
                if checks.starts_with_date(t) or any(len(g) > 8 for g in groups):
                    continue
                # long subscriber groups ("030 56405440", "07700 975818") only after a trunk 0 or an area
                # code in parentheses: "2019 123456" is not a phone number
                if any(len(g) > 5 for g in groups[1:]) and not (t[0] in "0(" and 2 <= len(groups[0]) <= 5):
                    continue
                if len(groups[0]) > 5:
                    continue
                if t[0] != "0" and _THOUSANDS.match(t):  # 12 345 678: an amount, not a phone
                    continue
                # a file or case number: a year, then a serial number ("2026-57613", "RE-2026-57613"), also
                # with more groups when letters are joined on ("INV-2026-123-456"); a phone number after
                # letters ("Tel-0171 2345678", "Mobil-0171-2345678") begins with its trunk 0 and stays one
                if _YEAR_SERIAL.match(t) and (len(groups) == 2 or _joined_on(text, m.start())):
                    continue
                dots_only = "(" not in t and " " not in t and "-" not in t and "\u00a0" not in t
                if dots_only and (n < 10 or any(len(g) < 2 for g in groups)):  # 1.2.3.4567: a version
                    continue
            norm = digits
        yield Finding(m.start(), m.end(), "phone", "phone", normalised=norm)


# ------------------------------------------------------------------------------------------------------
# the scan
# ------------------------------------------------------------------------------------------------------

#: Detectors in priority order (earlier ones win overlapping spans).
DETECTORS: tuple[tuple[str, Callable[[str, frozenset[str], int], Iterator[Finding]]], ...] = (
    ("secret", _secrets),
    ("email", _emails),
    ("iban", _ibans),
    ("national_id", _national),  # before cards: its check digits are stronger than Luhn's 1 in 10
    ("card", _cards),
    ("ip", _network),
    ("phone", _phones),
)

#: Whether a text is worth scanning at all: every detector needs a digit, '@', an encoded '@', or one of
#: the secret gates' characters.
_WORTH_SCANNING = re.compile(r"[0-9@=:]|%40|earer|asic |PRIVATE KEY")


def scan(text: str, classes: frozenset[str], context: frozenset[str] = frozenset()) -> list[Finding]:
    """Non-overlapping findings of the enabled `classes` in `text`, left to right.

    Secrets are claimed first (the password in `https://bob:pw@host` is not an e-mail `pw@host`); the
    other candidates then by length, longest first, ties by detector order: a 16-digit card whose first
    12 digits happen to pass Aadhaar's check is one card, not an Aadhaar number followed by four digits
    left in clear. Tokens and markers already in the text are left alone, so scanning redacted text
    finds nothing.
    """
    if not text or _WORTH_SCANNING.search(text) is None:
        return []
    taken = redacted_spans(text)
    candidates: list[tuple[int, int, Finding]] = []
    n_digits = digit_count(text)
    for order, (cls, detector) in enumerate(DETECTORS):
        if cls not in classes:
            continue
        for f in detector(text, context, n_digits):
            length = 1 << 30 if cls == "secret" else f.end - f.start
            candidates.append((-length, order, f))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c[0], c[1], c[2].start))
    found: list[Finding] = []
    for _, _, f in candidates:
        if any(f.start < b and a < f.end for a, b in taken):
            continue
        taken.append((f.start, f.end))
        found.append(f)
    found.sort(key=lambda f: f.start)
    return found
