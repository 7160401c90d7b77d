# The lab cannot reach anything outside itself: every network namespace of a running lab,
# the agent's own included, is read from the host and shown to lead nowhere but the lab.
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labproject import host_network

import labkit
from labkit.integrations.sybil import NO_LAB
from labkit.model import calico, topology
from labkit.model.errors import LabUnavailable

# Device kinds that carry packets only to other devices of the same namespace or, for a
# veth, to its peer (checked to be in the lab). A device with no kind but loopback is real
# hardware; macvlan, ipvlan, tun/tap and the like would hand packets to the host.
INTERNAL_KINDS = {"veth", "bridge", "vxlan", "ipip"}
NO_ROUTE = {"blackhole", "unreachable", "prohibit"}

# Runs inside the lab's user namespace and a private mount namespace of its own: names every
# lab namespace (by bind mounts on a private /run) so that `ip netns list-id`, run in each,
# says which namespace each of its peers' nsids is. Nothing is mounted or changed outside.
READER = textwrap.dedent("""
    import json, subprocess, sys
    pids = json.loads(sys.argv[1])
    subprocess.run(["mount", "-t", "tmpfs", "labkit-test", "/run"], check=True)
    subprocess.run(["mkdir", "/run/netns"], check=True)
    for name, pid in pids.items():
        open(f"/run/netns/{name}", "w").close()
        subprocess.run(["mount", "--bind", f"/proc/{pid}/ns/net", f"/run/netns/{name}"],
                       check=True)
    def ip(name, *args, check=True):
        done = subprocess.run(["ip", "-n", name, "-j", *args], capture_output=True, text=True)
        if check and done.returncode:
            raise SystemExit(f"ip -n {name} {' '.join(args)}: {done.stderr}")
        return json.loads(done.stdout or "null") if done.returncode == 0 else done.stderr
    found = {}
    for name in pids:
        found[name] = {
            "nsids": ip(name, "netns", "list-id") or [],
            "links": ip(name, "-d", "link", "show"),
            "addrs": ip(name, "addr", "show"),
            "routes": ip(name, "route", "show", "table", "all")
                      + (ip(name, "-6", "route", "show", "table", "all") or []),
            "outside": ip(name, "route", "get", "192.0.2.1", check=False),
        }
    print(json.dumps(found))
""")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def lab_processes(agent: int) -> list[int]:
    """The agent and every process below it: the lab's init and one holder per node and pod."""
    found, todo = [], [agent]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += _children(pid)
    return found


@pytest.fixture(scope="module")
def host_before() -> dict[str, Any]:
    return host_network()


@pytest.fixture(scope="module")
def lab(host_before: dict[str, Any]) -> Iterator[labkit.Lab]:
    if shutil.which("nsenter") is None or shutil.which("unshare") is None:
        pytest.skip(f"{NO_LAB}: nsenter and unshare (util-linux) are needed to read the "
                    "lab's namespaces")
    try:
        opened = labkit.open_lab()  # a lab that fails to build is an error, not a skip
    except LabUnavailable as exc:
        pytest.skip(f"{NO_LAB}: {exc.one_line()}")
    with opened:
        yield opened


