"""Containment of a candidate's process with what stock Linux offers.

Applied in two steps, before any candidate code runs:

* :func:`enter_namespaces` (in the keeper, just before it forks the worker): new PID,
  mount, network, IPC and UTS namespaces; when not root, inside a new user namespace.
  The worker is then PID 1 of its own namespace: it cannot see or signal any process
  outside it, and when it dies the kernel kills everything it started (``setsid()``
  included). The empty network namespace has no interface but a downed loopback.
* :func:`confine` (in the worker): a fresh ``tmpfs`` as ``/tmp`` (the private working
  directory; it vanishes with the namespace, even after ``kill -9`` of the harness), a
  fresh ``/proc`` of the namespace, the unprivileged uid ``nobody`` when started as root,
  rlimits (address space, file size, core, processes), ``PR_SET_PDEATHSIG``,
  ``no_new_privs``, Landlock (read-only access to the Python installation and system
  libraries, writes to the private directory only, no TCP, no signals or abstract Unix
  sockets outside the sandbox) and a seccomp filter (no ptrace, mount, namespace, kernel
  keyring, BPF or perf calls; sockets of the Unix family only).

Each layer that the kernel refuses is skipped and named in the returned report, so the
harness can say what is in force (``eplb-harness sandbox``). Imports: stdlib only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import select
import site
import struct
import sys

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_SET_DUMPABLE = 1, 38, 22, 4
SECCOMP_MODE_FILTER = 2

NOBODY = 65534


def _errcheck(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int) -> None:
    _errcheck(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def die_with_parent(lifeline_fd: int) -> None:
    """SIGKILL this process when its parent dies, and exit at once if it already has.

    ``lifeline_fd`` is the read end of a pipe whose write end only the parent holds: at
    end of file, the parent is gone (``getppid()`` cannot tell across a PID namespace).
    The kernel clears the setting when credentials change: call it again after that.
    """
    _prctl(PR_SET_PDEATHSIG, 9)
    if select.select([lifeline_fd], [], [], 0)[0]:
        os._exit(1)


def die_with_parent_pid(parent_pid: int) -> None:
    """The same for a process in its parent's PID namespace, which ``getppid()`` can check."""
    _prctl(PR_SET_PDEATHSIG, 9)
    if os.getppid() != parent_pid:
        os._exit(1)


