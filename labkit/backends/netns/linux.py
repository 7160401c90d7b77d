# The few Linux system calls Python 3.11's os module lacks (unshare, setns, mount, prctl...).
"""Thin ctypes wrappers over libc, raising OSError like the os module does."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

PR_SET_PDEATHSIG = 1

# x86-64 and arm64 (asm-generic) share these numbers for the new mount API (Linux 5.2+).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 1

# The C library Python itself is linked with (dlopen(NULL)): ctypes.util.find_library would
# cost each lab's agent 10-20 ms of imports, and may run ldconfig, to find the same one.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(rc: int, what: str) -> int:
    if rc < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return rc


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {fstype or source} on {target}",
    )


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(_SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def die_with_parent(signal: int) -> None:
    """Ask the kernel to send ``signal`` to this process when its parent exits."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal), 0, 0, 0), "prctl")


def clone_tree(source: str) -> int:
    """A detached copy of the mount at ``source`` (a path in this mount namespace, an nsfs
    file too) and everything under it, as a file descriptor: :func:`attach` can mount it in
    another mount namespace, where ``mount --bind`` cannot reach."""
    return _check(_libc.syscall(_SYS_OPEN_TREE, -100, source.encode(),
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE),
                  f"open_tree {source}")


def attach(tree: int, target: str) -> None:
    """Mount a detached tree (from :func:`clone_tree` or :func:`proc_for`) on ``target``."""
    _check(_libc.syscall(_SYS_MOVE_MOUNT, tree, b"", -100, target.encode(),
                         MOVE_MOUNT_F_EMPTY_PATH), f"move_mount on {target}")


def proc_for(pid_namespace: int) -> int:
    """A detached proc mount that shows the PID namespace ``pid_namespace`` (an open
    ``/proc/.../ns/pid`` file), made by a process outside it: procfs's ``pidns`` option.
    OSError where the kernel is older than that option (Linux 6.15)."""
    context = _check(_libc.syscall(_SYS_FSOPEN, b"proc", 1), "fsopen proc")  # FSOPEN_CLOEXEC
    try:
        _check(_libc.syscall(_SYS_FSCONFIG, context, FSCONFIG_SET_FD, b"pidns", None,
                             pid_namespace), "proc: pidns option")
        _check(_libc.syscall(_SYS_FSCONFIG, context, FSCONFIG_CMD_CREATE, None, None, 0),
               "proc: create")
        return _check(_libc.syscall(_SYS_FSMOUNT, context, FSMOUNT_CLOEXEC,
                                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC),
                      "fsmount proc")
    finally:
        os.close(context)
