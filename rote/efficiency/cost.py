"""What automation costs, in the same currency as the time it saves, so ROI is one honest number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rote.config import values_from_env
from rote.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class CostModel:
    """Money per unit of person time and machine time; every field has env var `ROTE_<NAME>`.

    The defaults are deliberately conservative (they make ROI look worse, not better): a person's hour at
    50, an hour of someone's attention to review and approve each automation (once, whatever the number of
    versions the generator went through), and machine time priced like a small cloud VM share.
    """

    #: Value of one hour of a person's time, in `currency` (shared with `Settings.hourly_rate`).
    hourly_rate: float = 50.0
    #: Person-hours to review, approve and deploy one automation (generation and regeneration are free).
    build_cost_hours: float = 1.0
    #: Machine cost of one second of sandbox test-run wall time (per run-second), in `currency`.
    test_cost_per_run_seconds: float = 0.0001
    #: Machine cost of one second of a production run, in `currency`.
    run_cost_per_second: float = 0.0001
    #: Person-hours per month each active automation needs (watching alerts, fixing drift).
    maintenance_hours_per_month: float = 0.0
    currency: str = "USD"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and (v < 0 or v != v):
                raise ConfigError(f"cost model {f.name} must be a non-negative number, got {v!r}")
        if self.hourly_rate <= 0:
            raise ConfigError("hourly_rate must be positive: time saved is worth nothing otherwise")

    @property
    def per_person_second(self) -> float:
        return self.hourly_rate / 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> CostModel:
        """Defaults, then `ROTE_HOURLY_RATE` etc., then explicit overrides (CLI flags) that are not None."""
        return cls(**values_from_env(cls, env, overrides=overrides))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
