# The netns lab as a user meets it: isolated from the host, gone when its owner dies, honest
# about what it cannot do. (The seed's observations themselves are in test_contract.py.)
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from labproject import TOKEN, host_network, wait_until
from labproject import agents as agents_of

import labkit
from labkit.backends.netns import launcher
from labkit.model.errors import ToolMissing

ROOT = Path(__file__).resolve().parent.parent


def test_a_lab_leaves_the_host_network_as_it_was() -> None:
    before = host_network()
    with labkit.open_lab() as lab:
        assert host_network() == before  # not even while it runs
        # worker2 runs two of the cluster's own pods and two of the Deployment's
        assert lab.node("calico-ipip-worker2").sh("ip -o link").stdout.count(": cali") == 4
    assert host_network() == before


def test_the_lab_dies_with_the_process_that_started_it_even_by_sigkill() -> None:
    before_net = host_network()
    # Its agents are told apart by a token in their environment: other labs start and stop
    # on this machine meanwhile (other tests, other builds), and are none of this test's.
    token = uuid.uuid4().hex
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time, labkit
            lab = labkit.open_lab()
            lab.node("calico-ipip-worker2").start("sleep 600")
            print("up", flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, **{TOKEN: token}),
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "up"
    started = agents_of(token)
    assert started, "the lab's agent should be running while its owner lives"
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert wait_until(lambda: not agents_of(token)), "the agent outlived its owner"
    assert host_network() == before_net


def test_two_labs_at_once_do_not_see_each_other() -> None:
    with labkit.open_lab() as first, labkit.open_lab() as second:
        one, two = first.node("calico-ipip-worker2"), second.node("calico-ipip-worker2")
        one.sh("ip link add only-in-first type veth peer name first-peer")
        assert "only-in-first" in one.sh("ip -o link").stdout
        assert "only-in-first" not in two.sh("ip -o link").stdout
        # Same addresses in both, each answering inside its own lab.
        a1, b1 = first.select(node=one.name, app="app")[:2]
        a2, b2 = second.select(node=two.name, app="app")[:2]
        assert (a1.ip, b1.ip) == (a2.ip, b2.ip)
        first.pod(a1.name).sh(f"ping -c 1 -W 2 {b1.ip}")
        second.pod(a2.name).sh(f"ping -c 1 -W 2 {b2.ip}")
        # What a real node picks at random (eth0's MAC, the runtime's netns name) is fixed
        # per pod, so every lab and every chapter shows the same values.
        assert a1.netns == a2.netns
        mac = "cat /sys/class/net/eth0/address"
        assert first.pod(a1.name).sh(mac).stdout == second.pod(a2.name).sh(mac).stdout


