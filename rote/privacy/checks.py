"""Check digits and structural rules that tell an identifier from a number that merely looks like one.

A 16-digit run is a card number only if its Luhn digit is right and it starts with a card network's
prefix; an `XX00…` run is an IBAN only if its mod-97 remainder is 1 and its length and layout are those of its
country. These checks are what keep the redactor from pseudonymising order numbers, timestamps and amounts.
The cheap arithmetic (Luhn, mod 97) is done here, first; python-stdnum, a maintained library of
national number formats, then has the last word for IBAN layouts and the national id numbers, and is only
called for the rare text that passed the cheap checks.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date

from stdnum import iban as std_iban
from stdnum.br import cpf as std_cpf
from stdnum.ca import sin as std_sin
from stdnum.es import dni as std_dni
from stdnum.es import nie as std_nie
from stdnum.fr import nir as std_nir
from stdnum.in_ import aadhaar as std_aadhaar
from stdnum.it import codicefiscale as std_cf


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and Canadian SINs."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: Issuer prefixes (IIN ranges) of the card networks: Visa, Mastercard (51-55, 2221-2720), Amex, Discover,
#: Diners, JCB, UnionPay, Maestro, Mir. A Luhn-valid run outside them is more likely an account or order
#: number than a card, unless the field says it is a card.
_IIN = re.compile(
    r"^(?:4|5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720|3[47]|6011|64[4-9]|65|30[0-5]|3095|36|38|39"
    r"|35(?:2[89]|[3-8]\d)|62|50|5[6-9]|6[0-9]|220[0-4])"
)


def card_ok(digits: str, *, any_prefix: bool = False) -> bool:
    """A plausible payment card number: 13-19 digits (12 when the field says so), Luhn, a network prefix."""
    n = len(digits)
    if not (13 <= n <= 19 or (any_prefix and n == 12)):
        return False
    if not luhn_ok(digits):
        return False
    return any_prefix or _IIN.match(digits) is not None


def _mod97(text: str) -> int:
    """ISO 7064 mod 97-10 of an alphanumeric string (letters count as 10..35)."""
    rem = 0
    for ch in text:
        o = ord(ch)
        if 48 <= o <= 57:
            rem = (rem * 10 + o - 48) % 97
        elif 65 <= o <= 90:
            rem = (rem * 100 + o - 55) % 97
        else:
            return -1
    return rem


def iban_prefix_lengths(compact: str) -> list[int]:
    """Lengths n (15..34) for which `compact[:n]` passes the IBAN mod-97 check, longest first.

    One pass over the text: the remainder of the BBAN prefix is carried along and the moved country code
    and check digits (six digits) are appended arithmetically, so a candidate that runs on into following
    words costs one loop, not one mod 97 per possible length.
    """
    if len(compact) < 15 or not compact[2:4].isdigit():
        return []
    head = 0
    for ch in compact[:4]:
        o = ord(ch)
        head = head * 10 + o - 48 if 48 <= o <= 57 else head * 100 + o - 55
    head %= 97
    rem = 0
    out = []
    for i in range(4, min(len(compact), 34)):
        o = ord(compact[i])
        if 48 <= o <= 57:
            rem = (rem * 10 + o - 48) % 97
        elif 65 <= o <= 90:
            rem = (rem * 100 + o - 55) % 97
        else:
            break
        if i + 1 >= 15 and (rem * 1_000_000 + head) % 97 == 1:
            out.append(i + 1)
    out.reverse()
    return out


def iban_ok(compact: str) -> bool:
    """Upper-case IBAN without spaces: mod 97 == 1 first (cheap), then the country's length and layout."""
    if not 15 <= len(compact) <= 34:
        return False
    if _mod97(compact[4:] + compact[:4]) != 1:
        return False
    return bool(std_iban.is_valid(compact))


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return not (area == "000" or area == "666" or area[0] == "9" or group == "00" or serial == "0000")


_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_ok(compact: str) -> bool:
    """UK National Insurance number: two prefix letters (not D F I Q U V, second not O, a few pairs never
    issued), six digits, suffix A-D."""
    if len(compact) != 9:
        return False
    a, b = compact[0], compact[1]
    if a in "DFIQUV" or b in "DFIQUVO" or compact[:2] in _NINO_BAD_PREFIX:
        return False
    return compact[2:8].isdigit() and compact[8] in "ABCD"


def cpf_ok(text: str) -> bool:
    return bool(std_cpf.is_valid(text))


def dni_ok(text: str) -> bool:
    return bool(std_dni.is_valid(text))


def nie_ok(text: str) -> bool:
    return bool(std_nie.is_valid(text))


def codice_fiscale_ok(text: str) -> bool:
    return bool(std_cf.is_valid(text))


def aadhaar_ok(text: str) -> bool:
    return bool(std_aadhaar.is_valid(text))


def sin_ok(text: str) -> bool:
    return bool(std_sin.is_valid(text))


def nir_ok(text: str) -> bool:
    return bool(std_nir.is_valid(text))


def ip_normalised(text: str) -> str | None:
    """Canonical form of an IPv4/IPv6 address, or None when it is not one or identifies nobody (loopback,
    unspecified: `http://127.0.0.1:8080/form` is part of an application, not of a person)."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if addr.is_loopback or addr.is_unspecified:
        return None
    return addr.compressed


_DATE_SHAPES = (
    re.compile(r"^(\d{4})[-./ ](\d{1,2})[-./ ](\d{1,2})"),  # ISO y-m-d
    re.compile(r"^(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{4})"),  # d-m-y or m-d-y
)


def starts_with_date(text: str) -> bool:
    """True when `text` begins with a calendar date (digit groups a phone detector must not take)."""
    for k, shape in enumerate(_DATE_SHAPES):
        m = shape.match(text)
        if m is None:
            continue
        a, b, c = (int(g) for g in m.groups())
        y, mm, dd = (a, b, c) if k == 0 else (c, b, a)
        for month, day in ((mm, dd), (dd, mm)):
            try:
                date(y, month, day)
                return True
            except ValueError:
                continue
    return False
