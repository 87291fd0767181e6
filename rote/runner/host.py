"""The run host: the child process that runs generated automations with the production drivers.

`python -m rote.runner.host --root DIR [--site R=N] [--allow HOST:PORT] ...` is started by the executor
(`rote.runner.pool`) under the runner's unprivileged uid. Before it reads any automation it

1. lowers its own resource limits (CPU seconds, open files, file size, processes, no core dumps): the
   limits are inherited by the Playwright driver and Chromium it starts and cannot be raised again by
   an unprivileged process;
2. moves stdout to stderr and keeps the original stdout for the protocol, so nothing an automation
   prints can forge a result;
3. starts Chromium if the automation has web steps (with the allow-list as host-resolver rules and
   request routing);
4. installs a Python audit hook that refuses any socket connection to an address that is not allowed and
   any new process (the browser is already running): a tripwire for the generated code and the Python
   drivers. It is not a security boundary against hostile native code (ctypes can get past an audit
   hook); the uid, the rlimits and the executor's timeout are.

Protocol: one JSON object per line. In: `{"run_id", "script", "params"}` (script = path of the generated
Python file, written by the executor). Out: `{"event": "ready"}` once, `{"event": "step", "step": i}`
before each action (so a timeout can name the step that hung), and `{"event": "done", "outcome",
"steps": [{"step", "op", "seconds", "ok"}], "error", "failed_step", "cpu_seconds"}` per run. Values are
never sent back: only timings and the error text.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

_PROTO: IO[str] | None = None


def _send(obj: Mapping[str, Any]) -> None:
    assert _PROTO is not None
    _PROTO.write(json.dumps(obj, ensure_ascii=True) + "\n")
    _PROTO.flush()


def set_limits(*, cpu: int, nofile: int, fsize: int, nproc: int | None) -> None:
    """Lower this process's limits (soft = hard, so they cannot be raised back)."""
    pairs: list[tuple[int, int]] = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_FSIZE, fsize),
    ]
    if nproc is not None:
        pairs.append((resource.RLIMIT_NPROC, nproc))
    for which, value in pairs:
        _soft, hard = resource.getrlimit(which)
        new = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (new, new))


def _resolve_allowed(allowed: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """The IP addresses (with ports) of the allowed hosts, resolved once before the hook is installed."""
    out: set[tuple[str, int]] = set()
    for host, port in allowed:
        try:
            for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
                out.add((str(info[4][0]), port))
        except OSError:
            continue
    return out


def install_audit_hook(allowed_ips: set[tuple[str, int]]) -> None:
    """Refuse connections outside the allow-list and new processes, from here on (hooks cannot be removed)."""
    spawn_events = {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "pty.spawn",
    }

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            sock, address = args[0], args[1]
            family = getattr(sock, "family", None)
            if family in (socket.AF_INET, socket.AF_INET6):
                if (str(address[0]), int(address[1])) not in allowed_ips:
                    raise PermissionError(f"network allow-list: {address[0]}:{address[1]} is not allowed")
            else:
                raise PermissionError("network allow-list: only TCP/IP connections to allowed hosts")
        elif event in spawn_events:
            raise PermissionError(f"the run host starts no processes ({event})")

    sys.addaudithook(hook)


def _load_script(path: Path) -> types.ModuleType:
    """The generated module, with `rote_runtime` bound to the runtime the drivers were built against."""
    from rote.generator import runtime

    sys.modules["rote_runtime"] = runtime
    module = types.ModuleType("rote_automation")
    module.__file__ = str(path)
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    exec(code, module.__dict__)  # the executor checked it is what rote's templates render from the plan
    return module


def _run_one(production: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    from rote.drivers import bind
    from rote.generator.runtime import ActionError, Api

    steps: list[dict[str, Any]] = []

    class TimedApi(Api):
        """The action API, timing every action and telling the executor which step is running."""

        def _do(self, step: int, op: str, target: Mapping[str, str], value: str | None = None) -> str | None:
            _send({"event": "step", "step": step})
            t0 = time.perf_counter()
            ok = False
            try:
                got = super()._do(step, op, target, value)
                ok = True
                return got
            finally:
                steps.append({"step": step, "op": op, "seconds": time.perf_counter() - t0, "ok": ok})

    cpu0 = time.process_time()
    out: dict[str, Any] = {"event": "done", "run_id": request.get("run_id"), "steps": steps}
    try:
        module = _load_script(Path(str(request["script"])))
        params = {str(k): str(v) for k, v in dict(request.get("params") or {}).items()}
        missing = [p for p in getattr(module, "PARAMETERS", ()) if p not in params]
        if missing:
            raise ActionError(f"missing parameters: {', '.join(missing)}")
        production.begin_run()
        try:
            module.run(TimedApi(bind(production)), params)
        finally:
            production.end_run()
        out.update(outcome="succeeded", error=None, failed_step=None)
    except ActionError as exc:
        out.update(
            outcome="failed" if exc.step is not None else "error", error=str(exc)[:2000], failed_step=exc.step
        )
    except Exception as exc:  # a bug in a driver or the script: reported as an error of this run
        failed = next((s["step"] for s in reversed(steps) if not s["ok"]), None)
        out.update(outcome="error", error=f"{type(exc).__name__}: {exc}"[:2000], failed_step=failed)
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def main(argv: list[str] | None = None) -> int:
    global _PROTO
    ap = argparse.ArgumentParser(description="rote run host (started by `rote runner`; not for direct use)")
    ap.add_argument("--root", required=True, help="folder the automation's files and workbooks live in")
    ap.add_argument("--site", action="append", default=[], help="RECORDED=NOW site mapping")
    ap.add_argument("--allow", action="append", default=[], help="HOST:PORT the automation may reach")
    ap.add_argument("--browser", action="store_true", help="start Chromium (the automation has web steps)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--step-timeout", type=float, default=10.0)
    ap.add_argument("--work", required=True, help="private folder for HOME, TMPDIR and browser profiles")
    ap.add_argument("--cpu", type=int, default=600)
    ap.add_argument("--nofile", type=int, default=4096)
    ap.add_argument("--fsize", type=int, default=256 << 20)
    ap.add_argument("--nproc", type=int, default=0, help="process/thread cap for the uid (0: not set)")
    args = ap.parse_args(argv)

    set_limits(cpu=args.cpu, nofile=args.nofile, fsize=args.fsize, nproc=args.nproc or None)
    _PROTO = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    work = Path(args.work)
    os.environ.update(HOME=str(work), TMPDIR=str(work), XDG_CONFIG_HOME=str(work), XDG_CACHE_HOME=str(work))

    from rote.drivers import production_driver
    from rote.drivers.targets import SiteMap

    allowed: set[tuple[str, int]] = set()
    for item in args.allow:
        host, _, port = item.rpartition(":")
        allowed.add((host.strip("[]"), int(port)))
    production = production_driver(
        root=Path(args.root),
        sites=SiteMap.parse(args.site),
        allowed=allowed,
        step_timeout=args.step_timeout,
        executable=args.chromium,
        profile_root=work,
    )
    try:
        if args.browser:
            production.browser.start()
    except Exception as exc:
        _send({"event": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 2
    install_audit_hook(_resolve_allowed(allowed))
    _send({"event": "ready"})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            _send(_run_one(production, request))
    finally:
        production.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
