# The lab as chapters and tests see it: nodes, pods, and commands run in them.
"""The :class:`Lab` front end, the same whichever backend runs underneath."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..model.errors import CommandFailed, CommandTimeout, ToolMissing, UnknownTarget
from ..model.output import DEFAULT_KEEP, check_keep
from ..model.result import Result
from ..model.tools import PACKAGES
from .backend import Backend

DEFAULT_TIMEOUT = 30.0
# What a shell prints when a command is not installed.
NOT_FOUND = re.compile(r"(?:^|: )(\S+): (?:command )?not found")

Observer = Callable[[str, Any], None]
"""Called with ``("run", Result)``, ``("start", Background)``, ``("stop", Background)``,
and ``("collapse", summary)`` / ``("expand", None)`` around :meth:`Lab.collapsed` blocks."""


class Target:
    """Something commands run in: a node or a pod."""

    name: str
    prompt: str
    _lab: Lab

    @property
    def lab(self) -> Lab:
        """The lab this node or pod is in."""
        return self._lab

    def sh(self, command: str, *, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
           keep: int = DEFAULT_KEEP) -> Result:
        """Run a shell command here and return what it printed.

        With ``check`` (the default) an exit status other than 0 raises
        :class:`~labkit.model.errors.CommandFailed`; pass ``check=False`` for a
        command that is meant to fail, and assert on ``result.rc``.  Of each of
        stdout and stderr the first ``keep`` bytes are kept (16 MiB unless given);
        ``result.dropped`` says how many more there were, and so does the page.
        """
        return self._lab.sh(self.name, command, timeout=timeout, check=check, keep=keep)

    def start(self, command: str, *, ready: str | None = None,
              timeout: float = 10.0, keep: int = DEFAULT_KEEP) -> Background:
        """Start a command in the background (a capture, say) and return at once.

        ``ready`` is text the command prints once it is ready (tcpdump's
        ``listening on``); :meth:`start` waits up to ``timeout`` seconds for it.
        ``keep`` is as for :meth:`sh`.
        """
        return self._lab.start(self.name, command, ready=ready, timeout=timeout, keep=keep)


@dataclass(frozen=True, eq=False)
class Node(Target):
    """A kind node (a docker container on the real cluster; namespaces on the replica)."""

    name: str
    role: str
    ip: str
    """Its address on docker's ``kind`` network (``eth0``)."""
    block: str
    """Its Calico IPAM block."""
    hostname: str
    tunnel_device: str
    """``tunl0`` in IPIP mode, ``vxlan.calico`` in VXLAN mode, ``""`` in plain BGP mode."""
    tunnel_ip: str
    prompt: str
    _lab: Lab = field(repr=False)


@dataclass(frozen=True, eq=False)
class Pod(Target):
    """A pod of the seed's Deployment."""

    name: str
    namespace: str
    node: str
    """The name of the node it runs on."""
    ip: str
    veth: str
    """Its host-side veth on the node: ``cali`` + 11 hex digits."""
    labels: dict[str, str]
    hostname: str
    netns: str
    """The runtime's name for its network namespace (``cni-<uuid>``)."""
    prompt: str
    _lab: Lab = field(repr=False)
    cni: list[dict[str, Any]] = field(default_factory=list, hash=False, repr=False)
    """Flannel labs: each CNI plugin run to attach it (``plugin``, ``ifname``, the
    ``config`` it read on stdin, the ``result`` JSON it printed), in order."""


