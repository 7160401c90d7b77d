# Captures the real outputs the normaliser tests use: the same commands on two fresh labs.
"""Run as root (or a user with user namespaces) from the repository's root::

    .venv/bin/python tests/samples/outputs/capture.py [NAME...]

Each command runs once on each of two netns labs started one after the other, so
the two files of a pair differ only in what really varies between honest runs
(random MACs, uuids, timings, ICMP ids): ``<name>.1.txt`` and ``<name>.2.txt``.
The first line of each file is the command, as the page shows it.
"""

from __future__ import annotations

from pathlib import Path

import labkit

HERE = Path(__file__).resolve().parent


def capture(lab: labkit.Lab) -> dict[str, labkit.Result]:
    node = lab.node("calico-ipip-worker2")
    a, b = lab.select(node=node.name, app="app")[:2]
    far = next(p for p in lab.select(app="app") if p.node != node.name)
    outputs = {
        "pod-ip-addr": a.sh("ip addr"),
        "pod-ip-d-link": a.sh("ip -d link show eth0"),
        # Another pod on the same node: its veth peer has another ifindex, its MAC another value.
        "other-pod-ip-d-link": b.sh("ip -d link show eth0"),
        "node-ip-link": node.sh("ip link"),
        "node-ip-d-link-cali": node.sh(f"ip -d link show {a.veth}"),
        "node-ip-route": node.sh("ip route"),
        "pod-arping": a.sh("arping -c 3 -I eth0 169.254.1.1"),
        "pod-ping-same-node": a.sh(f"ping -c 3 {b.ip}"),
        "pod-ping-other-node": a.sh(f"ping -c 2 {far.ip}"),
    }
    capture = node.start(f"tcpdump -c 4 -n -e -i {a.veth} icmp", ready="listening on")
    a.sh(f"ping -c 2 {b.ip}")
    outputs["node-tcpdump"] = capture.wait()
    outputs["node-ip-neigh"] = node.sh(f"ip neigh show dev {a.veth}")
    # The VXLAN outer header between the nodes: its UDP source port is a hash of the flow.
    tunnel = node.start("tcpdump -c 2 -l -n -e -v -i eth0 udp port 4789", ready="listening on")
    a.sh(f"ping -c 1 {far.ip}")
    outputs["node-tcpdump-vxlan"] = tunnel.wait()
    return outputs


def main(only: set[str] | None = None) -> None:
    for run in (1, 2):
        with labkit.open_lab(encapsulation="VXLAN") as lab:
            for name, result in capture(lab).items():
                if only and name not in only:
                    continue
                text = f"{result.prompt} {result.command}\n{result.output}"
                (HERE / f"{name}.{run}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    main(set(sys.argv[1:]) or None)  # names: record only those samples again
