"""Sandbox overhead: the same script run in the jail and unjailed, side by side in one process.

Runs alternate (jail, plain, jail, plain, ...) so load from other processes on the shared machine hits
both sides alike; medians, not means, so one descheduled run does not move the answer. Both sides run
the same binary (the jail's own interpreter, Debian's /usr/bin/python3, not the pyenv one running the
benchmark) with the same arguments and the same environment (`Jail.payload_env`), so the difference is
the jail. Besides wall time, each run's CPU time is counted (the runner's own, all threads, plus that of
every process it reaped): on a shared 2-core machine that is the part of the overhead other people's load
cannot hide or inflate. Throughput is measured with the jail's own concurrency (each slot its own uid), as
the service uses it.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rote.sandbox_runner.jail import Jail, JobSpec, Limits

PY_SCRIPT = b"import sys\nsys.stdout.write('hello\\n')\n"
SH_SCRIPT = b"echo hello\n"


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _plain(argv: list[str], env: dict[str, str], workdir: Path) -> tuple[float, float]:
    cpu = _cpu()
    began = time.perf_counter()
    subprocess.run(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return time.perf_counter() - began, _cpu() - cpu


def _jailed(jail: Jail, job: JobSpec) -> tuple[float, float]:
    cpu = _cpu()
    began = time.perf_counter()
    res = jail.run(job)
    elapsed = time.perf_counter() - began
    if not res.ok:
        raise RuntimeError(f"benchmark payload failed in the jail: {res.stop_reason} {res.detail}")
    return elapsed, _cpu() - cpu


def _version(argv0: str) -> str:
    """What the interpreter says it is (`python3 -V`); for a shell, the binary it resolves to."""
    if "python" in Path(argv0).name:
        out = subprocess.run([argv0, "-V"], capture_output=True, text=True, check=True, env={})
        return f"{argv0} ({(out.stdout or out.stderr).strip()})"
    return f"{argv0} (-> {os.path.realpath(argv0)})"


def overhead(jail: Jail, *, argv: list[str], files: dict[str, bytes], repeats: int) -> dict[str, Any]:
    job = JobSpec(files=files, argv=argv, limits=Limits())
    plain_argv = jail.resolve_argv(argv)  # the very binary and arguments the jail runs
    env = jail.payload_env(job)
    jailed: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="rote-bench-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        for _ in range(2):  # warm the page cache and the interpreter's .pyc files on both sides
            _jailed(jail, job)
            _plain(plain_argv, env, Path(tmp))
        for _ in range(repeats):
            jailed.append(_jailed(jail, job))
            plain.append(_plain(plain_argv, env, Path(tmp)))
    j = statistics.median(w for w, _ in jailed)
    p = statistics.median(w for w, _ in plain)
    j_cpu = statistics.median(c for _, c in jailed)
    p_cpu = statistics.median(c for _, c in plain)
    return {
        "command": " ".join(plain_argv),
        "interpreter": _version(plain_argv[0]),
        "runs": repeats,
        "jail_median_ms": round(j * 1000, 3),
        "plain_median_ms": round(p * 1000, 3),
        "overhead_ms": round((j - p) * 1000, 3),
        "ratio": round(j / p, 3),
        "jail_cpu_median_ms": round(j_cpu * 1000, 3),
        "plain_cpu_median_ms": round(p_cpu * 1000, 3),
        "cpu_overhead_ms": round((j_cpu - p_cpu) * 1000, 3),
    }


def throughput(jail: Jail, *, concurrency: int, runs: int) -> dict[str, float]:
    job = JobSpec(files={"s.sh": SH_SCRIPT}, argv=["sh", "s.sh"])
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(jail.run, [job] * runs))
    elapsed = time.perf_counter() - began
    failed = sum(1 for r in results if not r.ok)
    return {
        "concurrency": concurrency,
        "runs": runs,
        "failed": failed,
        "runs_per_second": round(runs / elapsed, 2),
    }


def run_benchmark(*, quick: bool) -> dict[str, Any]:
    """Jail overhead per run (median, ratio) for a shell and a Python script, and runs/s at 1 and 2 slots."""
    repeats = 15 if quick else 60
    runs = 20 if quick else 100
    load_before = os.getloadavg()[0]
    with Jail(max_concurrency=2) as jail:
        sh = overhead(jail, argv=["sh", "s.sh"], files={"s.sh": SH_SCRIPT}, repeats=repeats)
        py = overhead(jail, argv=["python3", "s.py"], files={"s.py": PY_SCRIPT}, repeats=repeats)
        serial = throughput(jail, concurrency=1, runs=runs)
        parallel = throughput(jail, concurrency=2, runs=runs)
        env = jail.describe()
    return {
        "name": "sandbox",
        "quick": quick,
        "overhead_sh": sh,
        "overhead_python": py,
        "throughput_1": serial,
        "throughput_2": parallel,
        "target_overhead_ms": 10.0,
        "overhead_within_target": max(sh["overhead_ms"], py["overhead_ms"]) <= 10.0,
        "cgroups": env["cgroups"]["controllers"],
        "cgroup_entry": env["cgroup_entry"],
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
