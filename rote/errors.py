"""One exception base for the whole package, so callers can catch rote's failures apart from bugs."""

from __future__ import annotations


class RoteError(Exception):
    """Base of every error rote raises on purpose."""


class ConfigError(RoteError):
    """A setting from the environment or a flag is missing or invalid."""


class ValidationError(RoteError):
    """An event does not match its schema; `reason` is what goes to the dead-letter topic."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class ImportFormatError(RoteError):
    """An input file cannot be read in the format asked for."""


class BrokerError(RoteError):
    """A broker could not be started, reached or stopped."""


class SandboxError(RoteError):
    """The jail could not be set up; the payload was not run (fail closed)."""


class StateError(RoteError):
    """Stored state (a checkpoint or log record read back from a changelog) is not valid state data.

    Raised instead of ever constructing an object the state schema does not declare: the record is then
    skipped, logged and counted, and the key starts from what remains valid.
    """
