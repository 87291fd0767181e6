"""The sandbox runner's deploy files really start: checked statically against what the jail checks, and the
jail run for real under exactly the manifests' settings.

No container engine or cluster runs here, so the manifests are parsed (Kubernetes, compose, Dockerfile)
and compared with `rote.sandbox_runner.caps.REQUIRED` and the jail's own paths; then `rote sandbox run`
and the hostile suite run as root with exactly the manifest's capability set (setpriv), once on the host
and once inside a fresh user namespace with read-only cgroups, as a `hostUsers: false` pod has. The old
manifest's non-root user is shown refused.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rote.sandbox_runner.caps import REQUIRED
from rote.sandbox_runner.jail import Jail

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
HOSTILE = Path(__file__).parent / "hostile"
SETPRIV = shutil.which("setpriv")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None or SETPRIV is None,
    reason="needs root, bubblewrap and setpriv",
)
K8S_CAPS = sorted(c.removeprefix("CAP_") for c in REQUIRED)


def _deployment() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "sandbox-runner.yaml").read_text()))
    return next(d for d in docs if d["kind"] == "Deployment")


def _manifest_caps() -> list[str]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return list(container["securityContext"]["capabilities"]["add"])


# -- static ------------------------------------------------------------------------------------------------


def test_k8s_runner_is_root_with_exactly_the_capabilities_the_jail_checks() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert pod["securityContext"]["runAsUser"] == sc["runAsUser"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is False and sc["runAsNonRoot"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sorted(sc["capabilities"]["add"]) == K8S_CAPS
    assert sc["privileged"] is False and "allowPrivilegeEscalation" not in sc  # forced true with SYS_ADMIN
    # bubblewrap's fresh /proc per jail needs an unmasked /proc, which Kubernetes allows only with a pod
    # user namespace; namespaces need the runtime's profiles off (the payload gets rote's own filter).
    assert pod["hostUsers"] is False and sc["procMount"] == "Unmasked"
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert pod["automountServiceAccountToken"] is False


def test_k8s_runner_can_write_where_the_jail_writes_and_reads_its_key() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (Jail.DEFAULT_STATE_DIR, Jail.UID_LOCK_DIR):
        assert str(path) in mounts and "emptyDir" in volumes[mounts[str(path)]["name"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    key = Path(env["ROTE_RESULT_KEY_FILE"])
    mount = mounts[str(key.parent)]
    secret = volumes[mount["name"]]["secret"]
    assert mount["readOnly"] is True and secret["defaultMode"] == 0o400
    assert [i["path"] for i in secret["items"]] == [key.name]
    assert env["ROTE_METRICS_ADDR"] == "0.0.0.0" and env["ROTE_SANDBOX_METRICS_PORT"] == "9465"
    assert container["image"] == "rote-sandbox:dev" and "command" not in container  # the image's entrypoint


def test_compose_runner_matches_the_same_contract() -> None:
    svc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["sandbox-runner"]
    assert svc["user"] == "0:0" and svc["cap_drop"] == ["ALL"] and sorted(svc["cap_add"]) == K8S_CAPS
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= set(svc["security_opt"])
    assert svc["build"]["dockerfile"] == "deploy/Dockerfile.sandbox"
    assert svc["read_only"] is True
    assert {str(Jail.DEFAULT_STATE_DIR), str(Jail.UID_LOCK_DIR)} <= set(svc["tmpfs"])
    env = svc["environment"]
    assert env["ROTE_RESULT_KEY_FILE"] == "/run/secrets/result-key"
    assert env["ROTE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["ROTE_KAFKA_USERNAME"] == "rote-sandbox"
    assert set(svc["secrets"]) == {"result-key", "rote-sandbox.password", "kafka-ca.pem"}
    assert "privileged" not in svc


def test_dockerfile_runs_serve_as_root_with_bubblewrap() -> None:
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile.sandbox").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] in ("0", "0:0", "root")
    assert any("bubblewrap" in ln for ln in lines)
    entry = next(ln for ln in lines if ln.startswith("ENTRYPOINT "))
    assert json.loads(entry.removeprefix("ENTRYPOINT ")) == ["rote", "sandbox", "serve"]
    assert any("-perm /6000" in ln and "a-s" in ln for ln in lines)  # no setuid program left


# -- for real ----------------------------------------------------------------------------------------------


def _bounding(caps: list[str]) -> list[str]:
    spec = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
    return [str(SETPRIV), "--bounding-set", spec, "--inh-caps", "-all", "--"]


def _rote(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("rote")), *args]


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A scratch folder other uids can reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="rote-deploy-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


SCRIPT = "import os\nopen('r.txt', 'w').write('payload')\nos.chmod('r.txt', 0)\nprint(os.getuid())\n"


@needs_root
def test_the_jail_runs_with_exactly_the_manifests_capabilities(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    cmd = [
        *_bounding(_manifest_caps()),
        *_rote("sandbox", "run", str(script), "--json", "--collect", "r.txt"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "passed" and out["collected"] == {"r.txt": "payload"}
    assert int(out["stdout"]) >= 61000  # the payload ran as a slot uid, not as root


@needs_root
@pytest.mark.parametrize("missing", K8S_CAPS)
def test_each_capability_is_needed_and_named_when_missing(tmp_path: Path, missing: str) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('hi')\n")
    caps = [c for c in _manifest_caps() if c != missing]
    proc = subprocess.run(
        [*_bounding(caps), *_rote("sandbox", "run", str(script))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and f"CAP_{missing}" in proc.stderr, proc.stderr


@needs_root
def test_the_old_non_root_manifest_could_not_start(open_dir: Path) -> None:
    script = open_dir / "s.py"
    script.write_text("print('hi')\n")
    script.chmod(0o644)
    # runAsUser 10001 with every capability dropped, as deploy/k8s/sandbox-runner.yaml had it.
    cmd = [
        str(SETPRIV),
        "--reuid",
        "10001",
        "--regid",
        "10001",
        "--clear-groups",
        "--inh-caps",
        "-all",
        "--bounding-set",
        "-all",
        "--",
        *_rote("sandbox", "run", str(script)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd="/")
    if "Permission denied" in proc.stderr and "rote" in proc.stderr and proc.returncode != 2:
        pytest.skip("the venv is not readable by an unprivileged uid here")
    assert proc.returncode == 2 and "must start as root" in proc.stderr, proc.stderr


# -- inside a pod's user namespace ----------------------------------------------------------------------

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


def _world_readable_python() -> list[str] | None:
    """An interpreter an unmapped-owner view of the file system can run, with this venv's packages.

    Inside a pod's user namespace, files of the node's root belong to nobody: a Python under root's
    0700 home (pyenv) is out of reach, Debian's /usr/bin/python3 of the same version is not.
    """

    def reachable(path: Path) -> bool:
        return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.is_dir())

    site = sysconfig.get_paths()["purelib"]
    if reachable(Path(sys.base_prefix)):
        exe = sys.executable
    elif Path("/usr/bin/python3").exists():
        exe = "/usr/bin/python3"
        ver = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if ver != str(tuple(sys.version_info[:2])):
            return None
    else:
        return None
    if not reachable(Path(site)):
        return None
    shim = (
        f"import site, sys; site.addsitedir({site!r}); sys.argv[0] = 'rote'; "
        "from rote.cli import main; main()"
    )
    return [exe, "-c", shim]


def _in_pod_namespace(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv as root of a new user namespace mapping uids 0-65535 to 300000 and up (as Kubernetes does
    for hostUsers: false), with a private mount namespace whose /run is the pod's own tmpfs."""
    libc = ctypes.CDLL(None, use_errno=True)
    out_r, out_w = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
                os._exit(120)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
                os._exit(121)
            if libc.mount(b"tmpfs", b"/run", b"tmpfs", 0, b"mode=0755") != 0:
                os._exit(122)
            os.execv(argv[0], argv)
        finally:
            os._exit(123)
    os.close(out_w)
    os.read(ready_r, 1)
    for name in ("uid_map", "gid_map"):
        Path(f"/proc/{pid}/{name}").write_text("0 300000 65536\n")
    os.write(go_w, b"1")
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    for fd in (out_r, ready_r, ready_w, go_r, go_w):
        os.close(fd)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), b"".join(chunks).decode(), "")


