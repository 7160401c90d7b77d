# A pod's `ip` lines sent over netlink by the agent leave the kernel as `ip -batch` leaves it.
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.backends.netns import rtnetlink

ROOT = Path(__file__).resolve().parents[1]

# In a user and network namespace of its own: two pairs of fresh network namespaces (a
# node and a pod each); the seed's first app pod's lines go to one pair through
# `ip -batch` and to the other through rtnetlink; what `ip` prints of each is the answer.
CHILD = """
import json, os, subprocess, time
from labkit.backends.netns import linux, plan, rtnetlink
from labkit.model import topology

def holder():
    process = subprocess.Popen(["unshare", "--net", "sleep", "60"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while os.readlink(f"/proc/{process.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        time.sleep(0.01)
    return process

topo = topology.load()
spec = next(p for p in topo.pods if p.name.startswith("app-"))
shows = ["ip -d link show", "ip -d addr show", "ip -d route show table all",
         "ip -d neigh show"]
seen = {}
own = os.open("/proc/self/ns/net", os.O_RDONLY)
for how in ("ip -batch", "rtnetlink"):
    node, pod = holder(), holder()
    # Every other pod of the node is named too; only this pod's lines are applied.
    pids = {**{p.name: pod.pid for p in topo.pods}, spec.node: node.pid}
    pod_lines = plan.pod(topo, spec.name, "VXLAN", pids).ip
    node_lines = [line for line in plan.node_pods(topo, spec.node, pids).ip
                  if line.startswith(f"link set {spec.veth}")
                  or line.startswith(f"route add {spec.ip}")]
    for where, lines in ((pod, pod_lines), (node, node_lines)):
        if how == "ip -batch":
            subprocess.run(["nsenter", "-t", str(where.pid), "-n", "ip", "-batch", "-"],
                           input="\\n".join(lines) + "\\n", text=True, check=True)
        else:
            fd = os.open(f"/proc/{where.pid}/ns/net", os.O_RDONLY)
            linux.setns(fd, linux.CLONE_NEWNET)
            try:
                rtnetlink.send(rtnetlink.parse(lines))
            finally:
                linux.setns(own, linux.CLONE_NEWNET)
                os.close(fd)
    # The kernel marks a veth UP once its link watcher has run (up to a second later, and
    # later under load), whichever way it was made: wait for both ends before reading.
    for where, device in ((pod, "eth0"), (node, spec.veth)):
        deadline = time.monotonic() + 20
        while "state UP" not in subprocess.run(
                ["nsenter", "-t", str(where.pid), "-n", "ip", "-o", "link", "show", device],
                capture_output=True, text=True).stdout and time.monotonic() < deadline:
            time.sleep(0.02)
    seen[how] = {f"{name}: {show}": subprocess.run(
                     ["nsenter", "-t", str(where.pid), "-n", *show.split()],
                     capture_output=True, text=True, check=True).stdout
                 for name, where in (("pod", pod), ("node", node)) for show in shows}
    seen[how + " lines"] = pod_lines + node_lines
    for process in (node, pod):
        process.kill()
print(json.dumps(seen))
"""


def in_namespaces(code: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.fail("util-linux's unshare and nsenter are needed (Debian package util-linux)")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-c",
         textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_pods_lines_over_netlink_leave_what_ip_batch_leaves() -> None:
    done = in_namespaces(CHILD)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    lines = seen["ip -batch lines"]
    # The lines are the pod's: its veth pair, address, the two routes, the node's side.
    assert any(line.startswith("link add eth0 index 3 ") for line in lines)
    assert "route add default via 169.254.1.1 dev eth0" in lines
    assert rtnetlink.parse(lines) is not None
    for key, printed in seen["ip -batch"].items():
        assert seen["rtnetlink"][key] == printed, key
    pod_addr = seen["rtnetlink"]["pod: ip -d addr show"]
    # The seed's app-5c7b8d4f6d-x2k9p: its /32, with no broadcast address.
    assert "    inet 10.244.244.67/32 scope global eth0\n" in pod_addr
    routes = seen["rtnetlink"]["pod: ip -d route show table all"]
    assert "unicast default via 169.254.1.1 dev eth0 table main proto boot scope global" in routes
    assert "unicast 169.254.1.1 dev eth0 table main proto boot scope link" in routes


@pytest.mark.parametrize("line", [
    "addr add 172.18.0.4/16 brd + dev eth0",           # a broadcast address
    "addr add fc00:f853:ccd:e793::4/64 dev eth0 nodad",  # IPv6, and a flag
    "route add blackhole 10.244.244.64/26 proto 80",    # another route type
    "route add 10.244.79.0/26 via 172.18.0.3 dev tunl0 proto 80 onlink",
    "link add vxlan.calico txqueuelen 0 type vxlan id 4096 local 172.18.0.4",
    "link set eth0 address 02:42:ac:12:00:04",
    "neigh add 10.244.79.0 dev vxlan.calico lladdr 66:20:24:67:fc:16 nud permanent",
])
def test_other_lines_are_left_to_ip_batch(line: str) -> None:
    assert rtnetlink.parse(["link set lo up", line]) is None


ERRORS = """
import json
from labkit.backends.netns import rtnetlink
said = []
for lines in (["addr add 10.0.0.1/32 dev eth9"],
              ["link set lo up", "route add 10.0.0.0/8 dev lo scope link",
               "route add 10.0.0.0/8 dev lo scope link"]):
    try:
        rtnetlink.send(rtnetlink.parse(lines))
    except rtnetlink.NetlinkError as exc:
        said.append(exc.strerror)
print(json.dumps(said))
"""


def test_a_refused_line_is_named_with_the_kernels_answer() -> None:
    done = in_namespaces(ERRORS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        '`ip addr add 10.0.0.1/32 dev eth9`: Cannot find device "eth9"',
        "`ip route add 10.0.0.0/8 dev lo scope link`: RTNETLINK answers: File exists",
    ]
