# The Flannel replica: flanneld's files written by labkit, pods attached by the real CNI plugins.
"""Build a Flannel (vxlan) lab inside the agent.

The underlay is the Calico replica's (docker's ``kind`` network, the silent
gateway).  Per node, labkit writes what flanneld and kube-flannel.yml's init
container would (``/run/flannel/subnet.env``,
``/etc/cni/net.d/10-flannel.conflist``, ``flannel.1`` and, per remote node, its
neighbour, fdb entry and route): there is no flanneld binary here.  Per pod,
labkit does what containerd and the ``flannel`` CNI plugin do (read
``subnet.env``, build the delegate config) and then *runs* the real
``loopback``, ``bridge`` (which calls ``host-local``) and ``portmap`` plugins
under the CNI calling convention; ``cni0``, the veths, the pod's address and
routes, and host-local's lease files are theirs.  Each plugin's result is kept
and shown in the inventory (``pods[i]["cni"]``).

Every file a node gets lives in that node's own mount namespace: ``/etc`` and
``/var/lib`` are overlays (the host's files below, the node's on top, in memory)
and ``/run/flannel`` a private directory, so nothing is written to the host.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model import flannel as rules
from ...model.topology import Topology
from . import cni, linux, plan

if TYPE_CHECKING:
    from .replica import Replica
    from .spawn import Where

# The CNI config containerd runs first for every pod (go-cni's loopback network).
LOOPBACK = {"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}
SCRATCH_FLAGS = linux.MS_NOSUID | linux.MS_NODEV


def sandbox_id(cluster: str, namespace: str, pod: str) -> str:
    """A pod sandbox's container id (64 hex digits, as containerd's), fixed by the pod."""
    return hashlib.sha256(f"sandbox/{cluster}/{namespace}/{pod}".encode()).hexdigest()


def node_batch(topo: Topology, name: str) -> plan.Batch:
    """One node as kind and flanneld leave it (before any pod is attached)."""
    me = topo.node(name)
    prefix = topo.underlay.split("/")[1]
    dev = rules.DEVICE
    b = plan.Batch()
    prefix6 = topo.underlay6.split("/")[1]
    b.ip += [
        # kind's node on docker's dual-stack network, as in the Calico replica (plan.node).
        "link set lo up",
        f"link set eth0 address {plan.docker_mac(me.ip)}",
        f"addr add {me.ip}/{prefix} brd + dev eth0",
        f"addr add {me.ip6}/{prefix6} dev eth0 nodad",
        "link set eth0 up",
        f"route add default via {topo.gateway} dev eth0",
        f"route add default via {topo.gateway6} dev eth0",
        # flanneld makes flannel.1 with no transmit queue (no `qlen` in `ip link`).
        f"link add {dev} txqueuelen 0 type vxlan id {rules.VNI} local {me.ip} dev eth0 "
        f"dstport {rules.PORT} nolearning",
        f"link set {dev} address {me.vtep_mac} mtu {rules.MTU}",
        f"addr add {rules.tunnel_address(me.block)}/32 dev {dev}",
        f"link set {dev} up",
    ]
    for other in (n for n in topo.nodes if n.name != name):
        vtep = rules.tunnel_address(other.block)
        b.ip += [
            f"neigh add {vtep} dev {dev} lladdr {other.vtep_mac} nud permanent",
            f"route add {other.block} via {vtep} dev {dev} onlink",
        ]
        b.bridge.append(f"fdb add {other.vtep_mac} dev {dev} dst {other.ip} self permanent")
    b.sysctl["net.ipv4.ip_forward"] = "1"
    return b


def private_files(node: str, files: dict[str, str]) -> None:
    """In a node's mount namespace: its own /etc, /var/lib and /run/flannel, then ``files``.

    Runs inside the node (see :func:`labkit.backends.netns.spawn.in_namespace`).  The overlays'
    upper layers live on a tmpfs that is detached again once they are mounted, so the
    node's files exist only in memory and only in this node's view.
    """
    scratch = Path(f"/run/.labkit-{node}")
    scratch.mkdir()
    linux.mount("tmpfs", str(scratch), "tmpfs", SCRATCH_FLAGS, "mode=700")
    for lower, tag in (("/etc", "etc"), ("/var/lib", "lib")):
        upper, work = scratch / f"{tag}-upper", scratch / f"{tag}-work"
        upper.mkdir()
        work.mkdir()
        # userxattr: the overlay is mounted inside a user namespace (kernel 5.11+).
        linux.mount("overlay", lower, "overlay", 0,
                    f"lowerdir={lower},upperdir={upper},workdir={work},userxattr")
    run = scratch / "flannel"
    run.mkdir()
    Path("/run/flannel").mkdir(exist_ok=True)  # in the lab's /run: an empty directory elsewhere
    linux.mount(str(run), "/run/flannel", None, linux.MS_BIND)
    linux.umount(str(scratch), linux.MNT_DETACH)
    scratch.rmdir()
    for path, text in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def node_files(topo: Topology, name: str) -> dict[str, str]:
    """What flanneld and kube-flannel.yml's install-cni container write on a node."""
    me = topo.node(name)
    return {
        rules.SUBNET_ENV: rules.subnet_env(topo.pod_subnet, me.block),
        # The ConfigMap's cni-conf.json, copied as it is (kube-flannel.yml indents it so).
        rules.CONFLIST: json.dumps(rules.conflist(), indent=2) + "\n",
    }


