# The replica follows a real cluster whose CNI plugin made two pods' veths in one order and gave
# their addresses in the other.
"""CI's live ``nox -s fidelity`` of 2026-12-07 failed on this: on the real Flannel
cluster, flannel-worker2's second pod (10.244.2.3) had made its veth first,
interface 5, and the first pod (10.244.2.2) its veth second, interface 6
(``"link_index":5`` and ``"link_index":6`` in the pods' ``ip -j addr``).  The
kubelet starts both pods' sandboxes at once, the bridge plugin makes the veth
before it asks host-local for an address, and the two runs interleave.  The
replica made veths in address order and printed 6 and 5 the other way round.

These tests take the committed real recording of chapter 五 (its placement,
names, addresses) and cross two pods' veth numbers as that run did; the
replica following it must print what the real cluster printed.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

import labkit
from labkit.book.follow import followed, replica_file
from labkit.model import topology
from labkit.model.errors import ManifestError

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "docs_src" / "transcripts" / "native" / "05-flannel.yaml"


class Pod(NamedTuple):
    name: str
    ip: str


def recorded() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    return data


def a_worker_with_two_pods(inventory: dict[str, Any]) -> str:
    """A worker the recording put two pods or more on (the control plane has CoreDNS too)."""
    return next(n["name"] for n in inventory["nodes"] if n["role"] == "worker"
                and sum(p["node"] == n["name"] for p in inventory["pods"]) >= 2)


def crossed(inventory: dict[str, Any], node: str, number: int) -> tuple[Pod, Pod]:
    """``inventory`` with ``node``'s veths numbered from ``number`` in address order but for
    the first two pods, made the other way round.  Those two, lower address first."""
    first, second, *others = sorted((p for p in inventory["pods"] if p["node"] == node),
                                    key=lambda p: ipaddress.IPv4Address(p["ip"]))
    order = [second, first, *others]
    inventory["veth_ifindex"] = {p["name"]: number + i for i, p in enumerate(order)}
    return Pod(first["name"], first["ip"]), Pod(second["name"], second["ip"])


def eth0(lab: labkit.Lab, pod: str) -> dict[str, Any]:
    links = json.loads(lab.pod(pod).sh("ip -j addr show dev eth0").stdout)
    link: dict[str, Any] = links[0]
    return link


def test_the_followed_replica_yaml_lists_pods_as_their_veths_were_made_with_their_addresses(
        ) -> None:
    flannel = recorded()["inventory"]
    lower, higher = crossed(flannel, a_worker_with_two_pods(flannel), 5)
    old = yaml.safe_load((ROOT / "manifests" / "flannel" / "replica.yaml").read_text())
    text = replica_file(flannel, old, "the test")
    pods = yaml.safe_load(text)["pods"]
    names = [p["name"] for p in pods]
    assert names.index(higher.name) < names.index(lower.name)
    assert {p["name"]: p["ip"] for p in pods} == {p["name"]: p["ip"] for p in flannel["pods"]}


def test_the_flannel_replica_makes_the_veths_in_the_real_clusters_order(tmp_path: Path) -> None:
    flannel = recorded()["inventory"]
    node = a_worker_with_two_pods(flannel)
    lower, higher = crossed(flannel, node, 5)
    manifests = followed(ROOT / "manifests", {"flannel": flannel}, tmp_path / "m", "the test")
    with labkit.open_lab(manifests=manifests / "flannel") as lab:
        first, second = eth0(lab, lower.name), eth0(lab, higher.name)
        # What the real cluster printed: the lower address on the node's interface 6 (lo,
        # eth0, flannel.1 and cni0 come first), the higher on 5.
        assert first["addr_info"][0]["local"] == lower.ip and first["link_index"] == 6
        assert second["addr_info"][0]["local"] == higher.ip and second["link_index"] == 5
        # host-local gave each the address it was asked for and kept its lease files.
        leases = lab.node(node).sh("ls /var/lib/cni/networks/cbr0").stdout.split()
        assert {lower.ip, higher.ip} <= set(leases)


def test_the_calico_replica_makes_the_cali_devices_in_the_real_clusters_order(
        tmp_path: Path) -> None:
    calico = recorded()["labs"]["calico"]
    node = a_worker_with_two_pods(calico)
    lower, higher = crossed(calico, node, 4)
    manifests = followed(ROOT / "manifests", {"calico": calico}, tmp_path / "m", "the test")
    with labkit.open_lab(manifests=manifests) as lab:
        first, second = eth0(lab, lower.name), eth0(lab, higher.name)
        assert first["addr_info"][0]["local"] == lower.ip
        assert second["addr_info"][0]["local"] == higher.ip
        # The pod with the higher address made its cali device first.
        assert second["link_index"] < first["link_index"]
        links = {link["ifindex"]: link["ifname"] for link in
                 json.loads(lab.node(node).sh("ip -j link").stdout)}
        assert links[first["link_index"]] == lab.pod(lower.name).veth
        assert links[second["link_index"]] == lab.pod(higher.name).veth


@pytest.mark.parametrize("mistake", ["another node's subnet", "cni0's address", "taken"])
def test_an_address_no_ipam_would_give_is_named_with_its_line(tmp_path: Path,
                                                               mistake: str) -> None:
    flannel = recorded()["inventory"]
    node = a_worker_with_two_pods(flannel)
    lower, higher = crossed(flannel, node, 5)
    subnet = next(n["block"] for n in flannel["nodes"] if n["name"] == node)
    manifests = followed(ROOT / "manifests", {"flannel": flannel}, tmp_path / "m", "the test")
    path = manifests / "flannel" / "replica.yaml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if f"ip: {lower.ip}}}" in line)
    new, message = {
        "another node's subnet": ("10.244.99.7", f"10.244.99.7 is not in {node}'s subnet "
                                                 f"{subnet} (from .2, cni0 has .1)"),
        "cni0's address": (subnet.replace(".0/24", ".1"),
                           f"{subnet.replace('.0/24', '.1')} is not in {node}'s subnet"),
        "taken": (higher.ip, f"{higher.ip} is also {higher.name}'s"),
    }[mistake]
    lines[index] = lines[index].replace(f"ip: {lower.ip}}}", f"ip: {new}}}")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as caught:
        topology.load(manifests / "flannel")
    # The pods are listed from line 11, one a line: the line and key of the entry edited.
    assert f"replica.yaml:{index + 1}: `pods[{index - 10}].ip`: {message}" in str(caught.value)
