# The Flannel lab's parts that need no lab: its manifests, flannel's rules, the CNI convention.
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from labkit.backends.netns import cni
from labkit.model import flannel, topology
from labkit.model.errors import ManifestError

ROOT = Path(__file__).resolve().parent.parent
FLANNEL = ROOT / "manifests" / "flannel"
# FIDELITY.md, "A kind + Flannel (vxlan) cluster": what the flannel CNI plugin hands the bridge
# plugin on the node whose subnet is 10.244.1.0/24, captured from the real plugin.
DELEGATE = ('{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":'
            '[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":'
            '"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,'
            '"name":"cbr0","type":"bridge"}')
CONFLIST = ('{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":'
            '{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":'
            '{"portMappings":true}}]}')


def test_the_flannel_lab_is_the_seeds_cluster_shape_with_flannel() -> None:
    spec = topology.load(FLANNEL)
    assert (spec.lab, spec.cni, spec.cluster, spec.pod_subnet, spec.flannel_version) == (
        "flannel", "flannel", "flannel", "10.244.0.0/16", "v0.22.0")
    assert [(n.name, n.role, n.ip, n.block) for n in spec.nodes] == [
        ("flannel-control-plane", "control-plane", "172.18.0.2", "10.244.0.0/24"),
        ("flannel-worker", "worker", "172.18.0.3", "10.244.1.0/24"),
        ("flannel-worker2", "worker", "172.18.0.4", "10.244.2.0/24"),
    ]
    assert [p.node for p in spec.pods].count("flannel-worker") == 3


def test_both_labs_run_the_seeds_deployment_the_flannel_one_with_seven_pods() -> None:
    """Seven, not four: chapter 五 needs three pods on one node, and a real scheduler spreads
    four over three nodes as 2, 1, 1 (seven as 3, 2, 2)."""
    calico = yaml.safe_load((ROOT / "manifests" / "app-deployment.yaml").read_text())
    flannel = yaml.safe_load((FLANNEL / "app-deployment.yaml").read_text())
    assert (calico["spec"]["replicas"], flannel["spec"]["replicas"]) == (4, 7)
    flannel["spec"]["replicas"] = 4
    assert flannel == calico


def test_the_calico_lab_is_still_the_default_lab() -> None:
    spec = topology.load(ROOT / "manifests")
    assert (spec.lab, spec.cni, spec.cluster) == ("calico", "calico", "calico-ipip")


def test_the_flannel_plugins_delegate_config_is_what_the_real_plugin_writes() -> None:
    env = flannel.read_subnet_env(flannel.subnet_env("10.244.0.0/16", "10.244.1.0/24"))
    conflist = flannel.conflist()
    conf = dict(conflist["plugins"][0], name=conflist["name"], cniVersion=conflist["cniVersion"])
    assert flannel.dumps(flannel.delegate(conf, env)) == DELEGATE
    assert flannel.dumps(conflist) == flannel.dumps(yaml.safe_load(CONFLIST))


def test_subnet_env_is_what_flanneld_writes() -> None:
    assert flannel.subnet_env("10.244.0.0/16", "10.244.2.0/24") == (
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\n"
        "FLANNEL_IPMASQ=true\n")
    with pytest.raises(ValueError, match="lacks FLANNEL_MTU, FLANNEL_IPMASQ"):
        flannel.read_subnet_env("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\n")


def edited(tmp_path: Path, file: str, old: str, new: str) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", copy)
    path = copy / "flannel" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return copy / "flannel"


@pytest.mark.parametrize("file, old, new, key, complaint", [
    ("replica.yaml", '"e6:9b:ee:cb:c9:3c"', '"e5:9b:ee:cb:c9:3c"', "nodes.flannel-worker.vtepMAC",
     "'e5:9b:ee:cb:c9:3c' is not a locally administered unicast MAC"),
    ("replica.yaml", "subnet: 10.244.1.0/24", "subnet: 10.244.1.0/25",
     "nodes.flannel-worker.subnet", "subnet 10.244.1.0/25 is a /25, but kube-controller-manager"
     "'s --node-cidr-mask-size is 24"),
    ("replica.yaml", "subnet: 10.244.2.0/24", "subnet: 10.244.1.0/24",
     "nodes.flannel-worker2.subnet",
     "subnet 10.244.1.0/24 overlaps flannel-worker's subnet 10.244.1.0/24"),
    ("replica.yaml", "flannel-worker2: {ip", "flannel-worker3: {ip", "nodes.flannel-worker3",
     "must be exactly kind's node names"),
    ("flannel.yaml", "Network: 10.244.0.0/16", "Network: 10.245.0.0/16", "netConf.Network",
     "10.245.0.0/16 must be kind's podSubnet"),
    ("flannel.yaml", "Type: vxlan", "Type: host-gw", "netConf.Backend.Type",
     "should be 'vxlan', not 'host-gw'"),
    ("flannel.yaml", "version: v0.22.0", "versio: v0.22.0", "version", "missing"),
])
def test_a_bad_flannel_manifest_is_named_with_its_file_and_key(
        tmp_path: Path, file: str, old: str, new: str, key: str, complaint: str) -> None:
    folder = edited(tmp_path, file, old, new)
    with pytest.raises(ManifestError) as caught:
        topology.load(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / file}:"), message
    assert f"`{key}`: {complaint}" in message, message


def test_a_missing_cni_plugin_names_the_debian_package(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bridge").write_bytes(b"")
    (tmp_path / "bridge").chmod(0o755)
    monkeypatch.setattr(cni, "PLUGIN_DIRS", (str(tmp_path),))
    with pytest.raises(cni.PluginMissing) as caught:
        cni.plugin_dir()
    message = str(caught.value)
    assert "host-local, loopback, portmap are not in" in message
    assert "install the Debian package containernetworking-plugins" in message


def test_a_plugin_is_called_by_the_cni_convention_and_its_error_is_shown() -> None:
    seen: list[tuple[list[str], bytes]] = []

    def run(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        seen.append((argv, stdin))
        return 1, b'{"code":100,"msg":"failed to find plugin \\"bridge\\" in path"}', b""

    with pytest.raises(cni.PluginFailed, match='failed to find plugin "bridge" in path'):
        cni.add(run, "/opt/cni/bin", "bridge", {"type": "bridge", "name": "cbr0"},
                netns="/run/netns/cni-1", ifname="eth0", container_id="c0ffee")
    [(argv, stdin)] = seen
    assert argv[1:] == ["CNI_COMMAND=ADD", "CNI_CONTAINERID=c0ffee", "CNI_NETNS=/run/netns/cni-1",
                        "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin", "/opt/cni/bin/bridge"]
    assert stdin == b'{"name":"cbr0","type":"bridge"}'
