# A node's or pod's own namespaces, root filesystem and PID 1, as a container runtime makes them.
"""Holders: what keeps one node or pod of the replica alive.

Each node and pod gets new network, UTS, mount and PID namespaces and a root of
its own, built by the agent with system calls only (no process is forked for it):

- ``/`` is a fresh tmpfs holding the build machine's ``/usr`` and ``/etc`` (and
  ``/bin``, ``/lib``... where they are not symlinks into ``/usr``) as overlays: the
  host's files read-only underneath, a private writable layer on top whose writes
  vanish with the lab, as a container's image layers do.  ``/tmp``, ``/run``,
  ``/var`` and ``/root`` are the tmpfs's own, empty; the rest of the build machine
  (homes, checkouts, other users' files) is not there at all.
- ``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf`` are the node's or pod's
  (:mod:`.etc`), written into the writable layer before it is mounted.
- ``/proc`` shows the holder's own PID namespace, ``/sys`` its own network devices,
  ``/dev`` a few character devices (null, zero, full, random, urandom, tty) shared
  read-only by all holders.
- PID 1 is ``catatonit -P``, the pause process podman runs in its pods: it only
  sleeps and reaps orphaned processes, as a pod's pause container does.

The agent moves itself into the new namespaces to build them and back out again, so
it must be single-threaded.  Commands later enter a holder the same way
(:func:`entered`) and are spawned straight into its namespaces.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import linux

NAMESPACES = ("net", "uts", "mnt", "pid")
NSTYPE = {"net": linux.CLONE_NEWNET, "uts": linux.CLONE_NEWUTS, "mnt": linux.CLONE_NEWNS,
          "pid": linux.CLONE_NEWPID}
UNSHARE = linux.CLONE_NEWNET | linux.CLONE_NEWUTS | linux.CLONE_NEWNS | linux.CLONE_NEWPID
MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
# What a holder's root shows of the build machine: its operating system, as an image.
IMAGE_DIRS = ("usr", "etc")
MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
EMPTY_DIRS = ("proc", "sys", "dev", "run", "run/lock", "home", "mnt", "media", "opt", "srv",
              "var", "var/cache", "var/lib", "var/log", "var/spool")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
PAUSE = "catatonit"
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM,
                 signal.SIGHUP)
"""Back to their default in every process the agent spawns (a holder's PID 1, a command):
Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec."""


class HolderError(Exception):
    """A node or pod could not be given its namespaces or root filesystem."""


@dataclass
class Holder:
    """One node's or pod's PID 1 and its namespaces."""

    name: str
    pid: int
    """The holder's PID 1, as the agent sees it."""
    pidfd: int
    """A pidfd of that PID 1: setns() on it enters its namespaces, several in one call.

    One descriptor per holder, not one per namespace: every process the agent spawns
    copies its descriptor table and closes each close-on-exec one at exec, so at 1000 pods
    four files each made every spawn close 4000 of them."""


class Holders:
    """Makes holders.  Lives in the lab's PID 1 (the agent), which owns every namespace.

    ``work`` is a directory on the agent's private ``/run`` where the shared ``/dev`` is
    prepared once and each holder's root is assembled.
    """

    def __init__(self, work: Path = Path("/run/labkit")) -> None:
        self.work = work
        self.null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.own: dict[str, int] = {}
        self.pause = shutil.which(PAUSE, path="/usr/local/bin:/usr/bin:/bin")
        self.unshare = shutil.which("unshare", path="/usr/bin:/bin") or "/usr/bin/unshare"
        self.proc_pidns = False

    def _prepare(self) -> None:
        """What every holder shares, made once, before the first holder."""
        if os.getpid() != 1:
            # It mounts on /run: only ever inside the lab's own namespaces (the lab's PID 1
            # runs in a private mount namespace and /run), never on the build machine.
            raise HolderError("holders are made by the lab's PID 1, in its own namespaces")
        if self.pause is None:
            raise HolderError(f"`{PAUSE}` is not installed (Debian/Ubuntu package {PAUSE})")
        self.own = {ns: os.open(f"/proc/self/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
                    for ns in NAMESPACES}
        for sub in ("stage", "root", "dev"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        self._devices()
        # Each holder keeps four namespace files open; a thousand pods need more than the
        # usual soft limit of 1024.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.proc_pidns = _proc_pidns_works(self.own["pid"])

    def _devices(self) -> None:
        """The ``/dev`` every holder binds: a read-only tmpfs with the build machine's
        harmless character devices bound in (no disks, no consoles)."""
        dev = self.work / "dev"
        linux.mount("tmpfs", str(dev), "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755")
        for name in DEVICES:
            if os.path.exists(f"/dev/{name}"):
                (dev / name).touch()
                linux.mount(f"/dev/{name}", str(dev / name), None, linux.MS_BIND)
        for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            (dev / name).symlink_to(to)
        for name in ("pts", "shm"):
            (dev / name).mkdir()
        linux.mount("none", str(dev), None,
                    linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID
                    | linux.MS_NOEXEC)

    def make(self, name: str, files: dict[str, str | None]) -> Holder:
        """A new holder called ``name`` (its hostname) whose ``/etc`` has ``files``."""
        if not self.own:
            self._prepare()
        try:
            linux.unshare(UNSHARE)
        except OSError as exc:
            raise HolderError(f"cannot create the namespaces of {name}: {exc}") from exc
        try:
            pid = self._build(name, files)
            # PID 1 is in all four namespaces: a pidfd of it names them all.  (It is the
            # agent's child, so its pid cannot name another process before it is reaped.)
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            raise HolderError(f"cannot build the root filesystem of {name}: {exc}") from exc
        finally:
            self._leave()
        return Holder(name, pid, pidfd)

    def _leave(self) -> None:
        for ns in ("mnt", "net", "uts", "pid"):
            linux.setns(self.own[ns], NSTYPE[ns])

    def _build(self, name: str, files: dict[str, str | None]) -> int:
        linux.sethostname(name)
        stage, root = str(self.work / "stage"), str(self.work / "root")
        linux.mount("tmpfs", stage, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=700")
        linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755")
        lowers = [d for d in IMAGE_DIRS if os.path.isdir(f"/{d}")]
        for top in MERGED:
            if os.path.islink(f"/{top}"):
                os.symlink(os.readlink(f"/{top}"), f"{root}/{top}")
            elif os.path.isdir(f"/{top}"):
                lowers.append(top)
        for lower in lowers:
            upper, work = f"{stage}/{lower}.upper", f"{stage}/{lower}.work"
            os.mkdir(upper, 0o755)
            os.mkdir(work)
            if lower == "etc":
                _write_etc(upper, files)
            os.mkdir(f"{root}/{lower}", 0o755)
            linux.mount("overlay", f"{root}/{lower}", "overlay", linux.MS_NOSUID,
                        f"lowerdir=/{lower},upperdir={upper},workdir={work},userxattr")
        # The overlays hold their layers: the staging tmpfs goes with the build machine's
        # tree when _pivot detaches it (one unmount, one RCU grace period, for both).
        for sub in EMPTY_DIRS:
            os.mkdir(f"{root}/{sub}", 0o755)
        for sub, mode in (("tmp", 0o1777), ("var/tmp", 0o1777), ("root", 0o700)):
            os.mkdir(f"{root}/{sub}")
            os.chmod(f"{root}/{sub}", mode)
        os.symlink("/run", f"{root}/var/run")
        os.symlink("/run/lock", f"{root}/var/lock")
        linux.mount(str(self.work / "dev"), f"{root}/dev", None, linux.MS_BIND | linux.MS_REC)
        linux.mount("sysfs", f"{root}/sys", "sysfs", MOUNT_FLAGS)
        if self.proc_pidns:
            # PID 1 first: a PID namespace has no file to name it by until it has one.  The
            # pivot below moves its root along with this process's.
            pid = self._spawn(str(self.pause), [PAUSE, "-P"])
            namespace = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
            try:
                tree = linux.proc_for(namespace)
            finally:
                os.close(namespace)
            try:
                linux.attach(tree, f"{root}/proc")
            finally:
                os.close(tree)
            _no_dad(root)
            self._pivot(root)
            return pid
        # Before Linux 6.15 only a process inside the PID namespace can mount its /proc:
        # util-linux's unshare does it there, on top of this one (a proc mount in a user
        # namespace needs one to exist already), then becomes the pause process.
        linux.mount("proc", f"{root}/proc", "proc", MOUNT_FLAGS)
        _no_dad(root)
        self._pivot(root)
        return self._spawn(self.unshare, [self.unshare, "--mount-proc", "--", PAUSE, "-P"])

    @staticmethod
    def _pivot(root: str) -> None:
        """Make ``root`` this mount namespace's ``/`` and drop the build machine's tree."""
        old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(root)
            linux.pivot_root(".", ".")
            os.fchdir(old)
            linux.umount(".", linux.MNT_DETACH)
        finally:
            os.close(old)
        os.chdir("/")

    def _spawn(self, path: str, argv: list[str]) -> int:
        return os.posix_spawn(
            path, argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            file_actions=[(os.POSIX_SPAWN_DUP2, self.null, n) for n in (0, 1, 2)],
            setsid=True,
            setsigdef=RESET_SIGNALS,
        )

    def ready(self, holder: Holder, timeout: float = 10.0) -> None:
        """Wait until ``holder``'s PID 1 is the pause process (at once with a kernel whose
        procfs takes ``pidns``; otherwise once unshare has mounted /proc and exec'd it)."""
        if self.proc_pidns:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.readlink(f"/proc/{holder.pid}/exe").endswith(f"/{PAUSE}"):
                    break
            except OSError as exc:
                raise HolderError(f"the PID 1 of {holder.name} exited while starting") from exc
            if time.monotonic() > deadline:
                raise HolderError(f"the PID 1 of {holder.name} did not start in {timeout:g}s")
            time.sleep(0.001)
        # unshare --mount-proc gave it a mount namespace of its own, under the one built
        # here: entering by its pidfd enters that one from now on.

    @contextlib.contextmanager
    def entered(self, holder: Holder | None, *, names: tuple[str, ...] = NAMESPACES,
                ) -> Iterator[None]:
        """Inside the block, this process is in ``holder``'s namespaces (``names`` of
        them; for ``pid``: the processes it starts are); ``None`` is the agent's own."""
        if holder is None:
            yield
            return
        flags = 0
        for ns in names:
            flags |= NSTYPE[ns]
        linux.setns(holder.pidfd, flags)  # all of them or none
        try:
            yield
        finally:
            for ns in reversed(names):
                linux.setns(self.own[ns], NSTYPE[ns])

    def attach_netns(self, node: Holder, name: str, pod_pid: int) -> None:
        """``ip netns attach NAME PID`` inside ``node``: its /run/netns/NAME names the pod's
        network namespace.  Done here because the node's /proc cannot see the pod's PID."""
        tree = linux.clone_tree(f"/proc/{pod_pid}/ns/net")
        try:
            with self.entered(node, names=("mnt",)):
                os.makedirs("/run/netns", mode=0o755, exist_ok=True)
                Path(f"/run/netns/{name}").touch(0o444)
                linux.attach(tree, f"/run/netns/{name}")
        finally:
            os.close(tree)


def _no_dad(root: str) -> None:
    """Turn off IPv6 duplicate address detection for the devices the holder will get.

    DAD on a point-to-point veth can find nothing, but it leaves every fresh link-local
    address "tentative" for a second or two, so what `ip addr` prints would depend on
    how fast the reader typed.  Written through the holder's own /proc (a procfs of its
    own): the build machine's /proc/sys keeps one cached entry per network namespace
    under the same name, and the kernel compares them all on every lookup there, which
    made each new holder cost more than the one before.
    """
    Path(f"{root}/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0")


def _write_etc(upper: str, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        path = f"{upper}/{name}"
        if text is None:  # an overlay whiteout: the file is not there at all
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(path, 0o644)


def _proc_pidns_works(own_pid: int) -> bool:
    """Whether this kernel's procfs takes the ``pidns`` option (Linux 6.15 and later)."""
    try:
        os.close(linux.proc_for(own_pid))
    except OSError:
        return False
    return True
