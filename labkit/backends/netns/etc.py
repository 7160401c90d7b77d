# A node's and a pod's /etc files that say who they are, as docker, kind and the kubelet write them.
"""``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/machine-id`` of
one node or pod, as text: pure functions, so what the replica writes can be read and
tested on its own.

- A kind node is a docker container on the user network ``kind``: docker writes its
  hostname file, its hosts file (libnetwork's default lines, then the container's own
  addresses under its hostname) and a resolv.conf that points at docker's embedded DNS
  (``127.0.0.11``, ``options ndots:0``), which kind's entrypoint
  (``enable_network_magic``) rewrites to the network's gateway.  The build machine's
  search domains, which docker would copy, are left out: nothing of the build machine.
- A pod's container gets the kubelet's managed hosts file and, for the default
  ``dnsPolicy: ClusterFirst``, the cluster DNS (kube-dns' service address in kind's
  service subnet 10.96.0.0/16) with the pod's namespace first in the search list.
  CoreDNS itself runs with ``dnsPolicy: Default`` (kubeadm's Deployment), so its pods
  get the node's resolv.conf.
"""

from __future__ import annotations

import hashlib

from ...model.topology import NodeSpec, PodSpec, Topology

CLUSTER_DOMAIN = "cluster.local"
CLUSTER_DNS = "10.96.0.10"
# libnetwork's etchosts.defaultContent, one "IP<TAB>names" line each.
DOCKER_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
# The kubelet's managedHostsFileContent (pkg/kubelet/kubelet_pods.go, v1.23), including
# its fe00:: values for the multicast names.
KUBELET_HOSTS = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def _machine_id(name: str) -> str:
    # A real node's is random (systemd-machine-id-setup at boot); derived from the name here,
    # so it is the same in every build and never the build machine's.
    return hashlib.sha256(f"machine-id/{name}".encode()).hexdigest()[:32] + "\n"


def node_resolv_conf(topo: Topology) -> str:
    """What kind leaves in a node's /etc/resolv.conf: docker's, pointed at the gateway."""
    return f"nameserver {topo.gateway}\noptions ndots:0\n"


def node_files(topo: Topology, node: NodeSpec) -> dict[str, str | None]:
    """``etc/<file>`` -> content for one kind node."""
    addresses = [node.ip, *([node.ip6] if node.ip6 else [])]
    return {
        "hostname": f"{node.name}\n",
        "hosts": DOCKER_HOSTS + "".join(f"{ip}\t{node.name}\n" for ip in addresses),
        "resolv.conf": node_resolv_conf(topo),
        "machine-id": _machine_id(node.name),
    }


def pod_resolv_conf(topo: Topology, pod: PodSpec) -> str:
    """ClusterFirst as the kubelet writes it (containerd's order: search, nameserver,
    options); CoreDNS's own pods use the node's (``dnsPolicy: Default``)."""
    if pod.labels.get("k8s-app") == "kube-dns":
        return node_resolv_conf(topo)
    search = f"{pod.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"search {search}\nnameserver {CLUSTER_DNS}\noptions ndots:5\n"


def pod_files(topo: Topology, pod: PodSpec) -> dict[str, str | None]:
    """``etc/<file>`` -> content for one pod's container (None: the file does not exist,
    as in most images, rather than the build machine's)."""
    return {
        "hostname": f"{pod.name}\n",
        "hosts": KUBELET_HOSTS + f"{pod.ip}\t{pod.name}\n",
        "resolv.conf": pod_resolv_conf(topo, pod),
        "machine-id": None,
    }