@needs_root
def test_the_jail_works_in_a_pod_user_namespace_without_writable_cgroups(open_dir: Path) -> None:
    python = _world_readable_python()
    if python is None:
        pytest.skip("no interpreter with this venv's packages is reachable from a user namespace here")
    script = open_dir / "s.py"
    script.write_text(SCRIPT)
    suite = open_dir / "suite"
    suite.mkdir()
    for name in (
        "20_write_host_canary.py",
        "30_ptrace.py",
        "61_cpu_fork_replacements.py",
        "64_vsock.py",
        "43_background_leftover.sh",
        "67_exit_159.sh",
    ):
        shutil.copy(HOSTILE / name, suite / name)
    tail = [*_bounding(_manifest_caps()), *python]
    info = _in_pod_namespace([*tail, "sandbox", "info", "--json"])
    assert info.returncode == 0, info.stdout
    desc = json.loads(info.stdout.splitlines()[-1])
    assert desc["cgroups"]["controllers"] == []  # read-only cgroups, as in a pod: rlimits and /proc only
    run = _in_pod_namespace([*tail, "sandbox", "run", str(script), "--json", "--collect", "r.txt"])
    assert run.returncode == 0, run.stdout
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["verdict"] == "passed" and out["collected"] == {"r.txt": "payload"}
    hostile = _in_pod_namespace([*tail, "sandbox", "hostile", str(suite), "--json"])
    report = json.loads(hostile.stdout.splitlines()[-1])
    assert hostile.returncode == 0 and report["contained"] == report["programs"] == 6, report
