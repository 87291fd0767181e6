"""A seccomp-bpf filter for the jail, assembled here so the runner needs no libseccomp binding.

bubblewrap loads a compiled classic-BPF program from a file descriptor (`--seccomp FD`) just before it
executes the payload. The namespaces, the non-root uid and the dropped capabilities already make most
dangerous system calls fail with EPERM; the filter is the second wall: it *kills* the whole process on calls
an automation never has a reason to make (ptrace, mount, namespaces, keyrings, kernel modules, BPF, ...)
so the attempt shows up in the run's result as `seccomp` instead of being silently survived, and it shrinks
the kernel attack surface reachable from the jail (io_uring, userfaultfd, perf events, modify_ldt).

Three calls are checked by argument against allow-lists rather than a deny-list, because their dangerous
uses are open-ended: `socket`/`socketpair` (only the families in `SOCKET_FAMILIES`; a deny-list would
miss the next AF_VSOCK), `personality` (only `PERSONALITIES`), plus `clone` (no namespace flags) and
`ioctl` (no TIOCSTI/TIOCLINUX).

Only architectures whose syscall numbers are listed here are supported; on any other the filter cannot be
built and the jail refuses to run (fail closed) instead of running without it.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass

from rote.errors import SandboxError

# BPF instruction classes and fields (linux/bpf_common.h).
_BPF_LD = 0x00
_BPF_JMP = 0x05
_BPF_RET = 0x06
_BPF_ALU = 0x04
_BPF_W = 0x00
_BPF_ABS = 0x20
_BPF_K = 0x00
_BPF_JEQ = 0x10
_BPF_JGE = 0x30
_BPF_JSET = 0x40
_BPF_AND = 0x50

# seccomp return actions (linux/seccomp.h).
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# struct seccomp_data offsets.
_OFF_NR = 0
_OFF_ARCH = 4


def _off_arg_lo(i: int) -> int:
    # Arguments are u64 at 16 + 8*i; the low word comes first on the little-endian targets we support.
    return 16 + 8 * i


AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
_X32_SYSCALL_BIT = 0x40000000
ENOSYS = 38

# Namespace-creating clone flags: a payload that could create a user namespace gets a full capability set in
# it, which is how most container escapes start.
CLONE_NS_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)
TIOCSTI = 0x5412  # push bytes into a terminal's input queue: the classic sandbox escape
TIOCLINUX = 0x541C

#: Socket families a jailed process may open (`socket`'s first argument). Local IPC, IP (which reaches
#: only the jail's own loopback unless the policy shares the network), and route netlink, which glibc's
#: resolver uses to list interfaces. Everything else kills: AF_VSOCK is a path to the hypervisor on a VM,
#: AF_PACKET sniffs and forges frames, AF_ALG, AF_KEY, AF_RDS, AF_TIPC, AF_CAN, ... are kernel attack
#: surface an automation has no use for.
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_VSOCK = 40
SOCKET_FAMILIES: tuple[int, ...] = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)
#: The only netlink protocol allowed (`socket`'s third argument with AF_NETLINK): NETLINK_ROUTE, read-only
#: here since the payload has no capabilities; uevent, audit, sock_diag and the rest are refused.
NETLINK_ROUTE = 0
#: `socketpair` exists only for AF_UNIX in practice; nothing else is allowed there.
SOCKETPAIR_FAMILIES: tuple[int, ...] = (AF_UNIX,)
#: personality() values allowed (Docker's default profile allows the same): PER_LINUX, PER_LINUX32,
#: UNAME26 with either, and 0xffffffff, which only queries. Any other flag (ADDR_NO_RANDOMIZE turning
#: off ASLR, READ_IMPLIES_EXEC making every mapping executable, MMAP_PAGE_ZERO, ...) weakens the
#: mitigations every later exec runs under, so it kills.
PERSONALITIES: tuple[int, ...] = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: System calls that kill the payload. Names are the kernel's (x86_64 spelling).
DENIED: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "uselib",
    "nfsservctl",
    "lookup_dcookie",
    "_sysctl",
    "ustat",
    "sysfs",
    "afs_syscall",
    "tuxcall",
    "security",
    "vserver",
    # x86 local descriptor tables: 16-bit segments are a long line of kernel bugs (and espfix leaks).
    "modify_ldt",
)

#: Syscall numbers per audit arch. x86_64 from asm/unistd_64.h; aarch64 from asm-generic/unistd.h (calls
#: that do not exist there are simply absent).
SYSCALLS: dict[int, dict[str, int]] = {
    AUDIT_ARCH_X86_64: {
        "ioctl": 16,
        "socket": 41,
        "socketpair": 53,
        "clone": 56,
        "personality": 135,
        "modify_ldt": 154,
        "ptrace": 101,
        "syslog": 103,
        "uselib": 134,
        "ustat": 136,
        "sysfs": 139,
        "vhangup": 153,
        "pivot_root": 155,
        "_sysctl": 156,
        "adjtimex": 159,
        "chroot": 161,
        "acct": 163,
        "settimeofday": 164,
        "mount": 165,
        "umount2": 166,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "iopl": 172,
        "ioperm": 173,
        "create_module": 174,
        "init_module": 175,
        "delete_module": 176,
        "get_kernel_syms": 177,
        "query_module": 178,
        "quotactl": 179,
        "nfsservctl": 180,
        "afs_syscall": 183,
        "tuxcall": 184,
        "security": 185,
        "lookup_dcookie": 212,
        "clock_settime": 227,
        "vserver": 236,
        "kexec_load": 246,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "unshare": 272,
        "perf_event_open": 298,
        "name_to_handle_at": 303,
        "open_by_handle_at": 304,
        "clock_adjtime": 305,
        "setns": 308,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "kcmp": 312,
        "finit_module": 313,
        "kexec_file_load": 320,
        "bpf": 321,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "clone3": 435,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
        "quotactl_fd": 443,
    },
    AUDIT_ARCH_AARCH64: {
        "ioctl": 29,
        "umount2": 39,
        "mount": 40,
        "pivot_root": 41,
        "nfsservctl": 42,
        "chroot": 51,
        "vhangup": 58,
        "quotactl": 60,
        "lookup_dcookie": 18,
        "acct": 89,
        "unshare": 97,
        "kexec_load": 104,
        "init_module": 105,
        "delete_module": 106,
        "syslog": 116,
        "ptrace": 117,
        "clock_settime": 112,
        "reboot": 142,
        "settimeofday": 170,
        "adjtimex": 171,
        "socket": 198,
        "socketpair": 199,
        "personality": 92,
        "swapon": 224,
        "swapoff": 225,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "clone": 220,
        "perf_event_open": 241,
        "setns": 268,
        "name_to_handle_at": 264,
        "open_by_handle_at": 265,
        "clock_adjtime": 266,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "kcmp": 272,
        "finit_module": 273,
        "bpf": 280,
        "userfaultfd": 282,
        "kexec_file_load": 294,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "clone3": 435,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
        "quotactl_fd": 443,
    },
}

_MACHINES = {
    "x86_64": AUDIT_ARCH_X86_64,
    "amd64": AUDIT_ARCH_X86_64,
    "aarch64": AUDIT_ARCH_AARCH64,
    "arm64": AUDIT_ARCH_AARCH64,
}


@dataclass(frozen=True)
class _Insn:
    code: int
    k: int
    jt: int | str = 0
    jf: int | str = 0


def _stmt(code: int, k: int) -> _Insn:
    return _Insn(code, k)


def _jump(code: int, k: int, jt: int | str, jf: int | str) -> _Insn:
    return _Insn(code, k, jt, jf)


def native_arch() -> int:
    """The audit arch of this machine, or SandboxError when the filter has no syscall table for it."""
    machine = platform.machine().lower()
    arch = _MACHINES.get(machine)
    if arch is None:
        raise SandboxError(f"no seccomp syscall table for {machine!r}; refusing to run unfiltered")
    return arch


def build_filter(*, arch: int | None = None) -> bytes:
    """The filter as the bytes of a `struct sock_filter[]`, ready to hand to `bwrap --seccomp`."""
    arch = native_arch() if arch is None else arch
    table = SYSCALLS.get(arch)
    if table is None:
        raise SandboxError(f"no seccomp syscall table for audit arch {arch:#x}")
    prog: list[_Insn | str] = [
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _OFF_ARCH),
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, arch, 0, "kill"),
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _OFF_NR),
    ]
    if arch == AUDIT_ARCH_X86_64:
        # x32 system calls reach the same kernel entry points under different numbers.
        prog.append(_jump(_BPF_JMP | _BPF_JGE | _BPF_K, _X32_SYSCALL_BIT, "kill", 0))
    for name in DENIED:
        nr = table.get(name)
        if nr is not None:
            prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, nr, "kill", 0))
    # clone3 passes its flags in memory the filter cannot read: answer ENOSYS so libc falls back to clone,
    # whose flags are a register we can check.
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["clone3"], "enosys", 0))
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["clone"], "clone", 0))
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["ioctl"], "ioctl", 0))
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["socket"], "socket", 0))
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["socketpair"], "socketpair", 0))
    prog.append(_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, table["personality"], "personality", 0))
    prog.append(_stmt(_BPF_RET | _BPF_K, SECCOMP_RET_ALLOW))
    # Each argument check below loads the low 32 bits: the kernel declares these arguments `int` or
    # `unsigned int`, so the high word is ignored by the call itself and cannot smuggle anything past.
    prog += ["socket", _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(0))]
    prog += [
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, fam, "allow", 0) for fam in SOCKET_FAMILIES if fam != AF_NETLINK
    ]
    prog += [
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, AF_NETLINK, 0, "kill"),
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(2)),
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, NETLINK_ROUTE, "allow", "kill"),
        "socketpair",
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(0)),
    ]
    prog += [_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, fam, "allow", 0) for fam in SOCKETPAIR_FAMILIES]
    prog += [
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_KILL_PROCESS),
        "personality",
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(0)),
    ]
    prog += [_jump(_BPF_JMP | _BPF_JEQ | _BPF_K, value, "allow", 0) for value in PERSONALITIES]
    prog.append(_stmt(_BPF_RET | _BPF_K, SECCOMP_RET_KILL_PROCESS))
    prog += [
        "clone",
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(0)),
        _jump(_BPF_JMP | _BPF_JSET | _BPF_K, CLONE_NS_FLAGS, "kill", 0),
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_ALLOW),
        "ioctl",
        _stmt(_BPF_LD | _BPF_W | _BPF_ABS, _off_arg_lo(1)),
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, TIOCSTI, "kill", 0),
        _jump(_BPF_JMP | _BPF_JEQ | _BPF_K, TIOCLINUX, "kill", 0),
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_ALLOW),
        "enosys",
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        "allow",
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_ALLOW),
        "kill",
        _stmt(_BPF_RET | _BPF_K, SECCOMP_RET_KILL_PROCESS),
    ]
    return _assemble(prog)


def _assemble(prog: list[_Insn | str]) -> bytes:
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for pc, insn in enumerate(insns):
        jt = _resolve(insn.jt, pc, labels)
        jf = _resolve(insn.jf, pc, labels)
        out += struct.pack("<HBBI", insn.code, jt, jf, insn.k & 0xFFFFFFFF)
    return bytes(out)


def _resolve(target: int | str, pc: int, labels: dict[str, int]) -> int:
    if isinstance(target, int):
        return target
    offset = labels[target] - pc - 1
    if not 0 <= offset <= 255:
        raise SandboxError(f"seccomp filter jump to {target!r} out of range ({offset})")
    return offset


def evaluate(program: bytes, *, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run the filter on one system call the way the kernel would; lets tests check every rule directly."""
    data = struct.pack("<iI", nr, arch) + struct.pack("<Q", 0)
    full_args = tuple(args) + (0,) * (6 - len(args))
    data += struct.pack("<6Q", *full_args)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    acc = 0
    pc = 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        cls = code & 0x07
        if cls == _BPF_LD:
            (acc,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif cls == _BPF_RET:
            return k
        elif cls == _BPF_ALU and code & 0xF0 == _BPF_AND:
            acc &= k
            pc += 1
        elif cls == _BPF_JMP:
            op = code & 0xF0
            if op == _BPF_JEQ:
                taken = acc == k
            elif op == _BPF_JGE:
                taken = acc >= k
            elif op == _BPF_JSET:
                taken = bool(acc & k)
            else:
                raise SandboxError(f"unsupported jump op {op:#x}")
            pc += 1 + (jt if taken else jf)
        else:
            raise SandboxError(f"unsupported BPF instruction {code:#x}")
    raise SandboxError("filter fell off the end")