def test_a_temporary_folder_too_long_for_a_socket_address_still_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Unix socket's address holds 107 bytes of path; TMPDIR may be longer than that.
    deep = tmp_path / ("t" * 60) / ("m" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    with labkit.open_lab() as lab:
        assert lab.node("calico-ipip-worker2").sh("echo hello").stdout == "hello\n"
        sockets = list(deep.glob("labkit-lab-*/agent.sock"))
        assert len(sockets) == 1 and len(os.fsencode(sockets[0])) > 107
    assert not list(deep.iterdir())  # and the lab's folder went with it


def test_every_node_and_pod_has_its_own_hostname_and_namespace() -> None:
    with labkit.open_lab() as lab:
        for target in lab:
            assert target.sh("hostname").stdout.strip() == target.name
        a = lab.select(app="app")[0]
        node = lab.node(a.node)
        assert a.netns in node.sh("ls /run/netns").stdout.split()
        # A pod does not see the node's namespaces: it has no /run/netns at all.
        assert a.sh("ls /run/netns", check=False).rc == 2
        assert f"link-netns {a.netns}" in node.sh(f"ip link show {a.veth}").stdout


def test_no_process_of_the_lab_inherits_pythons_ignored_signals() -> None:
    # Python ignores SIGPIPE (13) and SIGXFSZ (25), and an ignored signal stays ignored across
    # exec: a node's or pod's PID 1, and every command, must get them back at their default,
    # as a container runtime's processes do. SigIgn is a mask, bit N-1 for signal N.
    inherited = {"SIGPIPE": 1 << 12, "SIGXFSZ": 1 << 24}
    with labkit.open_lab() as lab:
        pod = lab.select(app="app")[0]
        for target in (lab.node(pod.node), pod):
            for pid in ("1", "self"):
                line = target.sh(f"grep SigIgn /proc/{pid}/status").stdout
                ignored = int(line.split()[1], 16)
                assert [name for name, bit in inherited.items() if ignored & bit] == [], \
                    f"{target.name}'s /proc/{pid}: {line.strip()}"


def test_results_say_what_ran_where_and_how_it_ended() -> None:
    with labkit.open_lab() as lab:
        pod = lab.select(app="app")[0]
        result = pod.sh("echo out; echo err >&2; exit 3", check=False)
        assert (result.stdout, result.stderr, result.rc) == ("out\n", "err\n", 3)
        assert result.output == "out\nerr\n"
        assert result.target == pod.name and result.prompt == f"root@{pod.name}:/#"
        assert 0 < result.duration < 5
        with pytest.raises(labkit.CommandTimeout, match=r"did not finish within 0\.3s"):
            pod.sh("sleep 5", timeout=0.3)
        with pytest.raises(labkit.CommandFailed, match="exited with 1"):
            pod.sh("false")


def test_background_commands_are_ready_before_start_returns() -> None:
    with labkit.open_lab() as lab:
        a, b = lab.select(node="calico-ipip-worker2", app="app")[:2]
        node = lab.node(a.node)
        capture = node.start(f"tcpdump -c 2 -n -i {a.veth} icmp", ready="listening on")
        a.sh(f"ping -c 1 {b.ip}")
        result = capture.wait(timeout=10)
        assert result.rc == 0
        assert "ICMP echo request" in result.stdout and "ICMP echo reply" in result.stdout
        with pytest.raises(labkit.LabError, match="before printing 'never printed'"):
            node.start("echo something else", ready="never printed")


def test_a_missing_tool_is_named_with_its_package() -> None:
    with labkit.open_lab() as lab:
        pod = lab.select(app="app")[0]
        with pytest.raises(ToolMissing) as missing:
            pod.sh("PATH=/nowhere; arping -c 1 169.254.1.1")
        assert "`arping` is not installed" in str(missing.value)
        assert "iputils-arping" in str(missing.value)


def test_no_ip_command_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.setattr(launcher.shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(ToolMissing, match="apt-get install iproute2"):
        launcher.start()


def test_a_kernel_without_user_namespaces_gets_one_message_not_a_traceback() -> None:
    # Inside a user namespace whose limit of nested user namespaces is 0, as on a kernel
    # (or container) that forbids them.
    script = "; ".join([
        "echo 0 > /proc/sys/user/max_user_namespaces",
        f"exec {sys.executable} -m labkit.cli up --name no-userns",
    ])
    done = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("labkit: this kernel has user namespaces turned off")
    assert "--replay" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_single_id_lab_runs_and_says_what_cannot_work() -> None:
    with labkit.open_lab(ids="single") as lab:
        assert lab.info["user_namespace"] == "single"
        node = lab.node("calico-ipip-worker2")
        node.sh("ip route")  # the lab itself works
        with pytest.raises(labkit.CommandFailed) as failed:
            node.sh("tcpdump -c 1 -i eth0")
        message = str(failed.value)
        assert "Couldn't change to 'tcpdump'" in message
        assert "only one user id is mapped" in message and "uidmap" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can watch another user's lab start")
def test_the_unprivileged_path_is_exercised_by_ci() -> None:
    # CI runs this whole suite a second time as an ordinary user (see .ci/run); here we only
    # prove that a non-root lab maps the user's subordinate ids when they exist.
    entries = Path("/etc/subuid").read_text() if Path("/etc/subuid").exists() else ""
    assert launcher._subordinate("/dev/null", "nobody", 65534) is None
    if entries.strip():
        user = entries.split(":")[0]
        assert launcher._subordinate("/etc/subuid", user, -1) is not None


def test_cli_up_status_sh_down(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))

    def labkit_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=60)

    no_lab = labkit_cli("sh", "calico-ipip-worker2", "--", "ip", "route")
    assert no_lab.returncode == 1 and no_lab.stderr.startswith("labkit: no lab is up")
    assert len(no_lab.stderr.strip().splitlines()) == 1
    up = labkit_cli("up")
    assert up.returncode == 0, up.stderr
    assert "calico-ipip-worker2" in up.stdout
    try:
        status = json.loads(labkit_cli("status", "--json").stdout)
        assert status["backend"] == "netns"
        assert status["encapsulation"] in ("IPIP", "VXLAN")
        assert {n["name"] for n in status["nodes"]} >= {"calico-ipip-worker2"}
        assert set(status["nodes"][0]) >= {"name", "ip", "block"}
        assert set(status["pods"][0]) >= {"name", "namespace", "node", "ip", "veth"}
        pod = status["pods"][0]
        route = labkit_cli("sh", pod["name"], "--", "ip", "route")
        assert route.returncode == 0 and "default via 169.254.1.1 dev eth0" in route.stdout
        failing = labkit_cli("sh", pod["name"], "--", "sh", "-c", "echo oops >&2; exit 7")
        assert (failing.returncode, failing.stderr) == (7, "oops\n")
        unknown = labkit_cli("sh", "no-such-pod", "--", "true")
        assert unknown.returncode == 1
        assert "no node or pod named 'no-such-pod'" in unknown.stderr
        assert pod["name"] in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    finally:
        down = labkit_cli("down")
    assert down.returncode == 0, down.stderr
    assert labkit_cli("status").returncode == 1