def runner(target: Where) -> cni.Runner:
    """Run a plugin in ``target``'s namespaces, keeping its stdout apart from its stderr."""
    from .spawn import spawn

    def run(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = spawn(target, argv, (in_r, out_w, err_w))
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        with os.fdopen(in_w, "wb") as feed:
            feed.write(stdin)
        with os.fdopen(out_r, "rb") as out:
            stdout = out.read()
        with os.fdopen(err_r, "rb") as err:
            stderr = err.read()
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), stdout, stderr

    return run


def attach(lab: Replica, pod: str, folder: str) -> list[cni.Call]:
    """What containerd does for a new pod sandbox on a Flannel node; the plugins' results."""
    from .spawn import SetupError, call, which

    topo = lab.topo
    spec = next(p for p in topo.pods if p.name == pod)
    node = lab.targets[spec.node]
    netns = lab.netns[pod]
    # `ip netns attach`, done by the agent: the node's /proc cannot see the pod's PID.
    if node.holder is None:
        raise SetupError(f"{spec.node} has no namespaces of its own to name {pod}'s in")
    try:
        lab.holders.attach_netns(node.holder, netns, lab.targets[pod].pid)
    except OSError as exc:
        raise SetupError(f"cannot name {pod}'s network namespace {netns}: {exc}") from exc
    path = f"/run/netns/{netns}"
    run = runner(node)
    container = sandbox_id(topo.cluster, spec.namespace, pod)
    calls = [cni.add(run, folder, "loopback", LOOPBACK, netns=path, ifname="lo",
                     container_id=container)]
    # The flannel plugin: read subnet.env, build the bridge plugin's config, save it (as
    # the plugin does, for DEL) and delegate.
    rc, env_text = call(node, [which("cat"), rules.SUBNET_ENV])
    if rc != 0:
        raise SetupError(f"{spec.node}: cannot read {rules.SUBNET_ENV}: {env_text.strip()}")
    rc, conf_text = call(node, [which("cat"), rules.CONFLIST])
    if rc != 0:
        raise SetupError(f"{spec.node}: cannot read {rules.CONFLIST}: {conf_text.strip()}")
    conflist = json.loads(conf_text)
    flannel_conf = dict(conflist["plugins"][0], name=conflist["name"],
                        cniVersion=conflist["cniVersion"])
    delegate = rules.delegate(flannel_conf, rules.read_subnet_env(env_text))
    saved = f"{rules.CNI_DATA}/flannel/{container}"
    rc, text = call(node, [which("sh"), "-c", 'mkdir -p "${0%/*}" && cat > "$0"', saved],
                    rules.dumps(delegate).encode())
    if rc != 0:
        raise SetupError(f"{spec.node}: cannot write {saved}: {text.strip()}")
    # An address a real cluster gave out of line (replica.yaml's `ip`) is asked of
    # host-local, which the bridge plugin runs with its own environment; IgnoreUnknown, as
    # containerd always sends it, because the bridge plugin reads CNI_ARGS too (for `MAC`).
    bridge = cni.add(run, folder, "bridge", delegate, netns=path, ifname="eth0",
                     container_id=container,
                     args=f"IgnoreUnknown=1;IP={spec.ip}" if spec.given_ip else "")
    calls.append(bridge)
    portmap = dict(conflist["plugins"][1], name=conflist["name"],
                   cniVersion=conflist["cniVersion"], prevResult=bridge.result)
    calls.append(cni.add(run, folder, "portmap", portmap, netns=path, ifname="eth0",
                         container_id=container))
    return calls


def build(lab: Replica) -> None:
    """Hold every node and pod, then do what kind, flanneld and containerd would."""
    from .spawn import in_namespace

    topo = lab.topo
    folder = cni.plugin_dir()
    for node in topo.nodes:
        lab.targets[node.name] = lab.hold(node.name, "node")
    for pod in topo.pods:
        lab.targets[pod.name] = lab.hold(pod.name, "pod")
        lab.netns[pod.name] = plan.netns_name(pod)  # fixed by the pod, as in the Calico replica
    pids = {name: t.pid for name, t in lab.targets.items()}
    lab.apply(lab.host, plan.underlay(topo, pids))
    for node in topo.nodes:
        target = lab.targets[node.name]
        files = node_files(topo, node.name)
        in_namespace(target, lambda n=node.name, f=files: private_files(n, f))  # type: ignore[misc]
        lab.apply(target, node_batch(topo, node.name))
    lab.cni_calls = {pod.name: attach(lab, pod.name, folder) for pod in topo.pods}
    lab.cni_folder = folder


def inventory(lab: Replica) -> dict[str, Any]:
    """The Flannel lab's inventory: pods as the plugins attached them."""
    topo = lab.topo
    calls: dict[str, list[cni.Call]] = lab.cni_calls
    pods = []
    for p in topo.listed_pods():
        bridge = next(c for c in calls[p.name] if c.plugin == "bridge").result
        host_veth = next(i["name"] for i in bridge["interfaces"]
                         if "sandbox" not in i and i["name"] != rules.BRIDGE)
        address = bridge["ips"][0]["address"].split("/")[0]
        pods.append(lab.pod_entry(p, address, host_veth,
                                  cni=[c.record() for c in calls[p.name]]))
    return {
        "info": lab.info("flannel", {"flannel": topo.flannel_version, "encapsulation": "VXLAN"},
                         {"cni_plugins": lab.cni_folder}),
        "nodes": [lab.node_entry(n, rules.DEVICE, rules.tunnel_address(n.block))
                  for n in topo.nodes],
        "pods": pods,
    }
