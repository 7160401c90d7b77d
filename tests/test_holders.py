# Each node and pod sees its own files and its own processes, as a container does, and
# nothing of the build machine; what it writes to the build machine's paths stays in the lab.
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import labkit
from labkit.model.errors import LabUnavailable

ROOT = Path(__file__).resolve().parent.parent
NODE = "calico-ipip-worker2"
# What docker (libnetwork's default hosts lines), kind and the kubelet write, copied from
# their sources (see FIDELITY.md, "Files and processes"), not from labkit.
DOCKER_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n")
KUBELET_HOSTS = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                 "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
POD_RESOLV_CONF = ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                   "nameserver 10.96.0.10\noptions ndots:5\n")
NODE_RESOLV_CONF = "nameserver 172.18.0.1\noptions ndots:0\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[labkit.Lab]:
    try:
        opened = labkit.open_lab()
    except LabUnavailable as exc:
        pytest.skip(f"no netns lab here: {exc.one_line()}")
    with opened:
        yield opened


def _pod(lab: labkit.Lab) -> labkit.Pod:
    return lab.select(node=NODE, app="app")[0]


def _host_digest(path: str) -> tuple[str, int]:
    real = Path(path).resolve()
    return hashlib.sha256(real.read_bytes()).hexdigest(), real.stat().st_mtime_ns


# -- who they are ----------------------------------------------------------------------------

def test_a_node_names_itself_as_docker_and_kind_do(lab: labkit.Lab) -> None:
    node = lab.node(NODE)
    assert node.sh("cat /etc/hostname").stdout == "calico-ipip-worker2\n"
    assert node.sh("hostname").stdout == "calico-ipip-worker2\n"
    expected = DOCKER_HOSTS + "172.18.0.4\tcalico-ipip-worker2\n"
    # docker's kind network is dual stack (FIDELITY.md): its IPv6 address follows, if the
    # replica gives the node one.
    if "fc00:f853:ccd:e793::4/64" in node.sh("ip -6 addr show dev eth0").stdout:
        expected += "fc00:f853:ccd:e793::4\tcalico-ipip-worker2\n"
    assert node.sh("cat /etc/hosts").stdout == expected
    assert node.sh("cat /etc/resolv.conf").stdout == NODE_RESOLV_CONF


def test_a_pod_names_itself_as_the_kubelet_does(lab: labkit.Lab) -> None:
    pod = _pod(lab)
    assert f"inet {pod.ip}/32 scope global eth0" in pod.sh("ip -4 addr show dev eth0").stdout
    assert pod.sh("cat /etc/hostname").stdout == f"{pod.name}\n"
    assert pod.sh("hostname").stdout == f"{pod.name}\n"
    assert pod.sh("cat /etc/hosts").stdout == KUBELET_HOSTS + f"{pod.ip}\t{pod.name}\n"
    assert pod.sh("cat /etc/resolv.conf").stdout == POD_RESOLV_CONF


def test_nothing_names_the_build_machine(lab: labkit.Lab, tmp_path: Path) -> None:
    here = socket.gethostname()
    mine = (tmp_path / "the-build-machines-own-file")
    mine.write_text("host\n")
    for target in (lab.node(NODE), _pod(lab)):
        files = target.sh("cat /etc/hostname /etc/hosts /etc/resolv.conf").stdout
        assert here not in files.split(), (target.name, files)
        # The build machine's /tmp, home folders and this checkout are not there at all.
        assert target.sh(f"test -e {mine} || test -e {ROOT}", check=False).rc == 1
        assert target.sh("ls -A /tmp /root /home").stdout == "/home:\n\n/root:\n\n/tmp:\n"
        assert "labkit.backends.netns.agent" not in target.sh(
            "cat /proc/[0-9]*/cmdline | tr '\\0' ' '", check=False).stdout


# -- what they write -------------------------------------------------------------------------

