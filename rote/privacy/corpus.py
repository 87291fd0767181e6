"""A synthetic corpus of personal identifiers and look-alikes, for recall and precision measurements.

Every value is made up here from a seeded random generator, with valid check digits computed the way the
issuers compute them (python-stdnum's `calc_check_digit` functions, Luhn, mod 97): no real person's data
is in it, and a different seed gives a different corpus of the same shape, so the detectors are not tuned
to one fixed list. Each kind comes in the formats people actually type (grouped, compact, with country
codes, in lower case) and about half the values are embedded in longer text. The negatives are the
numbers UI logs are full of (dates, times, amounts, cell references, order numbers, versions, postcodes)
that must come out unchanged.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from stdnum import iban as std_iban
from stdnum import luhn, verhoeff
from stdnum.br import cpf
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale

#: Kind of a corpus case -> the redaction class that must catch it.
KIND_CLASS: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "card": "card",
    "iban": "iban",
    "ssn": "national_id",
    "nino": "national_id",
    "cpf": "national_id",
    "dni": "national_id",
    "nie": "national_id",
    "codice_fiscale": "national_id",
    "aadhaar": "national_id",
    "sin": "national_id",
    "nir": "national_id",
    "ipv4": "ip",
    "ipv6": "ip",
    "mac": "ip",
    "secret": "secret",
}


@dataclass(frozen=True)
class Case:
    """One text and the identifiers in it (exact substrings) that must not survive redaction."""

    kind: str
    text: str
    pii: tuple[str, ...]
    #: Identifiers of other kinds in the same text (not scored for this kind, not false positives either).
    also: tuple[str, ...] = ()


_TEMPLATES = (
    "Please contact me at {} tomorrow.",
    "{} (work)",
    "Ref: {}; thanks!",
    "Sent from {} at 10:15",
    'Customer said: "use {} from now on"',
    "<td>{}</td>",
    "Details - {} - updated 2024-03-01",
    "Mein Konto: {}.",
    "Note:\n{}\nEnd",
    "[{}]",
)


def _embed(rng: random.Random, value: str) -> str:
    return rng.choice(_TEMPLATES).format(value)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _email(rng: random.Random) -> str:
    first = rng.choice(["john", "maria", "li", "o'neil", "ana-sofia", "jürgen", "chloé", "dev", "x", "kim"])
    last = rng.choice(["smith", "garcia", "wang", "müller", "nguyen", "okafor", "dubois", "rossi"])
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}+{rng.randint(1, 99)}",
            f"{last}{rng.randint(1, 9999)}",
            f"{first}_{last}",
            f"{first.upper()}.{last.capitalize()}",
        ]
    )
    domain = rng.choice(
        [
            "gmail.com",
            "example.org",
            "mail.example.co.uk",
            "uni-melb.edu.au",
            "corp.example.io",
            "web.de",
            "ex-ample.museum",
            "post.example.fr",
        ]
    )
    return f"{local}@{domain}"


def _phone(rng: random.Random) -> str:
    d = lambda n: _digits(rng, n)  # noqa: E731
    a = str(rng.randint(2, 9)) + d(2)
    forms = [
        f"({a}) {rng.randint(200, 999)}-{d(4)}",
        f"{a}-{rng.randint(200, 999)}-{d(4)}",
        f"+1 {a} {rng.randint(200, 999)} {d(4)}",
        f"{a}.{rng.randint(200, 999)}.{d(4)}",
        f"+1{a}{rng.randint(200, 999)}{d(4)}",
        f"+44 20 7946 {d(4)}",
        f"020 7946 {d(4)}",
        f"07700 9{d(5)}",
        f"+44 (0)7700 9{d(5)}",
        f"+61 4{d(2)} {d(3)} {d(3)}",
        f"04{d(2)} {d(3)} {d(3)}",
        f"(03) 9{d(3)} {d(4)}",
        f"+49 30 {d(8)}",
        f"030 {d(8)}",
        f"0049 30 {d(7)}",
        f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"01 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        f"+91 9{d(4)} {d(5)}",
        f"+34 6{d(2)} {d(3)} {d(3)}",
        f"+81-3-{d(4)}-{d(4)}",
        f"+55 11 9{d(4)}-{d(4)}",
    ]
    return rng.choice(forms)


_CARD_PREFIXES = [
    ("4", 16),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("3528", 16),
    ("36", 14),
    ("62", 16),
    ("4", 19),
    ("4", 13),
]


def _card(rng: random.Random) -> str:
    prefix, n = rng.choice(_CARD_PREFIXES)
    body = prefix + _digits(rng, n - len(prefix) - 1)
    number = body + luhn.calc_check_digit(body)
    style = rng.random()
    if n == 15 and style < 0.6:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    if style < 0.35:
        return number
    sep = " " if style < 0.7 else "-"
    return sep.join(number[i : i + 4] for i in range(0, n, 4))


#: Countries and BBAN layouts (n digits, a upper-case letters, c alphanumerics).
_IBAN_LAYOUTS = {
    "DE": "18n",
    "GB": "4a14n",
    "NL": "4a10n",
    "CH": "5n12c",
    "AT": "16n",
    "PL": "24n",
    "IE": "4a14n",
    "DK": "14n",
    "FI": "14n",
    "LU": "3n13c",
    "BE": "12n",
    "SE": "20n",
    "CZ": "20n",
    "PT": "21n",
    "LT": "16n",
}


def _bban(rng: random.Random, layout: str) -> str:
    out = []
    num = ""
    for ch in layout:
        if ch.isdigit():
            num += ch
            continue
        alphabet = {
            "n": string.digits,
            "a": string.ascii_uppercase,
            "c": string.digits + string.ascii_uppercase,
        }
        out.append("".join(rng.choice(alphabet[ch]) for _ in range(int(num))))
        num = ""
    return "".join(out)


def _iban(rng: random.Random) -> str:
    for _ in range(500):
        cc = rng.choice(sorted(_IBAN_LAYOUTS))
        bban = _bban(rng, _IBAN_LAYOUTS[cc])
        check = std_iban.calc_check_digits(cc + "00" + bban)
        number = cc + check + bban
        if not std_iban.is_valid(number):  # countries with national check digits
            continue
        style = rng.random()
        if style < 0.5:
            return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        if style < 0.9:
            return number
        return number.lower()
    raise RuntimeError("no valid IBAN generated")


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    s = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return s if rng.random() < 0.7 else s.replace("-", " ")


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    d = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second}{d}{suffix}"
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {suffix}"


def _cpf(rng: random.Random) -> str:
    body = _digits(rng, 9)
    d1 = sum(int(c) * (10 - i) for i, c in enumerate(body)) * 10 % 11 % 10
    d2 = sum(int(c) * (11 - i) for i, c in enumerate(body + str(d1))) * 10 % 11 % 10
    n = f"{body}{d1}{d2}"
    assert cpf.is_valid(n)
    return f"{n[:3]}.{n[3:6]}.{n[6:9]}-{n[9:]}"


def _dni(rng: random.Random) -> str:
    body = _digits(rng, 8)
    return body + ("-" if rng.random() < 0.3 else "") + dni.calc_check_digit(body)


def _nie(rng: random.Random) -> str:
    body = rng.choice("XYZ") + _digits(rng, 7)
    return body + nie.calc_check_digit(body)


_CF_MONTHS = "ABCDEHLMPRST"


def _codice_fiscale(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(6))
    body = (
        f"{letters}{rng.randint(40, 99):02d}{rng.choice(_CF_MONTHS)}"
        f"{rng.randint(1, 28) + rng.choice((0, 40)):02d}"
        f"{rng.choice('ABCDEFGHILM')}{rng.randint(1, 999):03d}"
    )
    return body + codicefiscale.calc_check_digit(body)


def _aadhaar(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(2, 9)) + _digits(rng, 10)
        n = body + verhoeff.calc_check_digit(body)
        if n != n[::-1]:
            break
    sep = rng.choice([" ", "-"])
    return f"{n[:4]}{sep}{n[4:8]}{sep}{n[8:]}"


def _sin(rng: random.Random) -> str:
    body = str(rng.choice([1, 2, 3, 4, 5, 6, 7, 9])) + _digits(rng, 7)
    n = body + luhn.calc_check_digit(body)
    sep = rng.choice([" ", "-"])
    return f"{n[:3]}{sep}{n[3:6]}{sep}{n[6:]}"


def _nir(rng: random.Random) -> str:
    body = f"{rng.randint(1, 2)}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
    body += _digits(rng, 6)
    n = body + nir.calc_check_digits(body)
    if rng.random() < 0.5:
        return n
    return f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}"


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 8, 31, 81, 100, 203, 45])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    style = rng.random()
    if style < 0.4:
        return ":".join(groups)
    if style < 0.8:
        return f"2001:db8:{groups[2]}::{groups[7]}"
    return f"fe80::{groups[4]}:{groups[5]}:{groups[6]}:{groups[7]}"


def _mac(rng: random.Random) -> str:
    octets = [f"{rng.randint(0, 255):02x}" for _ in range(6)]
    sep = rng.choice([":", "-"])
    text = sep.join(octets)
    return text.upper() if rng.random() < 0.5 else text


def _secret(rng: random.Random) -> tuple[str, str]:
    """(text, the secret part of it)."""
    alnum = string.ascii_letters + string.digits
    tok = lambda n: "".join(rng.choice(alnum) for _ in range(n))  # noqa: E731
    b64 = lambda n: "".join(rng.choice(alnum + "-_") for _ in range(n))  # noqa: E731
    choice = rng.randrange(8)
    if choice == 0:
        pw = tok(10) + "7"
        return f"https://alice:{pw}@files.example.com/share", pw
    if choice == 1:
        v = tok(24)
        return f"https://app.example.com/cb?code=1&access_token={v}&state=x", v
    if choice == 2:
        v = "eyJ" + b64(30) + "." + b64(40) + "." + b64(43)
        return v, v
    if choice == 3:
        v = "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        return v, v
    if choice == 4:
        v = "ghp_" + tok(36)
        return v, v
    if choice == 5:
        v = tok(20) + "9Z"
        return f"Authorization: Bearer {v}", v
    if choice == 6:
        v = "Tr0ub4dor&3" if rng.random() < 0.2 else tok(12)
        return f"password={v}", v.split("&")[0]
    v = "sk_live_" + tok(24)
    return v, v


_MAKERS = {
    "email": (_email, 40),
    "phone": (_phone, 66),
    "card": (_card, 42),
    "iban": (_iban, 40),
    "ssn": (_ssn, 30),
    "nino": (_nino, 30),
    "cpf": (_cpf, 16),
    "dni": (_dni, 16),
    "nie": (_nie, 16),
    "codice_fiscale": (_codice_fiscale, 16),
    "aadhaar": (_aadhaar, 16),
    "sin": (_sin, 16),
    "nir": (_nir, 16),
    "ipv4": (_ipv4, 30),
    "ipv6": (_ipv6, 20),
    "mac": (_mac, 16),
}


def positives(seed: int = 7) -> list[Case]:
    """Identifiers of every kind, about half embedded in longer text, three kinds mixed in some."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for kind, (make, n) in _MAKERS.items():
        for i in range(n):
            value = make(rng)
            text = value if i % 2 == 0 else _embed(rng, value)
            cases.append(Case(kind, text, (value,)))
    for _ in range(40):
        text, secret = _secret(rng)
        cases.append(Case("secret", text, (secret,)))
    for _ in range(10):  # several identifiers in one text
        e, p, c = _email(rng), _phone(rng), _card(rng)
        text = f"{e} / tel {p} / card {c}"
        cases.append(Case("email", text, (e,), (p, c)))
        cases.append(Case("phone", text, (p,), (e, c)))
        cases.append(Case("card", text, (c,), (e, p)))
    return cases


