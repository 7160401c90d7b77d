# The native lab: the seed's real clusters (kubeadm, containerd, Calico or Flannel) in namespaces.
"""The native backend: kubeadm, kubelet, containerd, Calico or Flannel in namespace nodes."""

# :mod:`.owner` is the process that holds a lab (PID 1 of a PID namespace holding every node);
# :mod:`.nodes` is the lab seen from the host (folder, cgroups, entering a node or a pod,
# sweeping); :mod:`.bringup` runs kubeadm and the seed's setup script in the nodes
# (:mod:`.flannel`: what a Flannel lab installs instead of Calico);
# :mod:`.backend` is the Backend, ``start``, ``attach`` and ``down``.  The node's first
# process is ``scripts/node-init.sh``; ``scripts/kubelet-loop`` and ``scripts/systemctl``
# stand in for systemd.  Nothing is imported here: the owner is a new process.
