# The process that owns a native lab: PID 1 of a PID namespace holding every process of the lab.
"""The owner of a native lab, run as ``unshare --pid --fork --kill-child python -m ...owner``.

It is PID 1 of a new PID namespace, and each node's PID namespace nests inside
it: when the owner dies, even by SIGKILL, the kernel kills every process of the
lab (containerd, the kubelet, every pod).  It stays in the host's mount and
network namespaces, so the network namespaces it makes (bind mounts on files in
the lab's folder) are visible to ``labkit down``.

It makes the underlay (a bridge ``kind`` with docker's ``kind`` network's
addresses, in a network namespace of its own: the host's is untouched), then
each node: a network namespace with ``eth0`` on that bridge, a cgroup in every
hierarchy, and the node's first process (``scripts/node-init.sh``) in new
mount, UTS, IPC, PID and cgroup namespaces.  When the spec names the API server's
address, it also publishes it on a free port of the host's ``127.0.0.1``, as docker does
for a kind control plane (:mod:`.forward`).  It prints one JSON line when the nodes run
(or an ``error``), then waits until it is told to stop.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ...model.kind import UNDERLAY6_GATEWAY, UNDERLAY_GATEWAY
from .nodes import BRIDGE, Lab, make_cgroups, make_netns, new_lab, run

SCRIPTS = Path(__file__).resolve().parent / "scripts"
NODE_START_TIMEOUT = 30.0


def _host_pid() -> int:
    # /proc is the host's (only the PID namespace is new): /proc/self names us as the host does.
    return int(os.readlink("/proc/self"))


def _enter(cgroups: list[Path]) -> None:
    for group in cgroups:
        (group / "cgroup.procs").write_text(str(os.getpid()))


def _underlay(lab: Lab) -> None:
    make_netns(lab.underlay)
    u = lab.underlay
    run("ip", "link", "set", "lo", "up", netns=u)
    run("ip", "link", "add", BRIDGE, "type", "bridge", netns=u)
    run("ip", "addr", "add", f"{UNDERLAY_GATEWAY}/16", "dev", BRIDGE, netns=u)
    run("ip", "addr", "add", f"{UNDERLAY6_GATEWAY}/64", "dev", BRIDGE, "nodad", netns=u)
    run("ip", "link", "set", BRIDGE, "up", netns=u)
    run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=u)  # the underlay's own, per netns
    # docker's host would send what is not for the nodes out to the internet, where nobody
    # answers (ping 169.254.1.1 from a pod): here it is dropped without a word, never out.
    run("ip", "route", "add", "blackhole", "default", netns=u)
    run("ip", "-6", "route", "add", "blackhole", "default", netns=u)


def _publish(lab: Lab, address: str, port: int) -> int:
    """Listen on a free port of the host's 127.0.0.1 (kind's ``apiServerPort: 0``) and hand
    the socket to a forwarder in the underlay, which connects to ``address:port``."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    log = (lab.folder / "forward.log").open("wb")
    subprocess.Popen(["nsenter", f"--net={lab.underlay}", sys.executable, "-m",
                      "labkit.backends.native.forward", str(listener.fileno()), address,
                      str(port)],
                     pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL, stdout=log,
                     stderr=subprocess.STDOUT, cwd="/")
    published = int(listener.getsockname()[1])
    listener.close()  # the forwarder holds it now
    log.close()
    return published


def _bin(lab: Lab, links: dict[str, str]) -> None:
    """``/usr/local/bin`` of every node: links into the parts (mounted at /opt/labkit/parts)
    and labkit's stand-ins for systemd (``kubelet-loop``, ``systemctl``)."""
    folder = lab.folder / "bin"
    folder.mkdir()
    for name, target in links.items():
        (folder / name).symlink_to(target)
    for script in ("kubelet-loop", "systemctl"):
        shutil.copy(SCRIPTS / script, folder / script)
        (folder / script).chmod(0o755)


