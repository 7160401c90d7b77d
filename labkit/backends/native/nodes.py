# A native lab's nodes from the host's side: its folder, cgroups, network namespaces, execs.
"""Where a native lab lives on the host, how to enter its nodes, and how it is swept away.

A lab is one folder, ``$TMPDIR/labkit-lab-<owner pid>-<8 chars>`` (the name
:mod:`labkit.model.scratch` gives, with the pid of the lab's owner, see
:mod:`.owner`): ``net/`` holds the network namespaces (bind mounts on files: the
underlay's, where the bridge ``kind`` is, and one per node), ``nodes/<name>/``
each node's upper dirs, ``/var`` and the pid of its PID 1, ``bin/`` what the
nodes find in ``/usr/local/bin``.  Its cgroups carry the same name, one tree per
hierarchy: ``/sys/fs/cgroup/<hierarchy>/labkit-lab-<pid>-<...>/<node>``.

Every process of the lab lives in the owner's PID namespace, so the kernel ends
them all when the owner dies, even by SIGKILL; what can outlive it is the folder,
the bind mounts and the cgroups, which :func:`sweep` removes once the pid in
their name is dead (or, with ``force``, at once).  The host's own network
namespace, routes, iptables and sysctls are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...model import scratch
from ...model.leftovers import left_by_dead_process

CGROUPS = Path("/sys/fs/cgroup")
LAB_NAME = re.compile(r"labkit-lab-(\d+)-[A-Za-z0-9_]{8}")
MARK = "native-lab"
"""A file in the lab's folder saying the folder is a native lab (the netns lab's are not)."""
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BRIDGE = "kind"
"""The bridge in the underlay namespace, named like docker's network."""


def hierarchies() -> list[Path]:
    """Every cgroup mount under /sys/fs/cgroup (v1 controllers and the v2 ``unified``).

    The fstype is read after mountinfo's ``-`` separator: optional fields move the columns.
    """
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        try:
            fstype = fields[fields.index("-", 6) + 1]
        except (ValueError, IndexError):
            continue
        if fstype in ("cgroup", "cgroup2") and fields[4].startswith(f"{CGROUPS}/"):
            found.append(Path(fields[4]))
    return found


@dataclass(frozen=True)
class Lab:
    """One native lab's folder and the names derived from it."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def owner(self) -> int:
        match = LAB_NAME.fullmatch(self.name)
        return int(match.group(1)) if match else 0

    @property
    def underlay(self) -> Path:
        return self.folder / "net" / "underlay"

    def netns(self, node: str) -> Path:
        return self.folder / "net" / node

    def node_dir(self, node: str) -> Path:
        return self.folder / "nodes" / node

    def cgroups(self, node: str | None = None) -> list[Path]:
        return [h / self.name / node if node else h / self.name for h in hierarchies()]

    def pid(self, node: str) -> int:
        """The host pid of the node's PID 1 (pause); 0 if it has not started."""
        try:
            return int((self.node_dir(node) / "pid").read_text())
        except (OSError, ValueError):
            return 0


def new_lab(owner: int) -> Lab:
    """A new lab folder named after ``owner`` (the owner's pid as the host sees it)."""
    suffix = os.urandom(6).hex()[:8]
    folder = scratch.system_tmp() / f"labkit-lab-{owner}-{suffix}"
    folder.mkdir(mode=0o700)
    (folder / MARK).write_text(f"{owner}\n")
    return Lab(folder)


