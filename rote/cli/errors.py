"""One line per failure, and an exit status that says which kind it was.

Exit statuses of every command: 0 done; 1 the work failed (a run that failed or timed out, an event not
delivered); 2 the input or a setting is wrong (`RoteError`); 3 the broker cannot be reached; 130 interrupted.
A traceback is for bugs: `ROTE_DEBUG=1` shows it, otherwise an unexpected error is one line as well.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import NoReturn

from rote.errors import BrokerError, RoteError

EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_BROKER = 3
EXIT_INTERRUPTED = 130


def require_broker(bootstrap: str, *, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when none of the bootstrap servers accepts a connection.

    Kafka clients retry an unreachable bootstrap for half a minute and then raise from deep inside their
    network layer; a plain TCP connect says the same in seconds and names the address that was tried.
    """
    tried = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"not a host:port broker address: {entry!r}")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as exc:
            tried.append(f"{entry.strip()} ({exc.strerror or exc})")
    where = ", ".join(tried)
    raise BrokerError(f"cannot reach the broker at {where}; is it running? (--broker, ROTE_BROKER)")


def _kafka_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    try:
        from kafka.errors import KafkaError as KafkaPythonError

        types.append(KafkaPythonError)
    except ImportError:  # pragma: no cover - both clients are dependencies
        pass
    try:
        from aiokafka.errors import KafkaError as AioKafkaError

        types.append(AioKafkaError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def command_name(argv: list[str]) -> str:
    """``rote run`` / ``rote eval discovery``: the words of the command line before the first option."""
    words = ["rote"]
    for arg in argv[1:]:
        if arg.startswith("-") or "/" in arg or "." in arg:
            break
        words.append(arg)
        if len(words) == 3:
            break
    return " ".join(words)


def fail(prog: str, exc: BaseException) -> NoReturn:
    """Print `exc` as one line for `prog` and exit with the status of its kind."""
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (BrokerError, *_kafka_error_types())):
        print(f"{prog}: broker: {text}", file=sys.stderr)
        sys.exit(EXIT_BROKER)
    if isinstance(exc, RoteError):
        print(f"{prog}: {text}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    print(
        f"{prog}: internal error: {type(exc).__name__}: {text} (ROTE_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    sys.exit(EXIT_FAILED)


def debugging() -> bool:
    return os.environ.get("ROTE_DEBUG", "") not in ("", "0")