def negatives(seed: int = 11) -> list[str]:
    """Numbers and codes that are not identifiers of a person (they must be left as they are)."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(20):
        y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
        hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
        out += [
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{d}.{m}.{y}",
            f"{d:02d}-{m:02d}-{y}",
            f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{rng.randint(0, 999):03d}Z",
            f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}",
            f"{hh:02d}:{mm:02d}",
            f"{hh}:{mm:02d}:{ss:02d}",
            str(rng.randint(1_400_000_000_000, 1_800_000_000_000)),  # epoch milliseconds
            f"${rng.randint(1, 99_999):,}.{rng.randint(0, 99):02d}",
            f"{rng.randint(1, 9_999_999):,} EUR",
            f"{rng.uniform(0, 100):.2f}%",
            f"{rng.choice('ABCDEFGH')}{rng.randint(1, 500)}",
            f"${rng.choice('ABCD')}${rng.randint(1, 99)}",
            f"Sheet{rng.randint(1, 9)}!B{rng.randint(2, 90)}",
            f"INV-{y}-{rng.randint(1, 999_999):06d}",
            f"RE-{y}-{rng.randint(10_000, 99_999)}",  # a German invoice number (a new user's: phones before)
            f"Vorgang {y}-{rng.randint(10_000, 99_999)}",
            f"Order #{rng.randint(10_000, 99_999_999)}",
            f"v{rng.randint(1, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 300)}",
            f"{rng.randint(1000, 9999)}",
            f"VIC {rng.randint(3000, 3999)}",
            f"{rng.randint(1, 999)} Swanston Street, Melbourne VIC 3000",
            f"Qty {rng.randint(1, 500)} x {rng.uniform(1, 99):.2f}",
            f"{rng.randint(1, 60)} min",
            f"Room {rng.randint(100, 999)}",
            f"Page {rng.randint(1, 400)} of {rng.randint(400, 900)}",
            f"{rng.randint(0, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}",
            f"Year {y}, term {rng.randint(1, 4)}",
            f"{rng.randint(1, 31)} March {y}",
            f"SKU {rng.randint(100000, 999999)}-{rng.choice('ABC')}",
            f"{rng.uniform(-90, 90):.5f}",
            f"https://forms.example.com/form/NewRecord?step={rng.randint(1, 9)}",
            f"C:\\Users\\Public\\Reports\\{y}\\Q{rng.randint(1, 4)}.xlsx",
            f"Student {rng.randint(1, 500)}",
            f"{rng.randint(1, 12)}/{rng.randint(1, 31)}",
        ]
    out += [
        "StudentRecords.xlsx",
        "Sheet1",
        "Excel",
        "Chrome",
        "OS-Clipboard",
        "SingleLine",
        "Address_ZipCode",
        "submit",
        "New Zealand",
        "Arkady Yuriev",
        "16 Morris St",
        "A1:B7",
        "=SUM(B2:B9)",
        "3.14159",
        "10.0.19041",
        "1,234,567",
        "12 345 678",
        "ISBN 978-3-16-148410-0",
        "HTTP/1.1 200 OK",
    ]
    return out
