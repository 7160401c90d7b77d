# The kubeconfig kind v0.12.0 gives for a cluster (`kind get kubeconfig --name NAME`).
"""kind reads the control plane's ``/etc/kubernetes/admin.conf`` (kubeadm's: one cluster,
one user, one context), names all three ``kind-<cluster>``, makes that the current context
and, for use from the host, sets the server to the published API server,
``https://127.0.0.1:<port>`` (``pkg/cluster/internal/kubeconfig``: ``KINDFromRawKubeadm``,
then ``Encode``, which normalises through sigs.k8s.io/yaml: keys sorted, two-space
indents).  :func:`kind_kubeconfig` does the same for the native lab; the kind lab asks kind.
"""

from __future__ import annotations

from typing import Any

import yaml


class KubeconfigError(ValueError):
    """admin.conf is not what kubeadm writes (kind refuses it too)."""


def context_name(cluster: str) -> str:
    """kind's name for the cluster, its user and its context (``KINDClusterKey``)."""
    return f"kind-{cluster}"


def kind_kubeconfig(admin_conf: str, cluster: str, server: str | None = None) -> str:
    """``kind get kubeconfig`` from kubeadm's ``admin.conf``; ``server`` replaces the
    cluster's server when given (kind's external kubeconfig)."""
    try:
        config: Any = yaml.safe_load(admin_conf)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"admin.conf is not YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise KubeconfigError("admin.conf is not a kubeconfig")
    for key in ("clusters", "users", "contexts"):
        entries = config.get(key)
        if not isinstance(entries, list) or len(entries) != 1:
            count = len(entries) if isinstance(entries, list) else 0
            raise KubeconfigError(f"kubeadm's kubeconfig should have one {key[:-1]}, "
                                  f"but read {count}")
    key = context_name(cluster)
    config["clusters"][0]["name"] = key
    config["users"][0]["name"] = key
    config["contexts"][0]["name"] = key
    config["contexts"][0]["context"].update(cluster=key, user=key)
    config["current-context"] = key
    if server:
        config["clusters"][0]["cluster"]["server"] = server
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False, width=2**31)
