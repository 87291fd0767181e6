"""The Linux capabilities the sandbox runner needs, and the check that it has them.

The runner starts as root (uid 0) but needs only a handful of root's powers; a container should grant
exactly these (`deploy/k8s/sandbox-runner.yaml`, `deploy/compose.yaml`) and drop the rest. Each one, and
why (docs/sandbox.md, "Deploying", has the long form):

- CAP_SETUID, CAP_SETGID: each slot's launcher thread drops to the slot's uid and gid and clears its
  supplementary groups (setresuid, setresgid, setgroups), so payloads never run as root.
- CAP_SYS_ADMIN: mount and unmount each run's size-capped tmpfs workspace.
- CAP_CHOWN: hand the workspace and the job's files, written by root, to the run's uid.
- CAP_DAC_READ_SEARCH: read back the workspace after the run (disk scan, collected files) whatever modes
  the payload left on it; read-only, unlike CAP_DAC_OVERRIDE.
- CAP_KILL: kill the jail's pid 1 (wall time, output, CPU) and anything left in the slot's cgroups; they
  run as the slot's uid, not root.

Not needed, and so refused in the manifests: CAP_SYS_RESOURCE (rlimits are set by the launcher thread as
the slot's own uid), CAP_SYS_PTRACE, CAP_NET_ADMIN, CAP_DAC_OVERRIDE, CAP_FOWNER, and the rest. The jail
refuses to start without the required ones, naming them, instead of failing half-way into a run.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CAPABILITY_BITS", "REQUIRED", "effective_capabilities", "missing_capabilities"]

#: Capability numbers from linux/capability.h for the ones the runner uses or is asked about.
CAPABILITY_BITS: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
}

#: What the runner needs, in the spelling of linux/capability.h (manifests drop the CAP_ prefix).
REQUIRED: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_READ_SEARCH",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
)


def effective_capabilities(status: str | None = None) -> int:
    """The calling thread's effective capability mask (CapEff of /proc/thread-self/status)."""
    text = status if status is not None else Path("/proc/thread-self/status").read_text()
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    return 0


def missing_capabilities(status: str | None = None) -> list[str]:
    """The required capabilities this thread lacks, by name; empty when the runner may start."""
    mask = effective_capabilities(status)
    return [name for name in REQUIRED if not mask >> CAPABILITY_BITS[name] & 1]
