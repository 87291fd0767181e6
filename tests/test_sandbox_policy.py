"""The jail's pure policy, tested directly: the seccomp allow-lists, the verdict (exit status versus
signal, the CPU budget), the workspace scan's caps, the CPU check schedule and the capability check."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rote.sandbox_runner import caps, seccomp, workspace
from rote.sandbox_runner.cgroup import SlotUsage
from rote.sandbox_runner.limits import CPU_CHECK_MIN_SECONDS, Limits, cpu_check_delay
from rote.sandbox_runner.verdict import Evidence, classify, decode_monitor_status, decode_wait_status

X86 = seccomp.AUDIT_ARCH_X86_64
ARM = seccomp.AUDIT_ARCH_AARCH64
KILL = seccomp.SECCOMP_RET_KILL_PROCESS
ALLOW = seccomp.SECCOMP_RET_ALLOW


@pytest.fixture(scope="module", params=[X86, ARM], ids=["x86_64", "aarch64"])
def arch(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _call(arch: int, name: str, *args: int) -> int:
    program = seccomp.build_filter(arch=arch)
    return seccomp.evaluate(program, nr=seccomp.SYSCALLS[arch][name], arch=arch, args=args)


# -- socket families, personality, modify_ldt -------------------------------------------------------------

ALL_FAMILIES = sorted({int(v) for k, v in vars(socket).items() if k.startswith("AF_")} | set(range(0, 46)))


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_only_allow_listed_socket_families_can_be_opened(arch: int, family: int) -> None:
    want = ALLOW if family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK) else KILL
    assert _call(arch, "socket", family, socket.SOCK_STREAM, 0) == want


def test_vsock_packet_and_alg_sockets_kill(arch: int) -> None:
    for family in (socket.AF_VSOCK, socket.AF_PACKET, 38, socket.AF_KEY, socket.AF_TIPC, socket.AF_CAN):
        assert _call(arch, "socket", family, socket.SOCK_DGRAM, 0) == KILL, family


def test_netlink_is_allowed_for_routes_only(arch: int) -> None:
    assert _call(arch, "socket", socket.AF_NETLINK, socket.SOCK_RAW, 0) == ALLOW  # NETLINK_ROUTE
    for protocol in (4, 9, 15, 16, 21):  # sock_diag, audit, kobject_uevent, generic, crypto... all refused
        assert _call(arch, "socket", socket.AF_NETLINK, socket.SOCK_RAW, protocol) == KILL, protocol


def test_the_family_check_reads_the_int_the_kernel_reads(arch: int) -> None:
    # socket(2) takes an int: high bits are ignored by the kernel, so they must not change the verdict.
    assert _call(arch, "socket", (1 << 32) | socket.AF_INET, 1, 0) == ALLOW
    assert _call(arch, "socket", (1 << 32) | socket.AF_VSOCK, 1, 0) == KILL


def test_socketpair_is_unix_only(arch: int) -> None:
    assert _call(arch, "socketpair", socket.AF_UNIX, socket.SOCK_STREAM, 0) == ALLOW
    for family in (socket.AF_INET, socket.AF_VSOCK, socket.AF_NETLINK, 30):
        assert _call(arch, "socketpair", family, socket.SOCK_STREAM, 0) == KILL


@pytest.mark.parametrize("persona", [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF])
def test_safe_personalities_pass(arch: int, persona: int) -> None:
    assert _call(arch, "personality", persona) == ALLOW


@pytest.mark.parametrize(
    "persona",
    [0x0040000, 0x0400000, 0x0100000, 0x0040008, 0x0200000, 0x1, 0x0400000 | 0x0040000, 0xFFFFFFFE],
    ids=[
        "no-aslr",
        "read-implies-exec",
        "mmap-page-zero",
        "no-aslr-linux32",
        "addr-limit-32bit",
        "svr4",
        "both",
        "almost-query",
    ],
)
def test_other_personalities_kill(arch: int, persona: int) -> None:
    assert _call(arch, "personality", persona) == KILL


def test_modify_ldt_kills_on_x86_64() -> None:
    assert _call(X86, "modify_ldt", 1, 0, 16) == KILL
    assert _call(X86, "modify_ldt", 0, 0, 0) == KILL  # even reading the table
    assert "modify_ldt" not in seccomp.SYSCALLS[ARM]  # no such call on arm64


def test_ordinary_calls_still_pass_after_the_argument_checks(arch: int) -> None:
    program = seccomp.build_filter(arch=arch)
    table = seccomp.SYSCALLS[arch]
    others = set(range(0, 450)) - {
        table[n]
        for n in (*seccomp.DENIED, "clone", "clone3", "ioctl", "socket", "socketpair", "personality")
        if n in table
    }
    for nr in sorted(others):
        assert seccomp.evaluate(program, nr=nr, arch=arch) == ALLOW, nr


# -- exit status versus signal --------------------------------------------------------------------------


def test_a_payloads_own_wait_status_is_exact() -> None:
    got = decode_wait_status(159 << 8)
    assert (got.exit_code, got.signal, got.exact) == (159, None, True)
    got = decode_wait_status(signal.SIGSYS)
    assert (got.exit_code, got.signal, got.exact) == (None, signal.SIGSYS, True)
    got = decode_wait_status(0)
    assert (got.exit_code, got.signal) == (0, None)


def test_the_monitors_status_is_ambiguous_above_128() -> None:
    got = decode_monitor_status(159 << 8)  # the monitor exited 159: signal 31, or a payload's `exit 159`
    assert (got.exit_code, got.signal, got.exact) == (None, 31, False)
    got = decode_monitor_status(7 << 8)
    assert (got.exit_code, got.signal, got.exact) == (7, None, True)
    got = decode_monitor_status(255 << 8)  # above 128+64: no signal has that number
    assert (got.exit_code, got.signal) == (255, None)


def _ev(**kw: object) -> Evidence:
    base: dict[str, object] = dict(
        limits=Limits(cpu_seconds=1),
        exit_code=0,
        signal=None,
        killed_for=None,
        cpu_seconds=0.1,
        usage=SlotUsage(),
        loopback_packets=0,
        workspace_full=False,
        file_limit_hit=False,
        stderr_tail=b"",
    )
    base.update(kw)
    return Evidence(**base)


def test_exit_159_is_an_exit_and_sigsys_is_seccomp() -> None:
    assert classify(_ev(exit_code=159))[0] == "exited"
    assert classify(_ev(exit_code=None, signal=signal.SIGSYS))[0] == "seccomp"


def test_an_inferred_signal_says_it_may_be_an_exit_status() -> None:
    reason, detail = classify(_ev(exit_code=None, signal=signal.SIGSYS, status_exact=False))
    assert reason == "seccomp" and "exited with status 159" in detail and "cannot tell" in detail


def test_the_runners_cpu_kill_is_a_cpu_stop_across_processes() -> None:
    reason, detail = classify(_ev(exit_code=None, signal=signal.SIGKILL, killed_for="cpu", cpu_seconds=1.01))
    assert reason == "cpu" and "all its processes together" in detail and "1.01 s used" in detail
    # A seccomp or OOM kill that happened first still wins: the kernel's verdict is certain.
    assert classify(_ev(signal=signal.SIGSYS, killed_for="cpu"))[0] == "seccomp"


def test_throttling_and_a_truncated_scan_are_noted_not_blamed() -> None:
    reason, detail = classify(
        _ev(usage=SlotUsage(cpu_throttled_seconds=0.25), scan_note="the workspace scan stopped at 3 entries")
    )
    assert reason == "exited"
    assert "CPU quota held it back 0.25 s" in detail and "stopped at 3 entries" in detail


def test_file_too_large_in_stderr_is_a_disk_stop() -> None:
    assert classify(_ev(exit_code=1, stderr_tail=b"OSError: [Errno 27] File too large"))[0] == "disk"


# -- the CPU check schedule -----------------------------------------------------------------------------


def test_cpu_checks_wait_as_long_as_the_budget_allows() -> None:
    assert cpu_check_delay(2.0, 1.0) == pytest.approx(2.0)
    assert cpu_check_delay(2.0, 4.0) == pytest.approx(0.5)  # four cores can spend it four times as fast
    assert cpu_check_delay(0.0, 1.0) == CPU_CHECK_MIN_SECONDS
    assert cpu_check_delay(0.001, 1.0) == CPU_CHECK_MIN_SECONDS  # never a busy loop near the edge


def test_cpu_quota_follows_cores() -> None:
    assert Limits(cpu_cores=1).cpu_quota_us == 100_000
    assert Limits(cpu_cores=0.5).cpu_quota_us == 50_000
    assert Limits(cpu_cores=0.001 * 10).cpu_quota_us == 1000  # the kernel's minimum
    with pytest.raises(Exception, match="cpu_cores"):
        Limits(cpu_cores=0)


# -- the workspace scan ---------------------------------------------------------------------------------


def _remove_chain(root: Path, name: str) -> None:
    """Delete a chain of directories `name/name/...` of any depth without recursing (shutil.rmtree, and so
    pytest's own clean-up of old temp dirs, dies of RecursionError on it)."""
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while True:
            try:
                fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        for parent, child in zip(reversed(fds[:-1]), reversed(fds[1:]), strict=True):
            for entry in os.listdir(child):
                os.unlink(entry, dir_fd=child)
            os.rmdir(name, dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture()
def deep_tree(tmp_path: Path) -> Iterator[Path]:
    """1,500 nested directories with a 1 MiB file at the bottom, deeper than Python's recursion limit, as
    the hostile program makes them; removed afterwards without recursing."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(1500):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        big = os.open("big", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.ftruncate(big, 1 << 20)
        os.close(big)
    finally:
        os.close(fd)
    try:
        yield tmp_path
    finally:
        _remove_chain(tmp_path, "d")


def test_scan_survives_deep_nesting_and_says_where_it_stopped(deep_tree: Path) -> None:
    state = workspace.disk_state(deep_tree, 1 << 20)
    assert not state.file_limit_hit  # hidden below the depth cap: not seen, and the scan says so
    assert f"deeper than {workspace.SCAN_MAX_DEPTH}" in state.truncated
    assert state.entries == workspace.SCAN_MAX_DEPTH


def test_scan_stops_at_the_entry_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace, "SCAN_MAX_ENTRIES", 50)
    for i in range(200):
        (tmp_path / f"f{i}").write_bytes(b"")
    state = workspace.disk_state(tmp_path, 1 << 20)
    assert state.entries == 51 and "stopped at 50 entries" in state.truncated


def test_scan_finds_a_file_at_the_limit_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(b"x" * 4096)
    ws = tmp_path / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "link").symlink_to(outside)
    (ws / "a" / "filelink").symlink_to(outside / "huge")
    assert not workspace.disk_state(ws, 4096).file_limit_hit
    (ws / "a" / "b" / "big").write_bytes(b"x" * 4096)
    state = workspace.disk_state(ws, 4096)
    assert state.file_limit_hit and not state.truncated


def test_scan_of_an_unreadable_or_missing_workspace_is_no_evidence(tmp_path: Path) -> None:
    state = workspace.disk_state(tmp_path / "gone", 1024)
    assert (state.full, state.file_limit_hit) == (False, False)


# -- capabilities ------------------------------------------------------------------------------------------


def _status(mask: int) -> str:
    return f"Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t{mask:016x}\nCapEff:\t{mask:016x}\n"


def test_missing_capabilities_are_named() -> None:
    full = sum(1 << caps.CAPABILITY_BITS[c] for c in caps.REQUIRED)
    assert caps.missing_capabilities(_status(full)) == []
    assert caps.missing_capabilities(_status(0)) == list(caps.REQUIRED)
    without_admin = full & ~(1 << caps.CAPABILITY_BITS["CAP_SYS_ADMIN"])
    assert caps.missing_capabilities(_status(without_admin)) == ["CAP_SYS_ADMIN"]