class Background:
    """A command left running; :meth:`stop` ends it and returns its :class:`Result`."""

    def __init__(self, lab: Lab, target: Target, command: str, handle: str) -> None:
        self.lab = lab
        self.target = target
        self.command = command
        self.handle = handle
        self.result: Result | None = None
        self.signal: str | None = None
        """How it was ended: ``INT`` (Ctrl-C), ``TERM``..., or ``""`` if it exited by itself."""

    def stop(self, signal: str = "INT", timeout: float = 5.0) -> Result:
        """Send ``signal`` (Ctrl-C by default, as a reader would) and collect the output."""
        if self.result is None:
            self.signal = signal
            self.result = self.lab._backend.stop(self.handle, signal, timeout)
            self.lab._emit("stop", self)
        return self.result

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """Wait for the command to end by itself (``tcpdump -c 2``, say).

        If it has not ended within ``timeout`` seconds it is killed and
        :class:`~labkit.model.errors.CommandTimeout` is raised.
        """
        result = self.stop(signal="", timeout=timeout)
        if result.timed_out:
            raise CommandTimeout(result, timeout)
        return result

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Lab:
    """A running lab: its nodes and pods, and a way to run commands in them.

    Use it as a context manager (``with labkit.open_lab() as lab:``) so the lab
    is torn down however the block ends.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        inventory = backend.inventory()
        self.info: dict[str, Any] = inventory["info"]
        self.nodes: tuple[Node, ...] = tuple(Node(**n, _lab=self) for n in inventory["nodes"])
        self.pods: tuple[Pod, ...] = tuple(Pod(**p, _lab=self) for p in inventory["pods"])
        self._observers: list[Observer] = []

    @property
    def backend(self) -> Backend:
        """What runs the commands: the netns agent, the kind cluster, a recorder or a replay."""
        return self._backend

    @property
    def kind(self) -> str:
        """``netns`` (the replica), ``kind`` (the real cluster) or ``replay`` (a transcript)."""
        return str(self.info["backend"])

    @property
    def name(self) -> str:
        """The lab's name: the manifests folder it was built from (``calico``, ``flannel``)."""
        return str(self.info.get("lab", "calico"))

    @property
    def cni(self) -> str:
        """The CNI its cluster runs: ``calico`` or ``flannel``."""
        return str(self.info.get("cni", "calico"))

    @property
    def encapsulation(self) -> str:
        """How cross-node traffic is carried, in Calico's operator's words: ``IPIP``,
        ``IPIPCrossSubnet``, ``VXLAN`` or ``None`` (plain BGP routing, no tunnel)."""
        return str(self.info["encapsulation"])

    # -- finding things -------------------------------------------------------------------

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise UnknownTarget(name, [n.name for n in self.nodes])

    def pod(self, name: str) -> Pod:
        for pod in self.pods:
            if pod.name == name:
                return pod
        raise UnknownTarget(name, [p.name for p in self.pods])

    def target(self, name: str) -> Target:
        """A node or a pod, by name."""
        for target in (*self.nodes, *self.pods):
            if target.name == name:
                return target
        raise UnknownTarget(name, [t.name for t in (*self.nodes, *self.pods)])

    def select(self, *, node: str | None = None, **labels: str) -> list[Pod]:
        """Pods with all these labels, on ``node`` if given, in the order they started."""
        if node is not None:
            self.node(node)  # an unknown node name is a mistake, not an empty answer
        return [
            p for p in self.pods
            if (node is None or p.node == node)
            and all(p.labels.get(k) == v for k, v in labels.items())
        ]

    def busiest_node(self, **labels: str) -> Node:
        """The node with the most pods carrying these labels (``app="app"``), for chapters
        that follow pods on one node. A real scheduler places them where it likes; a tie
        goes to the later node (``calico-ipip-worker2`` before ``-worker``, as in the seed)."""
        order = {n.name: i for i, n in enumerate(self.nodes)}
        counts = {n.name: len(self.select(node=n.name, **labels)) for n in self.nodes}
        return self.node(max(counts, key=lambda name: (counts[name], order[name])))

    def __iter__(self) -> Iterator[Target]:
        yield from self.nodes
        yield from self.pods

    # -- running things -------------------------------------------------------------------

    def sh(self, target: str, command: str, *, timeout: float = DEFAULT_TIMEOUT,
           check: bool = True, keep: int = DEFAULT_KEEP) -> Result:
        """Run ``command`` in the node or pod named ``target``; see :meth:`Target.sh`."""
        self.target(target)
        check_keep(keep)
        # The default is not passed on: a backend (or a recording) that predates ``keep``
        # answers the call as before.
        more = {"keep": keep} if keep != DEFAULT_KEEP else {}
        try:
            result = self._backend.run(target, command, timeout, **more)
        except CommandTimeout as exc:
            self._emit("run", exc.result)  # the page shows what it printed before it was killed
            raise
        self._emit("run", result)
        self._raise_for(result, check)
        return result

    def start(self, target: str, command: str, *, ready: str | None = None,
              timeout: float = 10.0, keep: int = DEFAULT_KEEP) -> Background:
        where = self.target(target)
        check_keep(keep)
        more = {"keep": keep} if keep != DEFAULT_KEEP else {}
        handle = self._backend.start(target, command, ready, timeout, **more)
        background = Background(self, where, command, handle)
        self._emit("start", background)
        return background

    def _raise_for(self, result: Result, check: bool) -> None:
        if result.rc == 127:
            missing = NOT_FOUND.search(result.stderr)
            if missing:
                tool = missing.group(1)
                raise ToolMissing(tool, PACKAGES.get(tool), where=result.target)
        if check and result.rc != 0:
            error = CommandFailed(result)
            for note in self.info.get("limitations", []):
                error.args = (f"{error.args[0]}\n  note: {note}",)
            raise error

    # -- observing and closing ------------------------------------------------------------

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` for every command run; returns a function that stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    @contextlib.contextmanager
    def collapsed(self, summary: str) -> Iterator[None]:
        """Commands run inside this block are shown folded under ``summary`` on the page.

        For the many commands behind one figure (a diagram's ``ip -j`` queries,
        a packet walk's captures): still shown, word for word, but out of the way.
        """
        self._emit("collapse", summary)
        try:
            yield
        finally:
            self._emit("expand", None)

    def _emit(self, event: str, payload: Any) -> None:
        for observer in list(self._observers):
            observer(event, payload)

    def pause(self, seconds: float) -> None:
        """Give the lab ``seconds`` to settle (a capture to print its buffer, say).

        A wait, not an input: replaying a transcript skips it, since the recorded
        answers already are what the lab printed after it.
        """
        if not getattr(self._backend, "replays", False):
            time.sleep(seconds)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