# -- step 1: namespaces (keeper) ---------------------------------------------------------
def enter_namespaces(use_user_ns: bool) -> list[str]:
    """Unshare the namespaces the next child will live in; the names of those in force.

    ``use_user_ns`` is for a caller that is not root (or a test of that path): the new
    namespaces are then owned by a new user namespace mapping the caller's uid to 0.
    """
    uid, gid = os.geteuid(), os.getegid()
    others = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    flags = others | (CLONE_NEWUSER if use_user_ns else 0)
    if _libc.unshare(flags) != 0:
        # e.g. root without CAP_SYS_ADMIN (a container), which cannot map root into a user namespace either
        return []
    if use_user_ns:
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError:
            os._exit(1)  # half-made namespace: the worker would run with no identity
    return ["pid", "mount", "net", "ipc", "uts"] + (["user"] if use_user_ns else [])


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (a ``setsid()`` grandchild included)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def kill_descendants() -> None:
    """SIGKILL and reap every child (adopted ones too) until none is left."""
    while True:
        children = set()
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/children") as f:
                    children |= {int(c) for c in f.read().split()}
            except OSError:
                pass
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# -- step 2: the worker's own confinement ------------------------------------------------
def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _errcheck(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _blocked_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` that other users cannot enter (a home folder), if any."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    for i in range(1, len(parts) + 1):
        ancestor = os.sep + os.sep.join(parts[:i])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _expose(paths: list[str]) -> None:
    """Make ``paths`` reachable for ``nobody`` where they sit in a closed folder (Python under /root).

    The closed folder is covered by an empty tmpfs (which also hides the rest of it, keys
    in dotfiles included) into which only ``paths`` are bind-mounted back.
    """
    by_ancestor: dict[str, list[str]] = {}
    for path in paths:
        ancestor = _blocked_ancestor(path)
        if ancestor is not None:
            by_ancestor.setdefault(ancestor, []).append(path)
    for ancestor, inside in sorted(by_ancestor.items()):
        fds = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in inside}
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path, fd in fds.items():
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
            os.close(fd)


def _private_mounts(tmpfs_mb: int, read_dirs: list[str], as_nobody: bool) -> None:
    """Own ``/tmp`` and ``/dev/shm`` (empty tmpfs) and ``/proc`` (this PID namespace only).

    ``read_dirs`` (Python and its packages) stay reachable: those under ``/tmp`` (a
    virtual environment in a clone there) are bind-mounted back into the new ``/tmp``,
    and, for ``nobody``, those in folders closed to it are exposed (:func:`_expose`).
    ``/tmp`` comes last: once it is mounted, everything else is.
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    if as_nobody:
        _expose(read_dirs)
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={tmpfs_mb}m,mode=1777")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    inside = [d for d in read_dirs if d != "/tmp" and d.startswith("/tmp/")]
    fds = {d: os.open(d, os.O_PATH | os.O_CLOEXEC) for d in inside}
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,mode=1777")
    for path, fd in fds.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024


def _rlimits(memory_mb: int, output_mb: int, as_nobody: bool) -> None:
    address_space = _vm_size_bytes() + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    out_bytes = output_mb * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (out_bytes, out_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if as_nobody:  # counts every process of the uid: all workers together, not the harness
        resource.setrlimit(resource.RLIMIT_NPROC, (1024, 1024))


# Landlock (include/uapi/linux/landlock.h).
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_DIR_WRITE = sum(1 << b for b in range(4, 13))  # remove/make dir, file, node, socket, fifo, symlink
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_SCOPE_ABSTRACT_UNIX, _LL_SCOPE_SIGNAL = 1, 2
_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT = 444, 445, 446


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when unavailable)."""
    version = _libc.syscall(_SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, version)


def _read_paths(extra: tuple[str, ...], own_proc: bool) -> tuple[list[str], list[str]]:
    """Directories and files the worker may read: Python, its packages, system libraries.

    All of ``/proc`` only when it is the namespace's own; else this process's entries.
    """
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr", "/lib", "/lib64", "/lib32",
            "/bin", "/sys", "/proc" if own_proc else "/proc/self", *site.getsitepackages(), *extra}
    files = ["/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
             "/dev/urandom", "/dev/random", "/dev/zero", "/proc/cpuinfo", "/proc/meminfo"]
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)}), [f for f in files if os.path.exists(f)]


def _landlock(workdir: str, extra_read: tuple[str, ...], own_proc: bool) -> int:
    abi = landlock_abi()
    if abi < 1:
        return 0
    fs = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | _LL_READ_DIR | _LL_DIR_WRITE
    fs |= (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0) | (_LL_IOCTL_DEV if abi >= 5 else 0)
    net = 0b11 if abi >= 4 else 0  # bind and connect TCP: no rule allows any port
    scoped = (_LL_SCOPE_ABSTRACT_UNIX | _LL_SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("<QQQ", fs, net, scoped)[: 8 if abi < 4 else (16 if abi < 6 else 24)]
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return 0
    file_rights = _LL_EXECUTE | _LL_READ_FILE | _LL_WRITE_FILE | (_LL_TRUNCATE if abi >= 3 else 0)
    read_dir = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR
    dirs, files = _read_paths(extra_read, own_proc)
    rules = [(d, read_dir) for d in dirs] + [(f, _LL_READ_FILE) for f in files]
    rules += [("/dev/null", file_rights), (workdir, fs)]
    try:
        for path, rights in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = struct.pack("<Qi", rights, fd)
                _errcheck(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0), f"landlock rule {path}")
            finally:
                os.close(fd)
        _errcheck(_libc.syscall(_SYS_LANDLOCK_RESTRICT, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


# seccomp: syscalls refused with EPERM, by architecture (audit arch, numbers, socket()).
_DENIED = {
    "x86_64": (0xC000003E, {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
        "unshare": 272, "setns": 308, "pivot_root": 155, "chroot": 161, "kexec_load": 246, "kexec_file_load": 320,
        "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168,
        "open_by_handle_at": 304, "userfaultfd": 323, "io_uring_setup": 425, "fsopen": 430, "open_tree": 428,
        "move_mount": 429, "fsmount": 432, "mount_setattr": 442, "personality": 135,
    }, 41),
    "aarch64": (0xC00000B7, {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
        "unshare": 97, "setns": 268, "pivot_root": 41, "chroot": 51, "kexec_load": 104, "kexec_file_load": 294,
        "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225,
        "open_by_handle_at": 265, "userfaultfd": 282, "io_uring_setup": 425, "fsopen": 430, "open_tree": 428,
        "move_mount": 429, "fsmount": 432, "mount_setattr": 442, "personality": 92,
    }, 198),
}
_AF_UNIX = 1


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def seccomp_program(machine: str) -> bytes | None:
    """The BPF filter for ``machine`` (``platform.machine()``), or None for an unknown one."""
    if machine not in _DENIED:
        return None
    arch, denied, socket_nr = _DENIED[machine]
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, eafnosupport = 0x00050000 | errno.EPERM, 0x00050000 | errno.EAFNOSUPPORT
    numbers = sorted(set(denied.values()))
    prog = [_bpf(ld_abs, 4), _bpf(jeq, arch, 1, 0), _bpf(ret, kill), _bpf(ld_abs, 0)]
    if machine == "x86_64":  # the x32 ABI numbers its calls from 0x40000000: refuse them all
        prog += [_bpf(jge, 0x40000000, 0, 1), _bpf(ret, eperm)]
    for i, nr in enumerate(numbers):
        # match: jump to the EPERM return after the remaining checks and the socket block
        prog.append(_bpf(jeq, nr, len(numbers) - i - 1 + 5, 0))
    prog += [
        _bpf(jeq, socket_nr, 0, 3),  # socket(): only the Unix family
        _bpf(ld_abs, 16),  # args[0], low word
        _bpf(jeq, _AF_UNIX, 1, 0),
        _bpf(ret, eafnosupport),
        _bpf(ret, allow),
        _bpf(ret, eperm),
    ]
    return b"".join(prog)


def _seccomp() -> bool:
    program = seccomp_program(platform.machine())
    if program is None:
        return False
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("<HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    return _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0) == 0


def confine(namespaces: list[str], fallback_workdir: str, memory_mb: int, output_mb: int, lifeline_fd: int,
            extra_read: tuple[str, ...] = ()) -> dict:
    """Confine this process (see the module docstring); returns ``{"workdir", "layers"}``.

    Call it in the worker after its fork and before any candidate code is loaded.
    """
    layers = [f"{n} namespace" for n in namespaces]
    workdir = fallback_workdir
    own_proc = False
    as_nobody = os.geteuid() == 0 and "user" not in namespaces
    if "mount" in namespaces:
        try:
            _private_mounts(max(64, 2 * output_mb, min(memory_mb, 1024)), _read_paths(extra_read, True)[0],
                            as_nobody)
            workdir, own_proc = "/tmp", True
            layers.append("private tmpfs /tmp, /dev/shm and /proc")
        except OSError:
            pass
    if as_nobody and not own_proc and any(_blocked_ancestor(p) for p in _read_paths(extra_read, False)[0]):
        as_nobody = False  # without the mounts, nobody could not even import the rest of Python
        layers.append("uid root (Python sits in a folder closed to nobody, and no mount namespace)")
    if as_nobody:
        try:
            _drop_to_nobody()
            die_with_parent(lifeline_fd)  # the uid change cleared it
            layers.append("uid nobody")
        except PermissionError:  # root without CAP_SETUID
            as_nobody = False
            layers.append("uid root (no CAP_SETUID to drop it)")
    os.chdir(workdir)
    _rlimits(memory_mb, output_mb, as_nobody)
    layers.append("rlimits (address space, file size, core" + (", processes)" if as_nobody else ")"))
    _prctl(PR_SET_DUMPABLE, 0)  # no ptrace attach, no /proc/PID/mem, even by its own uid
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    abi = _landlock(workdir, extra_read, own_proc)
    if abi:
        layers.append(f"landlock ABI {abi}")
    if _seccomp():
        layers.append("seccomp filter")
    return {"workdir": workdir, "layers": layers}
