"""How every Kafka client rote has authenticates and encrypts: one setting, three client libraries.

rote talks to Kafka through Faust (the agents), aiokafka (sandbox runner, executor, `rote run`'s replay
and recorder) and kafka-python (admin, `rote produce`, the producer API, the lag probe). Each wants the same
facts in its own spelling; `KafkaSecurity` holds them once and renders each library's keyword arguments, so
no client can be left on PLAINTEXT by accident.

Settings (environment, documented in docs/security.md; `rote` commands take the non-secret ones as flags):

| variable | default | meaning |
|---|---|---|
| `ROTE_KAFKA_SECURITY_PROTOCOL` | `PLAINTEXT` | `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` |
| `ROTE_KAFKA_SASL_MECHANISM` | `SCRAM-SHA-512` | `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN` (with SASL_*) |
| `ROTE_KAFKA_USERNAME` | - | the principal's name (with SASL_*) |
| `ROTE_KAFKA_PASSWORD` / `_FILE` | - | its password, or a file holding it (a mounted secret) |
| `ROTE_KAFKA_CA_FILE` | system CAs | PEM bundle the brokers' certificates are checked against (with *SSL) |
| `ROTE_KAFKA_CERT_FILE` / `ROTE_KAFKA_KEY_FILE` | - | client certificate and key for mutual TLS |
| `ROTE_KAFKA_CHECK_HOSTNAME` | `1` | check that the broker's certificate names the host connected to |

Passwords are never taken from a command-line flag (other users can read a process's arguments) and never
appear in `repr`, logs or error messages.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from rote.errors import ConfigError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)


@dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    """Authentication and transport encryption for one process's Kafka clients (one principal)."""

    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            got = self.security_protocol
            raise ConfigError(f"Kafka security protocol must be one of {', '.join(PROTOCOLS)}, got {got!r}")
        if self.sasl_mechanism not in MECHANISMS:
            raise ConfigError(
                f"SASL mechanism must be one of {', '.join(MECHANISMS)}, got {self.sasl_mechanism!r}"
            )
        if self.sasl and (not self.username or self.password is None):
            raise ConfigError(
                f"{self.security_protocol} needs ROTE_KAFKA_USERNAME and ROTE_KAFKA_PASSWORD "
                "(or ROTE_KAFKA_PASSWORD_FILE)"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("mutual TLS needs both ROTE_KAFKA_CERT_FILE and ROTE_KAFKA_KEY_FILE")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ConfigError(f"TLS files were given but the security protocol is {self.security_protocol}")
        if self.sasl and self.sasl_mechanism == "PLAIN" and not self.tls:
            raise ConfigError("SASL PLAIN sends the password in clear: use it only with SASL_SSL")
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path is not None and not path.is_file():
                raise ConfigError(f"Kafka TLS file {path} does not exist")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> KafkaSecurity:
        """Defaults, then `ROTE_KAFKA_*`, then non-None overrides (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ROTE_KAFKA_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name in ("ca_file", "cert_file", "key_file"):
                values[f.name] = Path(raw)
            elif f.name == "check_hostname":
                values[f.name] = raw.strip().lower() not in ("0", "false", "no", "off")
            else:
                values[f.name] = raw.strip() if f.name != "password" else raw
        if "password" not in values and env.get("ROTE_KAFKA_PASSWORD_FILE"):
            values["password"] = _read_secret(Path(env["ROTE_KAFKA_PASSWORD_FILE"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> KafkaSecurity:
        return replace(self, **changes)

    # ---------------------------------------------------------------------------------- per library

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.check_hostname
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
        out: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return out

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer/KafkaConsumer/KafkaAdminClient."""
        out: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return out

    def faust_settings(self) -> dict[str, Any]:
        """Faust app settings (`broker_credentials`)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        import faust

        if not self.sasl:
            return {"broker_credentials": faust.SSLCredentials(self.ssl_context())}
        return {
            "broker_credentials": faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        }


def _read_secret(path: Path) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the Kafka password file {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"the Kafka password file {path} is writable by group or others")
    return text.rstrip("\r\n")


_current: KafkaSecurity | None = None


def configure(security: KafkaSecurity) -> None:
    """Set this process's Kafka security (CLI commands call it once, after reading flags)."""
    global _current
    _current = security


def current() -> KafkaSecurity:
    """This process's Kafka security: what `configure` set, else read from the environment once."""
    global _current
    if _current is None:
        _current = KafkaSecurity.from_env()
    return _current


def aiokafka_kwargs() -> dict[str, Any]:
    return current().aiokafka_kwargs()


def kafka_python_kwargs() -> dict[str, Any]:
    return current().kafka_python_kwargs()
