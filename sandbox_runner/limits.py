"""Resource limits of one sandboxed run, and how they map onto rlimits.

The defaults are sized for generated automations: short scripts that move a few values between files and
forms. They are small on purpose, so a hostile or runaway script costs the shared machine little, and a
test that needs more says so explicitly.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from rote.errors import ConfigError

MiB = 1024 * 1024
#: The CFS period the CPU quota is expressed in (the kernel's default, 100 ms).
CPU_PERIOD_US = 100_000


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one run may use. Every limit is enforced by the kernel, not by asking the payload.

    - `wall_seconds` (10): wall-clock time from release of the payload; past it the whole jail is killed.
    - `cpu_seconds` (5): CPU time of the whole jail, every process and thread together: the runner reads the
      slot's CPU cgroup counter while the run goes and kills the jail when it passes this. RLIMIT_CPU
      (whole seconds, rounded up) stays as the per-process backstop, and is all there is on a host
      without a CPU accounting cgroup.
    - `cpu_cores` (1.0): how many cores' worth of CPU time the jail may use per second of wall time (the
      CFS quota of the slot's `cpu` cgroup), so one jail cannot take every core of a shared machine.
    - `memory_bytes` (256 MiB): resident memory of the jail's processes (memory cgroup where the host
      allows one; otherwise the address-space rlimit is the only bound).
    - `pids` (64): processes and threads at once (pids cgroup, plus RLIMIT_NPROC for the run's own uid).
    - `output_bytes` (1 MiB): stdout plus stderr; past it the jail is killed.
    - `file_bytes` (16 MiB): the largest file a process may write (RLIMIT_FSIZE).
    - `open_files` (256): open file descriptors per process (RLIMIT_NOFILE).
    - `workspace_bytes` (64 MiB): size of the tmpfs the payload works in; /tmp lives inside it.
    - `network` (False): share the host's network; off means an empty network namespace.
    """

    wall_seconds: float = 10.0
    cpu_seconds: float = 5.0
    cpu_cores: float = 1.0
    memory_bytes: int = 256 * MiB
    pids: int = 64
    output_bytes: int = 1 * MiB
    file_bytes: int = 16 * MiB
    open_files: int = 256
    workspace_bytes: int = 64 * MiB
    network: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.wall_seconds <= 24 * 3600:
            raise ConfigError(f"wall_seconds must be in (0, 86400], got {self.wall_seconds}")
        if not 0 < self.cpu_seconds <= 24 * 3600:
            raise ConfigError(f"cpu_seconds must be in (0, 86400], got {self.cpu_seconds}")
        if not 0.01 <= self.cpu_cores <= 1024:
            raise ConfigError(f"cpu_cores must be in [0.01, 1024], got {self.cpu_cores}")
        if self.memory_bytes < 16 * MiB:
            raise ConfigError(f"memory_bytes must be at least 16 MiB, got {self.memory_bytes}")
        if not 1 <= self.pids <= 100_000:
            raise ConfigError(f"pids must be in [1, 100000], got {self.pids}")
        if self.output_bytes < 0:
            raise ConfigError("output_bytes must not be negative")
        if self.file_bytes < 0:
            raise ConfigError("file_bytes must not be negative")
        if not 16 <= self.open_files <= 1_048_576:
            raise ConfigError(f"open_files must be in [16, 1048576], got {self.open_files}")
        if self.workspace_bytes < 64 * 1024:
            raise ConfigError("workspace_bytes must be at least 64 KiB")

    @property
    def cpu_rlimit(self) -> int:
        """RLIMIT_CPU counts whole seconds."""
        return max(1, math.ceil(self.cpu_seconds))

    @property
    def cpu_quota_us(self) -> int:
        """The CFS quota per `CPU_PERIOD_US` period that gives `cpu_cores` cores (the kernel's minimum is
        1 ms)."""
        return max(1000, round(self.cpu_cores * CPU_PERIOD_US))

    def address_space_bytes(self, *, cgroup_memory: bool) -> int:
        """RLIMIT_AS for the payload.

        With a memory cgroup the cgroup is the real bound on resident memory, and the address-space limit
        is only a backstop: interpreters reserve far more virtual memory than they touch (thread stacks,
        arenas), so it is set well above the cgroup limit to let the cgroup, which reports what happened,
        trip first. Without a cgroup it is the only memory bound there is.
        """
        if cgroup_memory:
            return 4 * self.memory_bytes + 1024 * MiB
        return self.memory_bytes

    def nproc_rlimit(self) -> int:
        # The slot's launcher thread, bubblewrap's monitor and the jail's pid 1 run under the run's uid too.
        return self.pids + 4

    def rlimits(self, *, cgroup_memory: bool, cgroup_pids: bool) -> list[tuple[int, int]]:
        """`(resource, value)` pairs, each set as soft and hard limit on the jail's pid 1 before it execs
        the payload (`launcher.SlotLauncher.set_rlimits`): every jailed process inherits them and none
        can raise them (that takes CAP_SYS_RESOURCE)."""
        cpu = self.cpu_rlimit
        # With a pids cgroup, headroom lets the cgroup, whose counter says what happened, refuse first.
        nproc = self.nproc_rlimit() + (2 if cgroup_pids else 0)
        return [
            (resource.RLIMIT_CPU, cpu),
            (resource.RLIMIT_AS, self.address_space_bytes(cgroup_memory=cgroup_memory)),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_NPROC, nproc),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_MEMLOCK, 0),
            (resource.RLIMIT_MSGQUEUE, 0),
        ]


#: The runner never polls a jail's CPU counter more often than this (it sleeps on the jail's pipes
#: meanwhile), so a jail at the edge of its budget overshoots it by at most this times its cores.
CPU_CHECK_MIN_SECONDS = 0.01
#: The same where the CPU time has to be summed from /proc (no CPU cgroup): a scan costs milliseconds.
PROC_CPU_CHECK_MIN_SECONDS = 0.1


def cpu_check_delay(
    remaining_seconds: float, cores: float, *, minimum: float = CPU_CHECK_MIN_SECONDS
) -> float:
    """How long the runner may wait before the jail could have used `remaining_seconds` of CPU time.

    With at most `cores` cores' worth of CPU per wall second (the CFS quota, or the CPUs the runner may use
    where there is none), the budget cannot run out sooner than remaining / cores; checking then, instead
    of on a fixed tick, costs one read per few hundred milliseconds for a quiet jail and stays precise for
    a busy one.
    """
    return max(minimum, remaining_seconds / max(cores, 0.01))
