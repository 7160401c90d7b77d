# Building the replica: a holder per node and pod, the plan applied in each, BIRD where it routes.
"""What the agent's PID 1 builds before it serves requests; see :mod:`.plan` for what."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...model import calico
from ...model.tools import CTRL_C
from ...model.topology import NodeSpec, PodSpec, Topology
from . import bird, etc, linux, plan, rtnetlink
from .holder import Holder, HolderError, Holders
from .spawn import (
    COMMAND_ENV,
    ENV,
    RESET_SIGNALS,
    MachineLacks,
    SetupError,
    Where,
    _read,
    entered_net,
    which,
)

# How long BIRD gets to bring every session up and install every route (a few seconds here:
# `connect delay time 2`, then one scan of the kernel table).
BIRD_TIMEOUT = 30.0
NS_FLAGS = linux.CLONE_NEWNET | linux.CLONE_NEWUTS | linux.CLONE_NEWNS
MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
# Setup commands (ip -batch, bridge -batch) running at once while the lab is built; each
# spends most of its time waiting (for exec, for the kernel), so several per CPU.
SETUP_WIDTH = max(4, 4 * (os.cpu_count() or 1))
# `netns attach NAME PID` in a batch: done by the agent (Holders.attach_netns).
NETNS_ATTACH = re.compile(r"^netns attach (\S+) (\d+)$")


def write_sysctls(values: dict[str, str]) -> None:
    """Write sysctls of the network namespace this process is in."""
    for key, value in values.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        # Device names contain dots (vxlan.calico) but never as the last path parts' separator
        # that sysctl(8) uses; cali names have none, and those are the only device keys here.
        path.write_text(value)


class Replica:
    """The running replica: its holders (one per node and pod) and what runs in them."""

    def __init__(self, topo: Topology, encapsulation: str, mapping: str,
                 bird: bool = True, note: str = "") -> None:
        self.topo = topo
        self.encapsulation = encapsulation
        self.mapping = mapping
        self.bird = bird and calico.runs_bird(encapsulation)
        """Whether every node runs BIRD (IPIP and plain BGP pools, unless told not to)."""
        self.note = note
        self.holders = Holders()
        self.host = Where("host", "host", None)
        self.targets: dict[str, Where] = {}
        self.netns: dict[str, str] = {}
        self.started = time.time()
        self.cni_calls: dict[str, Any] = {}
        """Flannel labs: each pod's CNI plugin calls (see :mod:`.flannel`)."""
        self.cni_folder = ""

    # -- starting commands ----------------------------------------------------------------

    def spawn(self, target: Where, argv: list[str], stdio: tuple[int, int, int], *,
              env: dict[str, str] = COMMAND_ENV, session: bool = True) -> int:
        """Start ``argv`` inside ``target``'s namespaces, straight from this process: its
        pid.  posix_spawn (vfork + exec) costs a fraction of forking this Python process,
        and after setns() the child is born where a reader's shell would be (a command's
        PID namespace too: ``ps`` there shows the node's or pod's processes)."""
        with self.holders.entered(target.holder):
            return os.posix_spawn(
                argv[0], argv, env,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(stdio)],
                setsid=session, setsigdef=RESET_SIGNALS,
            )

    def spawn_command(self, target: Where, command: str, stdio: tuple[int, int, int]) -> int:
        """``/bin/sh -c command`` in ``target`` the way a reader's shell would run it, in a
        session of its own (so a timeout or Ctrl-C reaches everything it started)."""
        return self.spawn(target, ["/bin/sh", "-c", CTRL_C + command], stdio)

    def _start_tool(self, target: Where, tool: str, text: str) -> tuple[int, int]:
        """Start ``tool -batch -`` reading ``text`` in ``target``: (pid, its output's fd)."""
        feed = os.memfd_create("batch", os.MFD_CLOEXEC)
        out = os.memfd_create("output", os.MFD_CLOEXEC)
        try:
            os.write(feed, text.encode())
            os.lseek(feed, 0, os.SEEK_SET)
            # In the PID namespace of the agent, whose pids the batches name (`netns PID`).
            with self.holders.entered(target.holder, names=("net", "uts", "mnt")):
                pid = os.posix_spawn(which(tool), [tool, "-batch", "-"], ENV,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, feed, 0),
                                                   (os.POSIX_SPAWN_DUP2, out, 1),
                                                   (os.POSIX_SPAWN_DUP2, out, 2)])
        except BaseException:
            os.close(out)
            raise
        finally:
            os.close(feed)
        return pid, out

    def call(self, target: Where, argv: list[str]) -> tuple[int, str]:
        """Run a setup command to completion (before the event loop starts)."""
        out = os.memfd_create("output", os.MFD_CLOEXEC)
        try:
            pid = self.spawn(target, argv, (self.holders.null, out, out), env=ENV,
                             session=False)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status), _read(out)
        finally:
            os.close(out)

    # -- building -------------------------------------------------------------------------

    def hold(self, name: str, kind: str, files: dict[str, str | None] | None = None) -> Where:
        """A node or pod with namespaces, a root filesystem and a PID 1 of its own; its
        /etc names it as docker, kind and the kubelet would (:mod:`.etc`) unless ``files``
        says otherwise."""
        if files is None:
            files = (etc.node_files(self.topo, self.topo.node(name)) if kind == "node"
                     else etc.pod_files(self.topo, self.topo.pod(name)))
        try:
            return Where(name, kind, self.holders.make(name, files), self.holders)
        except HolderError as exc:
            raise SetupError(str(exc)) from exc

    def apply(self, target: Where, batch: plan.Batch) -> None:
        """Apply one batch in ``target`` and wait for it."""
        self.configure([[(target, batch)]])

    def build(self) -> None:
        if self.topo.cni == "flannel":  # pods attached by the real CNI plugins: its own module
            from . import flannel

            flannel.build(self)
        else:
            self._build_calico()
        self._kubelets_reach_the_api_server()

    def _kubelets_reach_the_api_server(self) -> None:
        """What a real node's kubelet does from its first second on: talk to the API server
        on the control plane, so every node and the control plane know each other's MAC (a
        capture on a real node's eth0 shows no ARP between them). One ping each stands in
        for that traffic; the replica runs no kubelet."""
        control_plane = next(n for n in self.topo.nodes if n.role == "control-plane")
        ping = shutil.which("ping", path=os.environ.get("PATH", "") + ":/usr/bin:/bin")
        if ping is None:  # the lab says which reader tools it lacks (info missing_tools)
            return
        for node in self.topo.nodes:
            if node is not control_plane:
                self.call(self.targets[node.name], [ping, "-c", "1", "-W", "1",
                                                    control_plane.ip])

    def _build_calico(self) -> None:
        topo = self.topo
        for node in topo.nodes:
            self.targets[node.name] = self.hold(node.name, "node")
        for pod in topo.pods:
            self.targets[pod.name] = self.hold(pod.name, "pod")
            self.netns[pod.name] = plan.netns_name(pod)
        for target in self.targets.values():
            assert target.holder is not None
            self.holders.ready(target.holder)
        pids = {name: t.pid for name, t in self.targets.items()}
        fresh = 1
        if topo.pods:  # the interface numbers a new namespace starts with (lo, tunl0...)
            with entered_net(self.targets[topo.pods[0].name]):
                fresh = max(index for index, _ in socket.if_nameindex())
        self.configure([[(self.host, plan.underlay(topo, pids))]])
        # One pipeline per node: the node, then its pods in the order they started (that
        # order decides the interface numbers the node gives their cali devices), then the
        # node's side of them; the nodes' pipelines run side by side.
        self.configure([
            [(self.targets[node.name],
              plan.node(topo, node.name, self.encapsulation, bird=self.bird)),
             *((self.targets[pod.name],
                plan.pod(topo, pod.name, self.encapsulation, pids, fresh))
               for pod in topo.pods if pod.node == node.name),
             (self.targets[node.name], plan.node_pods(topo, node.name, pids))]
            for node in topo.nodes
        ])

    def configure(self, pipelines: list[list[tuple[Where, plan.Batch]]]) -> None:
        """Apply batches: each pipeline's in order, up to SETUP_WIDTH commands at once."""
        queues = [deque(a for target, batch in steps for a in self._actions(target, batch))
                  for steps in pipelines]
        holders = {t.pid: t.name for t in self.targets.values()}
        running: dict[int, tuple[int, int, Where, str]] = {}
        ready = deque(range(len(queues)))
        while ready or running:
            while ready and len(running) < SETUP_WIDTH:
                index = ready.popleft()
                queue = queues[index]
                while queue:
                    what, target, detail = queue.popleft()
                    if what == "sysctl":
                        # Through the node's or pod's own /proc: the agent's keeps an entry
                        # per network namespace under each name and compares them all on
                        # every lookup, a cost that grew with every pod.
                        with self.holders.entered(target.holder, names=("net", "mnt")):
                            write_sysctls(detail)
                    elif what == "attach":
                        name, pid = detail
                        self.holders.attach_netns(self._holder(target), name, pid)
                    elif what == "netlink":
                        self._send(target, detail)
                    else:
                        pid, out = self._start_tool(target, what, detail)
                        running[pid] = (index, out, target, what)
                        break
            if not running:
                continue
            pid, status = os.waitpid(-1, 0)
            if pid in holders:
                raise SetupError(f"the PID 1 of {holders[pid]} exited while the lab was built")
            if pid not in running:
                continue
            index, out, target, tool = running.pop(pid)
            text = _read(out)
            os.close(out)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SetupError(f"configuring {target.name} with `{tool} -batch`: {text.strip()}")
            ready.append(index)

    @staticmethod
    def _actions(target: Where, batch: plan.Batch) -> Iterator[tuple[str, Where, Any]]:
        ip = []
        for line in batch.ip:
            attach = NETNS_ATTACH.match(line)
            if attach:
                yield "attach", target, (attach[1], int(attach[2]))
            else:
                ip.append(line)
        # A pod's lines go straight to the kernel (one exec of `ip` per pod was half of a
        # large lab's start-up); a batch with any other line goes to `ip -batch` whole.
        requests = rtnetlink.parse(ip) if ip else None
        if requests is not None:
            yield "netlink", target, requests
            ip = []
        for tool, lines in (("ip", ip), ("bridge", batch.bridge)):
            if lines:
                yield tool, target, "\n".join(lines) + "\n"
        if batch.sysctl:
            yield "sysctl", target, batch.sysctl

    def _send(self, target: Where, requests: list[rtnetlink.Request]) -> None:
        try:
            with self.holders.entered(target.holder, names=("net",)):
                rtnetlink.send(requests)
        except rtnetlink.NetlinkError as exc:
            raise SetupError(f"configuring {target.name}: {exc.strerror}") from exc

    @staticmethod
    def _holder(target: Where) -> Holder:
        if target.holder is None:
            raise SetupError(f"{target.name} has no namespaces of its own to name others in")
        return target.holder

    # -- BIRD -----------------------------------------------------------------------------

    def start_bird(self, timeout: float = BIRD_TIMEOUT) -> None:
        """Start BIRD in every node, as calico-node does, and wait until BGP has converged.

        Each node gets its own /var/run/calico (a tmpfs in its mount namespace) with
        confd's configuration, BIRD's socket and its log.  Ready means: every mesh
        session Established and every other node's block routed; otherwise a
        :class:`SetupError` names the first node and session that is not there yet.
        """
        if not self.bird:
            return
        try:
            which("bird")
            client = which("birdc")
        except SetupError as exc:
            raise SetupError(
                f"{exc}: a pool with ipipMode {self.topo.ipip_mode} and vxlanMode "
                f"{self.topo.vxlan_mode} routes with BGP, and the replica runs BIRD for it "
                f"(Debian/Ubuntu package `{bird.PACKAGE}`)"
            ) from None
        null = self.holders.null
        for node in self.topo.nodes:
            target = self.targets[node.name]
            files = bird.config_files(self.topo, node.name, self.encapsulation)
            with self.holders.entered(target.holder, names=("mnt",)):
                _bird_home(files)
            self.spawn_command(target, bird.DAEMON, (null, null, null))
        deadline = time.monotonic() + timeout
        while True:
            missing = self._bird_missing(client)
            if missing is None:
                return
            if time.monotonic() > deadline:
                where, what = missing
                raise SetupError(
                    f"BGP did not converge within {timeout:.0f} s: on {where}, {what} "
                    f"(its BIRD log: {bird.LOG} in that node)"
                )
            time.sleep(0.2)

    def _bird_missing(self, client: str) -> tuple[str, str] | None:
        for node in self.topo.nodes:
            target = self.targets[node.name]
            answers = []
            for argv in ([client, "-s", bird.SOCKET, "show protocols"],
                         [client, "-s", bird.SOCKET, "show route"],
                         [which("ip"), "-4", "route"]):
                rc, text = self.call(target, argv)
                if rc != 0:
                    return node.name, f"`{' '.join(argv[1:])}` failed: {text.strip()}"
                answers.append(text)
            missing = bird.not_converged(self.topo, node.name, answers[0], answers[1],
                                         answers[2], self.encapsulation)
            if missing:
                return node.name, missing
        return None

    def inventory(self) -> dict[str, Any]:
        topo = self.topo
        if topo.cni == "flannel":
            from . import flannel

            return flannel.inventory(self)
        tunnel = calico.tunnel_device(self.encapsulation)
        return {
            "info": self.info("calico", {
                "encapsulation": self.encapsulation,
                "pool": {"ipipMode": topo.ipip_mode, "vxlanMode": topo.vxlan_mode},
                "bird": self.bird,
                **({"mode_note": self.note} if self.note else {}),
            }, {"calico": topo.calico_version}),
            "nodes": [self.node_entry(n, tunnel, n.tunnel_ip if tunnel else "")
                      for n in topo.nodes],
            "pods": [self.pod_entry(p, p.ip, p.veth) for p in topo.listed_pods()],
        }

    # -- the inventory's parts, the same for every CNI ------------------------------------

    def info(self, cni: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """The lab's ``info``: what every netns lab says, with ``cni``'s own keys ``before``
        and ``after`` the cluster's name (in the order ``labkit status --json`` prints)."""
        return {"backend": "netns", "lab": self.topo.lab, "cni": cni, **before,
                "cluster": self.topo.cluster, **after, "kernel": os.uname().release,
                "user_namespace": self.mapping, "started": self.started}

    def node_entry(self, node: NodeSpec, tunnel_device: str, tunnel_ip: str) -> dict[str, Any]:
        """One node as the inventory lists it."""
        return {"name": node.name, "role": node.role, "ip": node.ip, "block": node.block,
                "hostname": node.name, "tunnel_device": tunnel_device, "tunnel_ip": tunnel_ip,
                "prompt": self.targets[node.name].prompt}

    def pod_entry(self, pod: PodSpec, ip: str, veth: str, **more: Any) -> dict[str, Any]:
        """One pod as the inventory lists it: its address and host-side device as the CNI
        plugin gave them, and ``more`` that CNI's own keys."""
        return {"name": pod.name, "namespace": pod.namespace, "node": pod.node, "ip": ip,
                "veth": veth, "labels": pod.labels, "hostname": pod.name,
                "netns": self.netns[pod.name], "prompt": self.targets[pod.name].prompt, **more}


def _bird_home(files: dict[str, str]) -> None:
    """In a node: its own /var/run/calico, holding confd's files for its BIRD."""
    var_run = Path("/var/run")
    if not var_run.exists() and Path("/var").is_dir():
        var_run.symlink_to("/run")  # as Debian and Ubuntu images have it
    Path(bird.RUN_DIR).mkdir(parents=True, exist_ok=True)
    linux.mount("tmpfs", bird.RUN_DIR, "tmpfs", MOUNT_FLAGS, "mode=755")
    config = Path(bird.CONFIG_DIR)
    config.mkdir()
    for name, text in files.items():
        (config / name).write_text(text)


def has_ipip() -> bool:
    """Whether this kernel can make an ipip device (asked in the agent's own namespace)."""
    ip = which("ip")

    def run(*args: str) -> int:
        with open(os.devnull, "r+b") as null:
            pid = os.posix_spawn(ip, [ip, *args], ENV, file_actions=[
                (os.POSIX_SPAWN_DUP2, null.fileno(), n) for n in (0, 1, 2)])
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    if run("link", "add", "labkit-probe", "type", "ipip") != 0:
        return False
    run("link", "del", "labkit-probe")
    return True


def choose_encapsulation(topo: Topology, manifests: str) -> tuple[str, str]:
    """The mode the pool asks for, and a note if the replica runs another one instead.

    IPIP needs the kernel's ``ipip`` module (Felix's ``tunl0``).  Without it a lab
    whose ``replica.yaml`` names ``ipipFallback: VXLAN`` (the seed's) runs VXLAN and
    says so; any other fails, saying why and what can stand in.
    """
    if topo.cni == "flannel":
        return "VXLAN", ""  # flannel's vxlan backend: no Calico pool to read
    wanted = topo.encapsulation
    if not wanted.startswith("IPIP") or has_ipip():
        return wanted, ""
    setting = f"ipipMode: {topo.ipip_mode}"
    if topo.ipip_fallback:
        return topo.ipip_fallback, (
            f"the pool asks for `{setting}`, but this kernel has no ipip module (no tunl0), "
            f"so the replica runs the pool as `vxlanMode: Always` (replica.yaml's ipipFallback)"
        )
    instead = ("every node is on 172.18.0.0/16, where CrossSubnet routes exactly as "
               "`ipipMode: Never` (plain BGP) does: set that"
               if wanted == "IPIPCrossSubnet" else
               "`ipipMode: Never` with `vxlanMode: Always` carries the same traffic in VXLAN, "
               "and `ipipMode: Never` with `vxlanMode: Never` routes it with BGP, unencapsulated")
    raise MachineLacks(
        f"{manifests}/calico.yaml: the pool's `{setting}` needs the kernel's ipip module "
        f"(Calico's tunl0 device), and this kernel has none (`ip link add type ipip` fails); "
        f"{instead}; or let this lab fall back to VXLAN with `ipipFallback: VXLAN` in "
        f"{manifests}/replica.yaml"
    )

