"""Settings from the environment, overridable by CLI flags.

Every setting has an environment variable `ROTE_<NAME>` and a documented default (README, "Configuration").
The object is frozen and keyword-only so a setting can't be changed behind an agent's back mid-run; derive a
changed copy with `dataclasses.replace`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rote.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: `embedded` starts the bundled Tansu broker; `kafka://host:port[,host:port]` uses a cluster.
    broker: str = "embedded"
    #: Faust table store. Only `memory://` (state rebuilt from the changelogs at start): the agents keep live
    #: state objects in the table, which a serializing store such as `rocksdb://` would hand back as copies.
    store: str = "memory://"
    #: Replication factor for topics rote creates (1 for a single broker).
    replication: int = 1
    #: Faust application id: the consumer-group prefix and the changelog topics' prefix.
    app_id: str = "rote"
    #: Port of the Prometheus metrics endpoint (0 disables it).
    metrics_port: int = 9464
    metrics_addr: str = "127.0.0.1"
    #: Port of the worker's HTTP views (registry, candidates); 0 disables the web server.
    web_port: int = 0
    #: Where `rote run` archives every topic (`last-run/`) for `rote report` and `rote automations`.
    state_dir: Path = field(default_factory=lambda: Path(".rote"))
    #: Concurrent sandbox runs (each in its own jail with its own uid).
    sandbox_concurrency: int = 2
    #: Candidates scoring below this (0-100) are not turned into automations.
    min_automation_score: float = 40.0
    #: Seconds between optimization reports.
    report_interval_seconds: float = 30.0
    #: Value of one hour of a person's time, in the report's currency.
    hourly_rate: float = 50.0
    #: Seconds `rote worker` may take to shut down after SIGTERM before it exits anyway (Faust waits for its
    #: broker without limit; nothing is lost by exiting: state and offsets are on the broker up to the last
    #: commit, and what came after is processed again). Under Kubernetes' default 30 s grace period.
    shutdown_grace_seconds: float = 25.0

    def __post_init__(self) -> None:
        if self.broker != "embedded" and not self.broker.startswith("kafka://"):
            raise ConfigError(f"broker must be 'embedded' or kafka://host:port, got {self.broker!r}")
        if not self.store.startswith("memory://"):
            raise ConfigError(
                f"store must be memory:// (agent state is rebuilt from changelogs), got {self.store!r}"
            )
        if self.replication < 1:
            raise ConfigError("replication must be at least 1")
        if self.sandbox_concurrency < 1:
            raise ConfigError("sandbox concurrency must be at least 1")
        if not 0 <= self.min_automation_score <= 100:
            raise ConfigError("min automation score must be within 0-100")
        if self.report_interval_seconds <= 0:
            raise ConfigError("report interval must be positive")
        if self.shutdown_grace_seconds <= 0:
            raise ConfigError("shutdown grace must be positive")

    @property
    def bootstrap_servers(self) -> str:
        """host:port list for Kafka clients; only meaningful for an external broker."""
        if self.broker == "embedded":
            raise ConfigError("the embedded broker's address is known only once it has started")
        return self.broker.removeprefix("kafka://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `ROTE_*` variables, then explicit overrides (CLI flags) that are not None."""
        return cls(**values_from_env(cls, env, overrides=overrides))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def values_from_env(
    cls: type[Any],
    env: Mapping[str, str] | None = None,
    *,
    prefix: str = "ROTE_",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the dataclass `cls`: `<prefix><FIELD>` variables, then non-None overrides.

    Every config object reads the environment the same way (same names, same coercion by field type,
    same error naming the variable), so a setting shared by two of them cannot be parsed two ways.
    Fields without a variable are left out, so the dataclass defaults apply.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(cls):
        var = f"{prefix}{f.name.upper()}"
        raw = env.get(var)
        if raw is not None:
            values[f.name] = _coerce(var, f.type, raw)
    if overrides:
        values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def _coerce(var: str, typ: Any, raw: str) -> Any:
    kind = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid {kind}") from None
    return raw