def _node(lab: Lab, node: dict[str, str], hosts: str, parts: str) -> subprocess.Popen[bytes]:
    name = node["name"]
    folder = lab.node_dir(name)
    for sub in ("rootfs", "usr.up", "usr.wk", "etc.up", "etc.wk", "cni.up", "cni.wk", "var",
                "home", "sysctl", "kind"):
        (folder / sub).mkdir(parents=True)
    # as in Debian (and kind's node image): /var/run is /run, where `ip netns` looks
    (folder / "var" / "run").symlink_to("/run")
    (folder / "var" / "lock").symlink_to("/run/lock")
    (folder / "name").write_text(name)
    (folder / "ipv4").write_text(node["ip"])
    (folder / "ipv6").write_text(node["ip6"])
    (folder / "hosts").write_text(hosts)
    netns = lab.netns(name)
    make_netns(netns)
    # docker names the bridge side veth + 7 hex characters, gives both ends no transmit queue
    # (no `qlen` in `ip link`) and the address its broadcast (`brd 172.18.255.255`)
    veth = "veth" + hashlib.sha1(name.encode()).hexdigest()[:7]
    run("ip", "link", "add", veth, "txqueuelen", "0", "type", "veth", "peer", "name", "eth0",
        "txqueuelen", "0", "netns", netns, netns=lab.underlay)
    run("ip", "link", "set", veth, "master", BRIDGE, "up", netns=lab.underlay)
    run("ip", "link", "set", "lo", "up", netns=netns)
    run("ip", "addr", "add", f"{node['ip']}/16", "brd", "+", "dev", "eth0", netns=netns)
    run("ip", "addr", "add", f"{node['ip6']}/64", "dev", "eth0", "nodad", netns=netns)
    run("ip", "link", "set", "eth0", "up", netns=netns)
    run("ip", "route", "add", "default", "via", UNDERLAY_GATEWAY, netns=netns)
    run("ip", "-6", "route", "add", "default", "via", UNDERLAY6_GATEWAY, netns=netns)
    make_cgroups(lab, name)
    cgroups = lab.cgroups(name)
    log = (folder / "init.log").open("wb")
    # Into the node's cgroups first: the cgroup namespace, unshared after, makes them its "/".
    return subprocess.Popen(
        ["nsenter", f"--net={netns}", "unshare", "--mount", "--uts", "--ipc", "--pid",
         "--fork", "--cgroup", "--propagation", "private",
         "/bin/bash", str(SCRIPTS / "node-init.sh"), str(folder), str(lab.folder), parts],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: _enter(cgroups))  # the owner has one thread: preexec_fn is safe


def _wait_for_nodes(lab: Lab, names: list[str],
                    launchers: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + NODE_START_TIMEOUT
    for name in names:
        while True:
            pid = lab.pid(name)
            if pid:
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "pause":
                        break
                except OSError:
                    pass
            if launchers[name].poll() is not None or time.monotonic() > deadline:
                log = (lab.node_dir(name) / "init.log").read_text(errors="replace")
                tail = "\n".join(log.strip().splitlines()[-5:])
                raise RuntimeError(f"node {name} did not start: {tail or 'no output'}")
            time.sleep(0.02)


def main(spec_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    owner = _host_pid()
    lab = new_lab(owner)
    if spec["state"]:  # `labkit up`: its lab is known by name while it comes up
        Path(spec["state"]).write_text(json.dumps({
            "folder": str(lab.folder), "owner": owner, "ready": False,
            "instance": spec["instance"], "manifests": spec["manifests"]}))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise SystemExit(0)  # PID 1 leaving ends every process of the lab

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if spec.get("creator_fd") is not None:
        _end_with_creator(int(spec["creator_fd"]))
    try:
        for hierarchy in lab.cgroups():
            hierarchy.mkdir(exist_ok=True)
        make_cgroups_for_owner(lab)
        _underlay(lab)
        apiserver = spec.get("apiserver")
        published = _publish(lab, apiserver["address"], apiserver["port"]) if apiserver else 0
        _bin(lab, spec["bin"])
        hosts = "".join(f"{n['ip']}\t{n['name']}\n{n['ip6']}\t{n['name']}\n"
                        for n in spec["nodes"])
        launchers = {n["name"]: _node(lab, n, hosts, spec["parts"]) for n in spec["nodes"]}
        _wait_for_nodes(lab, list(launchers), launchers)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "folder": str(lab.folder)}),
              flush=True)
        return 1
    print(json.dumps({"folder": str(lab.folder), "owner": owner, "apiserver_port": published,
                      "nodes": {n: lab.pid(n) for n in launchers}}), flush=True)
    log = os.open(lab.folder / "owner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    while not stopping:
        try:
            pid, status = os.wait()  # orphans of the namespace come here too: reap them
        except ChildProcessError:
            time.sleep(1)
            continue
        print(f"owner: process {pid} ended ({status})", flush=True)
    return 0


def _end_with_creator(fd: int) -> None:
    """Stop the lab once the process that made it for itself is gone: the pipe it holds the
    other end of reads end-of-file then, whether it closed the lab or was killed."""
    def watch() -> None:
        while os.read(fd, 1):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def make_cgroups_for_owner(lab: Lab) -> None:
    """The owner joins the lab's top cgroups, so `labkit down` finds it with the rest."""
    for group in lab.cgroups():
        if (group / "cpuset.cpus").exists() and not (group / "cpuset.cpus").read_text().strip():
            for key in ("cpuset.cpus", "cpuset.mems"):
                (group / key).write_text((group.parent / key).read_text())
    _enter(lab.cgroups())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
