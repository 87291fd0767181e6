"""What a field's label, name or type says its value is: a password, a phone number, an SSN, a card.

The value typed into a password field looks like any other text ("LittleFrank123"), so no pattern can find
it: the field has to say so. Loggers say it in different places: the Action Logger's `target.type` is
`password`, the Bosco logs' `Label` is `password`, a browser extension may report `autocomplete=
current-password`, an element id may be `txtPwd`. Labels are split into words (camelCase, snake_case,
kebab-case, spaces) and matched against small vocabularies in several languages; labels repeat, so results
are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Words that make a field secret: its whole value becomes the password marker.
PASSWORD_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passwort",
        "passphrase",
        "passcode",
        "pwd",
        "pw",
        "pass",
        "pin",
        "pincode",
        "otp",
        "totp",
        "mfa",
        "2fa",
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "csc",
        "cid",
        "secret",
        "contraseña",
        "contrasena",
        "senha",
        "kennwort",
        "wachtwoord",
        "salasana",
        "lösenord",
        "losenord",
        "hasło",
        "haslo",
        "heslo",
        "parola",
        "passord",
        "adgangskode",
        "jelszó",
        "mdp",
        "пароль",
        "密码",
        "密碼",
        "パスワード",
        "비밀번호",
        "암호",
        "şifre",
        "sifre",
        "sandi",
        "lozinka",
        "geslo",
        "parool",
        "slaptažodis",
        "סיסמה",
        "รหัสผ่าน",
        "पासवर्ड",
        "retype",
    }
)
#: Multi-word phrases (matched on the joined words) that are secret too.
PASSWORD_PHRASES = (
    "mot de passe",
    "security code",
    "one time code",
    "verification code",
    "access code",
    "card verification",
    "current password",
    "new password",
    "one time password",
    "palavra passe",
    "kata sandi",
    "mật khẩu",
    "كلمة المرور",
    "κωδικός πρόσβασης",
)
#: Substrings that are secret even inside one lower-case word (`userpassword`, `newpasswd`).
PASSWORD_SUBSTRINGS = ("password", "passwd", "passwort", "passphrase", "passcode", "kennwort", "contrase")
#: Short words that are secret only alone or with "code"/"number" ("Pass", "PIN code"), not in "Boarding
#: pass number" or "Pass/Fail".
_WHOLE_ONLY = frozenset({"pass", "pw", "cid", "pin", "retype"})
_WHOLE_ONLY_WITH = frozenset({"code", "number", "no", "nr"})
#: But these words make a label about something else ("PIN code" is secret, "Pinned items" is not). Not
#: "reset" or "forgot": a reset form's `reset_password` box holds the new password (an attacker's sweep),
#: and a "Forgot password" link is clicked, not typed into.
_NOT_SECRET_WITH = frozenset({"hint", "strength", "policy", "expiry", "expires", "length"})

PHONE_WORDS = frozenset(
    {
        "phone",
        "telephone",
        "tel",
        "mobile",
        "mobil",
        "cellphone",
        "fax",
        "telefon",
        "telefono",
        "téléphone",
        "telefone",
        "handy",
        "msisdn",
        "whatsapp",
        "phonenumber",
    }
)
SSN_PHRASES = ("ssn", "social security", "social security number", "socialsecuritynumber")
CARD_PHRASES = (
    "card number",
    "cardnumber",
    "credit card",
    "creditcard",
    "debit card",
    "cc number",
    "cc num",
    "ccnumber",
    "cc-number",
    "pan",
)

#: The password words and phrases that are not plain ASCII (matched as substrings of the label).
_UNSPLIT_SECRETS = tuple(w for w in (*PASSWORD_WORDS, *PASSWORD_PHRASES) if not w.isascii())

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z\u00df-\u00ff]+|[A-Z]+|\d+|[^\W\d_]+", re.UNICODE)


def words(label: str) -> list[str]:
    """Lower-case words of a label: `txtPassword_2` -> ['txt', 'password', '2']."""
    return [w.lower() for w in _WORD.findall(label)]


@lru_cache(maxsize=8192)
def label_kinds(label: str) -> frozenset[str]:
    """What kind of value a field with this label holds: a subset of {password, phone, ssn, card}."""
    ws = words(label)
    if not ws:
        return frozenset()
    joined = " ".join(ws)
    squashed = "".join(ws)
    kinds: set[str] = set()
    low = label.strip().casefold()
    if not _NOT_SECRET_WITH.intersection(ws) and (
        any(w in PASSWORD_WORDS and (w not in _WHOLE_ONLY or _alone(w, ws)) for w in ws)
        or any(p in joined for p in PASSWORD_PHRASES)
        or any(s in squashed for s in PASSWORD_SUBSTRINGS)
        or low in ("current-password", "new-password", "one-time-code", "cc-csc")
        or low in PASSWORD_WORDS
        # words the splitter cuts apart (combining marks in Thai and Hindi, Latin Extended letters in
        # `hasło`, `slaptažodis`, `mật khẩu`) are looked for in the label as written
        or any(n in low for n in _UNSPLIT_SECRETS)
    ):
        kinds.add("password")
    if PHONE_WORDS.intersection(ws) or "phone" in squashed:
        kinds.add("phone")
    if any(p == joined or f" {p} " in f" {joined} " for p in SSN_PHRASES):
        kinds.add("ssn")
    if any(f" {p} " in f" {joined} " for p in CARD_PHRASES) or label.strip().lower() == "cc-number":
        kinds.add("card")
    return frozenset(kinds)


def _alone(word: str, ws: list[str]) -> bool:
    return all(w == word or w in _WHOLE_ONLY_WITH for w in ws)


_PASSWORD_TYPES = frozenset({"password", "passwd", "pwd", "secret"})


def is_password_type(element_type: str | None) -> bool:
    """The HTML input type (or a logger's equivalent) of a field whose value is a password."""
    return element_type is not None and element_type.strip().lower() in _PASSWORD_TYPES