def test_writes_to_the_build_machines_paths_stay_in_the_lab(lab: labkit.Lab) -> None:
    token = uuid.uuid4().hex[:12]
    probe = f"/usr/local/labkit-probe-{token}"
    before = _host_digest("/etc/os-release")
    node, pod = lab.node(NODE), _pod(lab)
    write = (f'echo "# written in $(hostname) {token}" >> /etc/os-release && '
             f"touch {probe} && mkdir /etc/{token}")
    try:
        for target in (node, pod):
            done = target.sh(write, check=False)
            if os.geteuid() == 0:
                # The lab's root is the build machine's root here: it may write, as a
                # container's root may write its image, but into the lab's own layer.
                assert done.rc == 0, done.stderr
                assert target.sh("tail -n 1 /etc/os-release").stdout == \
                    f"# written in {target.name} {token}\n"
                assert target.sh(f"ls -d {probe} /etc/{token}").rc == 0
            else:
                # An ordinary user's lab: the build machine's files belong to nobody the
                # lab can map, so even its root may not change them.
                assert done.rc != 0 and "Permission denied" in done.stderr, done
            # Its own files it may write, wherever it runs.
            target.sh(f"echo {token} > /tmp/x && echo {token} >> /etc/hosts && "
                      f"mkdir -p /var/lib/{token} /root/{token}")
        # Each has a layer of its own: the pod did not see the node's line, nor the reverse.
        for target in (node, pod, lab.pods[-1]):
            assert target.sh(f"grep -c {token} /etc/os-release", check=False).stdout == \
                ("1\n" if os.geteuid() == 0 and target is not lab.pods[-1] else "0\n")
        assert lab.pods[-1].sh(f"grep -c {token} /etc/hosts", check=False).stdout == "0\n"
        # The build machine's files are as they were.
        assert _host_digest("/etc/os-release") == before
        for leaked in (probe, f"/etc/{token}", f"/var/lib/{token}", f"/root/{token}"):
            assert not os.path.lexists(leaked), leaked
    finally:
        for leaked in (probe, f"/etc/{token}"):  # only if the lab wrote through (a failure)
            if os.path.isdir(leaked):
                os.rmdir(leaked)
            elif os.path.lexists(leaked):
                os.unlink(leaked)


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="only root can put a file where a lab sees the build machine's "
                           "files (/usr, /etc); an ordinary user's lab cannot see theirs")
def test_a_lab_deletes_no_file_of_the_build_machine(lab: labkit.Lab) -> None:
    victim = Path(f"/usr/local/labkit-victim-{uuid.uuid4().hex[:12]}")
    victim.write_text("keep me\n")
    try:
        with labkit.open_lab() as fresh:  # it sees the file: the layer is made at start
            for target in (fresh.node(NODE), _pod(fresh)):
                target.sh(f"rm {victim} && test ! -e {victim}")
        assert victim.read_text() == "keep me\n"
    finally:
        victim.unlink()


def test_what_a_lab_wrote_is_gone_with_it() -> None:
    token = uuid.uuid4().hex[:12]
    with labkit.open_lab() as first:
        first.node(NODE).sh(f"echo {token} > /root/note && echo {token} >> /etc/hosts")
    with labkit.open_lab() as second:
        node = second.node(NODE)
        assert node.sh("ls -A /root").stdout == ""
        assert token not in node.sh("cat /etc/hosts").stdout


# -- what they run ---------------------------------------------------------------------------

def _processes(target: labkit.Target) -> list[tuple[int, str]]:
    out = target.sh("ps -e -o pid= -o args=").stdout
    return [(int(pid), args) for pid, args in (line.split(None, 1) for line in out.splitlines())]


def test_ps_in_a_pod_shows_that_pods_processes_only(lab: labkit.Lab) -> None:
    a, b = lab.select(node=NODE, app="app")[:2]
    node = lab.node(NODE)
    token = str(uuid.uuid4().int)[:8]  # digits: sleep takes 300.<i><token> as seconds
    running = [where.start(f"exec sleep 300.{i}{token}")
               for i, where in enumerate((a, b, node))]
    try:
        seen = {t.name: _processes(t) for t in (a, b, node)}
        for i, target in enumerate((a, b, node)):
            mine = seen[target.name]
            # PID 1 is the pause process, as in a pod's sandbox; then this ps, and its own
            # sleep: never another pod's or node's, never labkit's agent.
            assert mine[0] == (1, "catatonit -P"), mine
            args = [line for _, line in mine]
            assert f"sleep 300.{i}{token}" in args, mine
            others = [f"sleep 300.{j}{token}" for j in range(3) if j != i]
            assert not set(others) & set(args), mine
            assert not any("python" in line or "labkit" in line for line in args), mine
            assert len(mine) <= 4, mine  # catatonit, sleep, the shell that runs ps, ps
    finally:
        for background in running:
            background.stop()


def test_each_has_its_own_pid_numbers(lab: labkit.Lab) -> None:
    for target in (lab.node(NODE), _pod(lab)):
        assert target.sh("cat /proc/1/comm").stdout == "catatonit\n"
        # The shell is numbered in its own namespace, where only a few processes ever ran.
        assert int(target.sh("echo $$").stdout) < 1000


def test_the_page_says_what_a_real_node_runs_that_the_replica_does_not(
        lab: labkit.Lab) -> None:
    from labkit.book.differences import box_lines, load
    from labkit.book.render import Provenance, banner

    declared = load(ROOT / "docs_src")
    text = banner(Provenance(lab.info, "live", 0.0, differs=box_lines(declared, lab.info)))
    assert "containerd、kubelet" in text
    assert "`catatonit -P`" in text and "自己的 PID 命名空间" in text
    assert "`/etc/hostname`、`/etc/hosts`、`/etc/resolv.conf`" in text
