# Starting a process inside a node's or pod's namespaces: readers' commands and labkit's own setup.
"""Where a command runs (:class:`Where`), and the ways into it."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ...model.tools import STDBUF
from .holder import RESET_SIGNALS as RESET_SIGNALS  # replica spawns with them too
from .holder import Holder, Holders

ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "xterm",
}


@dataclass
class Where:
    """A node or a pod: a holder whose namespaces commands enter."""

    name: str
    kind: str
    holder: Holder | None
    """None for the agent's own namespaces (the build machine's side of docker's network)."""
    holders: Holders | None = None
    """Who made it, and knows the agent's own namespaces to come back to."""

    @contextlib.contextmanager
    def entered(self, names: tuple[str, ...] = ("net", "uts", "mnt", "pid")) -> Iterator[None]:
        """This process in the target's namespaces (``names`` of them) for the block."""
        if self.holder is None or self.holders is None:
            yield
            return
        with self.holders.entered(self.holder, names=names):
            yield

    @property
    def pid(self) -> int:
        return self.holder.pid if self.holder else os.getpid()

    @property
    def prompt(self) -> str:
        return f"root@{self.name}:/#"


COMMAND_ENV = dict(ENV, LD_PRELOAD=STDBUF, _STDBUF_O="L") if os.path.exists(STDBUF) else ENV


class SetupError(Exception):
    """The lab could not be built as its manifests say."""


class MachineLacks(SetupError):
    """This machine lacks what the lab needs (a tool, a kernel module): not the lab's fault,
    and not the replica's; the launcher reports it as the lab being unavailable here."""


def which(tool: str) -> str:
    """The absolute path execve() needs, looked up on the lab's own PATH."""
    found = shutil.which(tool, path=ENV["PATH"])
    if found is None:
        raise MachineLacks(f"`{tool}` is not installed")
    return found


def spawn(target: Where, argv: list[str], stdio: tuple[int, int, int]) -> int:
    """Start ``argv`` inside ``target``'s namespaces (its PID namespace too); its pid."""
    with target.entered():
        return os.posix_spawn(
            argv[0], argv, ENV,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(stdio)],
            setsigdef=RESET_SIGNALS,
        )


def call(target: Where, argv: list[str], stdin: bytes = b"") -> tuple[int, str]:
    """Run a setup command in ``target`` to completion (before the event loop starts)."""
    feed = os.memfd_create("stdin", os.MFD_CLOEXEC)
    out = os.memfd_create("output", os.MFD_CLOEXEC)
    try:
        os.write(feed, stdin)
        os.lseek(feed, 0, os.SEEK_SET)
        try:
            pid = spawn(target, argv, (feed, out, out))
        except OSError as exc:
            raise SetupError(f"cannot start {argv[0]} in {target.name}: {exc}") from exc
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), _read(out)
    finally:
        os.close(feed)
        os.close(out)


def in_namespace(target: Where, action: Callable[[], None]) -> None:
    """Run a Python callable with this process in ``target``'s network, UTS and mount
    namespaces (paths are the target's, as its own processes see them)."""
    try:
        with target.entered(("net", "uts", "mnt")):
            action()
    except OSError as exc:
        raise SetupError(f"in {target.name}: {exc}") from exc


@contextlib.contextmanager
def entered_net(target: Where) -> Iterator[None]:
    """This process in ``target``'s network namespace for a moment (what /proc/sys/net and
    if_nameindex() see)."""
    with target.entered(("net",)):
        yield


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