def run(*argv: str | Path, netns: Path | None = None) -> None:
    """Run a command (in ``netns`` if given); :class:`RuntimeError` with its stderr if it fails."""
    full = [str(a) for a in argv]
    if netns is not None:
        full = ["nsenter", f"--net={netns}", *full]
    done = subprocess.run(full, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(full)}` failed ({done.returncode}): "
                           f"{done.stderr.strip()}")


def make_netns(path: Path) -> None:
    """A network namespace held by a bind mount on ``path`` (as ``ip netns add`` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    # Not `unshare --net=FILE`: it binds /proc/<pid>/ns/net with the pid as its own PID
    # namespace numbers it, and the owner's /proc is the host's (a wrong process's netns).
    # /proc/self is resolved in the proc mount's namespace: always the right process.
    run("unshare", "--net", "mount", "--bind", "/proc/self/ns/net", path)
    if os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino:
        unmount(path)
        raise RuntimeError(f"{path} is this process's own network namespace, not a new one")


def make_cgroups(lab: Lab, node: str) -> None:
    """The node's cgroup in every hierarchy; cpuset's cpus and mems copied down the tree."""
    for hierarchy in hierarchies():
        for level in (hierarchy / lab.name, hierarchy / lab.name / node):
            level.mkdir(exist_ok=True)
            if (level / "cpuset.cpus").exists():
                for key in ("cpuset.cpus", "cpuset.mems"):
                    if not (level / key).read_text().strip():
                        (level / key).write_text((level.parent / key).read_text())


def processes(lab: Lab, node: str | None = None) -> set[int]:
    """Every process in any of the lab's cgroups (or ``node``'s), at any depth (host pids)."""
    found: set[int] = set()
    for top in lab.cgroups(node):
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in procs.read_text().split())
    return found


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def _remove_cgroups(top: Path) -> bool:
    """rmdir the tree depth-first; True when it is gone."""
    if not top.is_dir():
        return True
    for directory in sorted((p for p in top.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()
    return not top.exists()


def destroy(lab: Lab, timeout: float = 20.0) -> list[str]:
    """End the lab: its owner, every process its cgroups hold, its mounts, cgroups and folder.

    Returns what could not be removed (empty when nothing is left).
    """
    if lab.owner and not left_by_dead_process(str(lab.owner)):
        with contextlib.suppress(OSError):
            os.kill(lab.owner, signal.SIGKILL)  # PID 1 of its namespace: everything goes with it
    deadline = time.monotonic() + timeout
    while True:
        alive = processes(lab)
        if lab.owner and not left_by_dead_process(str(lab.owner)):
            alive.add(lab.owner)
        if not alive or time.monotonic() > deadline:
            break
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    left = [f"process {pid}" for pid in sorted(alive)]
    net = lab.folder / "net"
    if net.is_dir():
        for path in net.iterdir():
            unmount(path)
    left += [str(top) for top in lab.cgroups() if not _remove_cgroups(top)]
    if lab.folder.exists():
        shutil.rmtree(lab.folder, ignore_errors=True)
        if lab.folder.exists():
            left.append(str(lab.folder))
    return left


def labs_on_host() -> Iterator[Lab]:
    """Every native lab's folder or cgroup tree on this machine, live or dead."""
    seen: set[str] = set()
    tmp = scratch.system_tmp()
    with contextlib.suppress(OSError):
        for entry in tmp.iterdir():
            if LAB_NAME.fullmatch(entry.name) and (entry / MARK).is_file():
                seen.add(entry.name)
    for hierarchy in hierarchies():
        with contextlib.suppress(OSError):
            seen.update(e.name for e in hierarchy.iterdir()
                        if e.is_dir() and LAB_NAME.fullmatch(e.name))
    for name in sorted(seen):
        yield Lab(tmp / name)


def sweep() -> list[str]:
    """Remove what dead native labs left (their owner's pid is gone); return what was swept."""
    swept = []
    for lab in labs_on_host():
        if left_by_dead_process(str(lab.owner)):
            destroy(lab, timeout=5.0)
            swept.append(lab.name)
    return swept


# -- entering a node -----------------------------------------------------------------------

ENTER_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"'
"""Moves the shell into the node's cgroups (as docker exec's process is), then execs."""


def node_argv(lab: Lab, node: str, argv: list[str], env: dict[str, str] | None = None
              ) -> list[str]:
    """``docker exec NODE argv``: the node's cgroups, every namespace of it, its root and cwd."""
    pid = lab.pid(node)
    if not pid:
        raise RuntimeError(f"node {node} of {lab.name} is not running")
    procs = [str(c / "cgroup.procs") for c in lab.cgroups(node) if c.is_dir()]
    environment = {"PATH": PATH, "HOSTNAME": node, "HOME": "/root", **(env or {})}
    return ["/bin/sh", "-c", ENTER_CGROUPS, "sh", *procs, "--",
            "env", "-i", *(f"{k}={v}" for k, v in environment.items()),
            "nsenter", f"--target={pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--cgroup", "--root", "--wd", *argv]


def container_argv(host_pid: int, argv: list[str]) -> list[str]:
    """``kubectl exec``: the container's namespaces, root, cwd and environment."""
    environment: list[str] = []
    with contextlib.suppress(OSError):
        environment = [e.decode(errors="replace")
                       for e in Path(f"/proc/{host_pid}/environ").read_bytes().split(b"\0") if e]
    if not any(e.startswith("PATH=") for e in environment):
        environment.append(f"PATH={PATH}")
    # The host's env sets it (the image may have none); nsenter passes it on.
    return ["env", "-i", *environment,
            "nsenter", f"--target={host_pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--root", "--wd", *argv]


def host_pid(lab: Lab, node: str, node_pid: int) -> int:
    """The host pid of a process the node sees as ``node_pid`` (a container's, from crictl)."""
    marker = f"/{lab.name}/{node}/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines()
                      if line.startswith("NSpid:")), [])
        # host, the owner's namespace, the node's, (the container's)
        if len(nspid) >= 3 and nspid[2] == str(node_pid):
            with contextlib.suppress(OSError):
                if marker in (entry / "cgroup").read_text():
                    return int(entry.name)
    return 0


def group_members(leader: int) -> list[int]:
    """The processes of ``leader``'s process group but ``leader`` itself (and the
    ``nsenter`` it forked), i.e. the command it runs: what Ctrl-C would reach in the node."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == leader:
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid, pgrp = int(stat[1]), int(stat[2])
        if pgrp != leader:
            continue
        with contextlib.suppress(OSError):
            if ppid == leader and (entry / "comm").read_text().strip() in ("nsenter", "env"):
                continue
        members.append(int(entry.name))
    return members


def read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