@pytest.fixture(scope="module")
def namespaces(lab: labkit.Lab) -> dict[str, dict[str, Any]]:
    """What `ip` shows in every network namespace of the running lab, read from the host."""
    agent = lab.backend.agent_pid  # type: ignore[attr-defined]
    by_inode: dict[int, int] = {}
    for pid in lab_processes(agent):
        by_inode.setdefault(os.stat(f"/proc/{pid}/ns/net").st_ino, pid)
    assert os.stat("/proc/self/ns/net").st_ino not in by_inode, "the lab runs in the host's"
    names = {f"ns{inode}": pid for inode, pid in by_inode.items()}
    underlay = f"ns{os.stat(f'/proc/{agent}/ns/net').st_ino}"
    done = subprocess.run(
        ["nsenter", f"--target={agent}", "--user", "--preserve-credentials",
         "unshare", "--mount", "--propagation", "private",
         sys.executable, "-c", READER, json.dumps(names)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found: dict[str, dict[str, Any]] = json.loads(done.stdout)
    found[underlay]["underlay"] = True
    return found


def test_every_node_and_pod_and_the_agent_has_its_own_namespace(
        namespaces: dict[str, dict[str, Any]]) -> None:
    spec = topology.load()
    assert len(namespaces) == 1 + len(spec.nodes) + len(spec.pods)
    assert sum(1 for ns in namespaces.values() if ns.get("underlay")) == 1


def test_no_interface_leads_out_of_the_lab(namespaces: dict[str, dict[str, Any]]) -> None:
    peers = 0
    for name, ns in namespaces.items():
        nsids = {entry["nsid"]: entry.get("name") for entry in ns["nsids"]}
        for link in ns["links"]:
            kind = link.get("linkinfo", {}).get("info_kind")
            where = f"{link['ifname']} in {name}"
            if link.get("link_type") == "loopback":
                continue
            assert kind in INTERNAL_KINDS, f"{where} is a {kind or 'physical'} device"
            if "link_netnsid" in link:
                # Its other end (a veth's peer, a tunnel's underlay) is in another namespace:
                # it must be one of the lab's, never the host's or anyone else's.
                peer = nsids.get(link["link_netnsid"])
                assert peer in namespaces, f"{where} leads to a namespace outside the lab"
                peers += 1
    # Every veth pair that crosses namespaces was seen from both ends.
    assert peers > 0 and peers % 2 == 0


def test_no_route_leads_out_of_the_lab(namespaces: dict[str, dict[str, Any]]) -> None:
    addresses = {ipaddress.ip_address(a["local"]) for ns in namespaces.values()
                 for link in ns["addrs"] for a in link.get("addr_info", [])}
    for name, ns in namespaces.items():
        devices = {link["ifname"] for link in ns["links"]}
        for route in ns["routes"]:
            if route.get("type") in NO_ROUTE:
                continue
            assert route.get("dev") in devices, f"{route} in {name}"
            gateway = route.get("gateway")
            if gateway:
                # The next hop is the lab's own: another namespace's address, or Calico's
                # 169.254.1.1, which proxy ARP on the pod's own veth answers.
                hop = ipaddress.ip_address(gateway)
                assert hop in addresses or str(hop) == calico.GATEWAY, f"{route} in {name}"


def test_whatever_is_not_the_lab_ends_in_the_agents_black_hole(
        namespaces: dict[str, dict[str, Any]]) -> None:
    underlay = next(ns for ns in namespaces.values() if ns.get("underlay"))
    defaults = [r for r in underlay["routes"] if r.get("dst") == "default"]
    # One for IPv4 and one for IPv6 (docker's kind network is dual stack), both black holes.
    assert {r["type"] for r in defaults} == {"blackhole"}, defaults
    assert {"type": "blackhole", "dst": "default", "flags": []} in defaults
    assert any(r.get("dev") == "lo" for r in defaults), "no IPv6 black hole"
    # A route lookup sends nothing: the kernel says where a packet would go.
    assert isinstance(underlay["outside"], str) and "Invalid argument" in underlay["outside"]
    spec = topology.load()
    for ns in namespaces.values():
        if ns.get("underlay") or not isinstance(ns["outside"], list):
            continue
        [hop] = ns["outside"]
        # From a node, the way out is docker's gateway, which is the agent's black hole;
        # from a pod, the node (169.254.1.1), and from there the same.
        assert hop.get("gateway") in (spec.gateway, calico.GATEWAY), hop


def test_the_lab_still_answers_between_its_own_addresses(lab: labkit.Lab) -> None:
    a, b = lab.select(node="calico-ipip-worker2", app="app")[:2]
    far = next(p for p in lab.pods if p.node != a.node)
    for target in (b, far):
        assert a.sh(f"ping -c 1 -W 2 {target.ip}").rc == 0


def test_the_host_sees_nothing_of_the_lab(lab: labkit.Lab, host_before: dict[str, Any]) -> None:
    # The lab is running right now; the host has the links and named namespaces it had.
    assert host_network() == host_before
