# kind v0.12.0's kubeadm configuration for Kubernetes v1.23, rendered for one node.
"""The kubeadm configuration kind v0.12.0 writes to a node's ``/kind/kubeadm.conf``.

kind renders its ``ConfigTemplateBetaV3`` (``pkg/cluster/internal/kubeadm/config.go``)
for each node and passes the result through its YAML patcher, which sorts the keys and
drops the comments; :func:`render` gives the same documents for the native lab's nodes,
from the lab's cluster name, pod subnet and the node's address.  The kind lab needs none of it
(kind writes its own); it lives here because it is kind's, and what a kind node runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

TOKEN = "abcdef.0123456789abcdef"
"""kind's well-known bootstrap token: joins find the cluster with it."""
SERVICE_SUBNET = "10.96.0.0/16"
"""kind's default service subnet."""
VERSION = "v1.23.4"
API_PORT = 6443
"""Where the API server listens on the control plane (kubeadm's default bindPort)."""
KUBEADM_API = "kubeadm.k8s.io/v1beta3"

@dataclass(frozen=True)
class Node:
    """What the configuration says about one node."""

    name: str
    ip: str
    control_plane: bool


def render(cluster: str, node: Node, pod_subnet: str, *,
           service_subnet: str = SERVICE_SUBNET, version: str = VERSION) -> str:
    """``/kind/kubeadm.conf`` for ``node`` of ``cluster``, as kind v0.12.0 writes it: its
    template's five documents after kind's YAML round trip (keys sorted, no comments)."""
    endpoint = {"advertiseAddress": node.ip, "bindPort": API_PORT}
    registration = {
        "criSocket": "unix:///run/containerd/containerd.sock",
        "kubeletExtraArgs": {"fail-swap-on": "false", "node-ip": node.ip, "node-labels": "",
                             "provider-id": f"kind://docker/{cluster}/{node.name}"},
    }
    join: dict[str, object] = {
        "apiVersion": KUBEADM_API, "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{cluster}-control-plane:{API_PORT}",
                                         "token": TOKEN, "unsafeSkipCAVerification": True}},
        "nodeRegistration": registration,
    }
    if node.control_plane:
        join["controlPlane"] = {"localAPIEndpoint": endpoint}
    documents: list[dict[str, object]] = [
        {"apiVersion": KUBEADM_API, "kind": "ClusterConfiguration",
         "apiServer": {"certSANs": ["localhost", "127.0.0.1"],
                       "extraArgs": {"runtime-config": ""}},
         "clusterName": cluster, "controlPlaneEndpoint": f"{cluster}-control-plane:{API_PORT}",
         "controllerManager": {"extraArgs": {"enable-hostpath-provisioner": "true"}},
         "kubernetesVersion": version,
         "networking": {"podSubnet": pod_subnet, "serviceSubnet": service_subnet},
         "scheduler": {"extraArgs": None}},
        {"apiVersion": KUBEADM_API, "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": TOKEN}], "localAPIEndpoint": endpoint,
         "nodeRegistration": registration},
        join,
        # kind turns off the kubelet's disk-pressure eviction and image GC: it would see
        # the host's disk behind the node and try to free it.
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
         "cgroupDriver": "cgroupfs", "imageGCHighThresholdPercent": 100,
         "evictionHard": {"imagefs.available": "0%", "nodefs.available": "0%",
                          "nodefs.inodesFree": "0%"}},
        # maxPerCore 0: kube-proxy leaves nf_conntrack_max, a host-wide value, alone.
        {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
         "mode": "iptables", "iptables": {"minSyncPeriod": "1s"},
         "conntrack": {"maxPerCore": 0}},
    ]
    return "---\n".join(yaml.safe_dump(document, sort_keys=True, default_flow_style=False)
                        for document in documents)
