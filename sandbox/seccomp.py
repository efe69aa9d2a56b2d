"""The seccomp filter that every sandboxed run gets, compiled by libseccomp.

The program is built with ``pyseccomp`` (ctypes bindings to the system's
libseccomp, the library bubblewrap, systemd and the container engines use),
never assembled by hand. It allows everything except a deny list of system
calls that ordinary Python, numpy, scipy and sympy never need and that an
attacker would: kernel attack surface (io_uring, BPF, perf, keyrings,
userfaultfd), reaching other processes (ptrace, process_vm_*), nested
namespaces (unshare, setns, clone with a namespace flag), mounts, and SysV
IPC (whose objects would outlive a run in a warm sandbox's IPC namespace).

Denied calls fail with EPERM, not a kill, so Python code sees an
``OSError``/``PermissionError`` it can report. ``clone3`` answers ENOSYS:
its flags sit in a struct seccomp cannot read, and ENOSYS makes glibc fall
back to ``clone``, whose flags the filter does check. A foreign syscall ABI
(i386 ``int 0x80`` from a 64-bit process) kills the process (libseccomp's
default for a bad architecture), so the list cannot be bypassed that way.

Users: the ``local`` backend hands the program to ``bwrap --seccomp FD``; the
``container`` backend sends it to the in-container guest, which installs it
on each run's process (on top of the engine's own default profile) with
:class:`sandbox.supervise.SeccompInstaller`.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

# Every name here is denied with EPERM (names the running kernel's arch lacks are skipped).
DENIED = (
    # kernel attack surface
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "lookup_dcookie", "syslog", "acct",
    "swapon", "swapoff", "reboot", "quotactl", "quotactl_fd", "vhangup", "uselib",
    "open_by_handle_at", "name_to_handle_at",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # namespaces and mounts
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # SysV IPC: objects that outlive the run in a shared IPC namespace
    "shmget", "msgget", "semget",
)

# clone(2) flags that create a namespace; CLONE_NEWTIME (0x80) only exists for unshare/clone3.
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


class SeccompUnavailable(RuntimeError):
    """pyseccomp or libseccomp is missing, or the program could not be built."""


def library_version() -> str:
    """``pyseccomp X / libseccomp A.B.C``, or why neither is usable."""
    try:
        from importlib.metadata import version

        import pyseccomp
    except (ImportError, OSError, RuntimeError) as exc:  # RuntimeError: no libseccomp
        return f"unavailable ({type(exc).__name__}: {exc})"
    try:
        import ctypes

        lib = pyseccomp._libseccomp  # type: ignore[attr-defined]
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        v = lib.seccomp_version().contents
        libv = f"{v[0]}.{v[1]}.{v[2]}"
    except Exception:  # old libseccomp: no seccomp_version
        libv = "?"
    return f"pyseccomp {version('pyseccomp')} / libseccomp {libv}"


@functools.lru_cache(maxsize=1)
def program() -> bytes:
    """The compiled BPF program (raw ``struct sock_filter`` array), built once per process.

    Raises SeccompUnavailable when libseccomp cannot be loaded or refuses the rules.
    """
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError) as exc:  # no libseccomp found, or unloadable
        raise SeccompUnavailable(f"pyseccomp/libseccomp not usable: {exc}") from exc
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        arch = sc.system_arch()
        eperm = sc.ERRNO(errno.EPERM)
        for name in DENIED:
            if sc.resolve_syscall(arch, name) < 0:
                continue  # not a system call on this architecture
            f.add_rule(eperm, name)
        for flag in CLONE_NAMESPACE_FLAGS.values():
            f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        if sc.resolve_syscall(arch, "clone3") >= 0:
            f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        with tempfile.TemporaryFile() as out:
            f.export_bpf(out)
            out.seek(0)
            data = out.read()
    except (OSError, RuntimeError, ValueError) as exc:
        raise SeccompUnavailable(f"libseccomp refused the filter: {exc}") from exc
    if not data or len(data) % 8:
        raise SeccompUnavailable(f"libseccomp exported {len(data)} bytes, not a BPF program")
    return data


def available() -> bool:
    """Whether :func:`program` can be built here."""
    try:
        program()
    except SeccompUnavailable:
        return False
    return True


def program_fd() -> int:
    """A fresh fd reading the program from offset 0 (bwrap reads it to EOF; one per launch).

    A memfd where the kernel has it, else an unlinked temp file. The caller closes it.
    """
    data = program()
    try:
        fd = os.memfd_create("mmw-seccomp", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="mmw-seccomp-")
        os.unlink(path)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
