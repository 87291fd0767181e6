"""Redaction settings and the pseudonym key.

Redaction is on by default: nobody has to remember to switch it on before a logger starts capturing
passwords. Every class can be switched off on its own (`ROTE_REDACT_<CLASS>=0`) and the whole thing with
`ROTE_REDACT=0` (for example to measure what redaction costs discovery). See docs/privacy.md.

The key makes pseudonyms unlinkable outside the deployment: without it nobody can check whether a token
stands for a guessed e-mail address. It comes from `ROTE_PSEUDONYM_KEY` (a platform secret) or from a key
file, created with 32 random bytes and mode 0600 in the state directory the first time it is needed.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rote.config import values_from_env
from rote.errors import ConfigError

#: Text classes with a switch each (the password class is the value of password fields).
CLASSES: tuple[str, ...] = ("password", "email", "phone", "card", "iban", "national_id", "ip", "secret")

#: Name of the key file in the state directory.
KEY_FILE_NAME = "pseudonym.key"
#: Shortest acceptable key (characters of ROTE_PSEUDONYM_KEY or of the key file).
MIN_KEY_CHARS = 16

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, kw_only=True)
class RedactionConfig:
    """Environment: `ROTE_<FIELD>` (e.g. `ROTE_REDACT_EMAIL=0`, `ROTE_REDACT_DENY_APPS=KeePass,1Password`)."""

    #: Master switch; off means payloads pass through untouched.
    redact: bool = True
    #: Values typed into password fields (and PIN, CVV, one-time-code fields) become `<password>`.
    redact_password: bool = True
    redact_email: bool = True
    redact_phone: bool = True
    #: Payment card numbers (Luhn and a card network's prefix).
    redact_card: bool = True
    #: IBANs (mod 97 and the country's layout).
    redact_iban: bool = True
    #: US SSN, UK NINO, Brazilian CPF, Spanish DNI/NIE, Italian codice fiscale, Indian Aadhaar, Canadian SIN,
    #: French NIR.
    redact_national_id: bool = True
    #: IP (v4, v6) and MAC addresses.
    redact_ip: bool = True
    #: Credentials in text: URL passwords, `password=`/`token=` pairs, JWTs, cloud and VCS tokens, keys.
    redact_secret: bool = True
    #: Applications (names or globs, case-insensitive) whose actions keep no values at all.
    redact_deny_apps: tuple[str, ...] = ()
    #: URLs whose actions keep no values: a host (`bank.example`, matches its subdomains too), a URL prefix
    #: (`https://intranet/payroll/`) or a glob (`*://*/admin/*`).
    redact_deny_urls: tuple[str, ...] = ()
    #: Trusted applications and URLs that are not scanned (password fields are still never stored).
    redact_allow_apps: tuple[str, ...] = ()
    redact_allow_urls: tuple[str, ...] = ()
    #: The pseudonym key itself (a platform secret); takes precedence over the key file.
    pseudonym_key: str | None = field(default=None, repr=False)
    #: Where the key is kept when `pseudonym_key` is not set; default `<state_dir>/pseudonym.key`.
    pseudonym_key_file: Path | None = None
    #: The run's state directory (shared with `rote.config.Settings`, same variable ROTE_STATE_DIR).
    state_dir: Path = field(default_factory=lambda: Path(".rote"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RedactionConfig:
        """Defaults, then `ROTE_*` variables, then explicit overrides that are not None."""
        raw = values_from_env(cls, env, overrides=overrides)
        types = {f.name: str(f.type) for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            var = f"ROTE_{name.upper()}"
            kind = types[name]
            if kind == "bool" and isinstance(value, str):
                values[name] = _parse_bool(var, value)
            elif kind.startswith("tuple") and isinstance(value, str):
                values[name] = tuple(p.strip() for p in value.split(",") if p.strip())
            elif kind.startswith("Path") and isinstance(value, str):
                values[name] = Path(value) if value else None
            else:
                values[name] = value
        return cls(**values)

    @property
    def classes(self) -> frozenset[str]:
        """The enabled classes (empty when redaction is off)."""
        if not self.redact:
            return frozenset()
        return frozenset(c for c in CLASSES if getattr(self, f"redact_{c}"))

    @property
    def key_path(self) -> Path:
        return self.pseudonym_key_file or self.state_dir / KEY_FILE_NAME


def _parse_bool(var: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{var}={raw!r} is not a boolean (1/0, true/false, yes/no, on/off)")


#: Key files this process created (`load_key`): a refused run removes only a key it wrote itself, never one
#: another process sharing the state folder made meanwhile (`rote.privacy.default.no_new_key_unless_done`)
CREATED_KEY_FILES: set[Path] = set()


def load_key(config: RedactionConfig) -> bytes:
    """The deployment's pseudonym key: `ROTE_PSEUDONYM_KEY`, else the key file (created when missing).

    A key file readable by group or others is refused, as ssh refuses such a private key: a key that has
    leaked makes every pseudonym checkable against guesses.
    """
    if config.pseudonym_key:
        if len(config.pseudonym_key) < MIN_KEY_CHARS:
            raise ConfigError(f"ROTE_PSEUDONYM_KEY must be at least {MIN_KEY_CHARS} characters")
        return config.pseudonym_key.encode()
    path = config.key_path
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_key(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    CREATED_KEY_FILES.add(path)
    return text.encode()


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"pseudonym key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"chmod 600 it"
        )
    text = path.read_text().strip()
    if len(text) < MIN_KEY_CHARS:
        raise ConfigError(f"pseudonym key file {path} holds fewer than {MIN_KEY_CHARS} characters")
    return text.encode()
