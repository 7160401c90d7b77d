# OCI image archives: valid digests, the same bytes every build, and a real containerd runs them.
""":mod:`labkit.parts.oci` and :mod:`labkit.parts.rootfs`.

The archive is checked the way a registry would check it (every blob's sha256 is its name,
every size and diff_id matches), then imported into a private containerd (its own root,
state and socket; never the machine's) that runs a static binary from it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.parts import oci
from labkit.parts.oci import Entry, Image, ImageConfig, Layer
from labkit.parts.rootfs import RootFS, RootFSError


def _static_program(message: bytes) -> bytes:
    """A complete static x86-64 Linux program that prints ``message`` and exits 0: an ELF
    header, one loadable segment, 33 bytes of code (write(1, message), exit(0)).  Made
    here, so the test needs no compiler, and it is the same bytes everywhere."""
    code = (b"\xb8\x01\x00\x00\x00"            # mov eax, 1 (write)
            b"\xbf\x01\x00\x00\x00"            # mov edi, 1 (stdout)
            b"\x48\x8d\x35" + struct.pack("<i", 16)  # lea rsi, [rip+16]: the message
            + b"\xba" + struct.pack("<I", len(message))  # mov edx, len
            + b"\x0f\x05"                         # syscall
            b"\xb8\x3c\x00\x00\x00"            # mov eax, 60 (exit)
            b"\x31\xff"                           # xor edi, edi
            b"\x0f\x05")                          # syscall
    size = 64 + 56 + len(code) + len(message)
    base = 0x400000
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 0x3E, 1,
                         base + 64 + 56, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + segment + code + message


def _image(tmp_path: Path, name: str = "k8s.gcr.io/pause:3.6") -> Image:
    program = tmp_path / "program"
    if not program.exists():
        program.write_bytes(b"\x00not really a program\x00" * 100)
    first = Layer([
        Entry.file("/pause", program, mode=0o755),
        Entry.file("/etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry.directory("/tmp", mode=0o1777),
    ], comment="the binary")
    second = Layer([Entry.symlink("/usr/bin/pause", "/pause"),
                    Entry.file("/usr/share/x/deep/file", data=b"x")], comment="extras")
    config = ImageConfig(entrypoint=["/pause"], cmd=["-v"], working_dir="/",
                         labels={"org.opencontainers.image.version": "3.6"})
    return Image(name, [first, second], config, annotations={"labkit.parts.files": "{}"})


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        found: dict[str, bytes] = {}
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                found[member.name] = data.read()
        return found


def _blob(members: dict[str, bytes], digest: str) -> bytes:
    return members["blobs/sha256/" + digest.removeprefix("sha256:")]


def test_every_blob_is_named_by_its_sha256_and_every_size_and_diff_id_matches(
        tmp_path: Path) -> None:
    archive = tmp_path / "pause.tar"
    [written] = oci.write_archive(archive, [_image(tmp_path)])
    members = _members(archive)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in members.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rpartition("/")[2]
    index = json.loads(members["index.json"])
    assert index["mediaType"] == oci.INDEX_MEDIA_TYPE
    [descriptor] = index["manifests"]
    assert descriptor["digest"] == written.manifest_digest
    manifest_blob = _blob(members, descriptor["digest"])
    assert descriptor["size"] == len(manifest_blob)
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(manifest_blob)
    assert manifest["mediaType"] == oci.MANIFEST_MEDIA_TYPE
    assert manifest["annotations"] == {"labkit.parts.files": "{}"}
    config_blob = _blob(members, manifest["config"]["digest"])
    assert manifest["config"]["size"] == len(config_blob)
    assert manifest["config"]["digest"] == written.config_digest
    config = json.loads(config_blob)
    diff_ids = []
    for layer in manifest["layers"]:
        assert layer["mediaType"] == oci.LAYER_MEDIA_TYPE
        compressed = _blob(members, layer["digest"])
        assert layer["size"] == len(compressed)
        assert compressed[4:8] == b"\0\0\0\0", "the gzip header holds no time"
        diff_ids.append("sha256:" + hashlib.sha256(gzip.decompress(compressed)).hexdigest())
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert list(written.diff_ids) == diff_ids
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["config"]["Cmd"] == ["-v"]
    assert config["config"]["Env"] == [oci.DEFAULT_PATH]
    assert config["config"]["Labels"] == {"org.opencontainers.image.version": "3.6"}
    assert [h["created_by"] for h in config["history"]] == ["the binary", "extras"]


def test_layers_are_sorted_owned_by_root_dated_zero_and_hold_every_parent(
        tmp_path: Path) -> None:
    archive = tmp_path / "pause.tar"
    [written] = oci.write_archive(archive, [_image(tmp_path)])
    second = gzip.decompress(_blob(_members(archive), written.layer_digests[1]))
    with tarfile.open(fileobj=io.BytesIO(second)) as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert names == ["usr", "usr/bin", "usr/bin/pause", "usr/share", "usr/share/x",
                     "usr/share/x/deep", "usr/share/x/deep/file"]
    assert {(m.uid, m.gid, m.mtime, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert members[2].issym() and members[2].linkname == "/pause"
    first = gzip.decompress(_blob(_members(archive), written.layer_digests[0]))
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        modes = {member.name: member.mode for member in tar}
    assert modes == {"etc": 0o755, "etc/passwd": 0o644, "pause": 0o755, "tmp": 0o1777}


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    first = oci.write_archive(one, [_image(tmp_path)])
    os.utime(tmp_path / "program", (12345, 12345))  # a file's time never reaches the image
    second = oci.write_archive(two, [_image(tmp_path)])
    assert one.read_bytes() == two.read_bytes()
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tar", "program", "two.tar"]


def test_a_different_name_changes_only_the_index(tmp_path: Path) -> None:
    [pause] = oci.write_archive(tmp_path / "a.tar", [_image(tmp_path)])
    [other] = oci.write_archive(tmp_path / "b.tar", [_image(tmp_path, "calico/node:v3.23.2")])
    assert other.name == "docker.io/calico/node:v3.23.2"
    assert other.manifest_digest == pause.manifest_digest
    index = json.loads(_members(tmp_path / "b.tar")["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/calico/node:v3.23.2",
        "org.opencontainers.image.ref.name": "v3.23.2",
    }


def test_one_archive_holds_several_images(tmp_path: Path) -> None:
    written = oci.write_archive(tmp_path / "two.tar", [
        _image(tmp_path, "k8s.gcr.io/pause:3.6"), _image(tmp_path, "burlyluo/nettool")])
    assert [one.name for one in written] == ["k8s.gcr.io/pause:3.6",
                                             "docker.io/burlyluo/nettool:latest"]
    index = json.loads(_members(tmp_path / "two.tar")["index.json"])
    assert len(index["manifests"]) == 2
    with pytest.raises(ValueError, match="names each image once"):
        oci.write_archive(tmp_path / "same.tar", [_image(tmp_path), _image(tmp_path)])


@pytest.mark.parametrize(("reference", "full"), [
    ("k8s.gcr.io/pause:3.6", "k8s.gcr.io/pause:3.6"),
    ("k8s.gcr.io/kube-apiserver:v1.23.4", "k8s.gcr.io/kube-apiserver:v1.23.4"),
    ("docker.io/calico/node:v3.23.2", "docker.io/calico/node:v3.23.2"),
    ("calico/cni:v3.23.2", "docker.io/calico/cni:v3.23.2"),
    ("burlyluo/nettool", "docker.io/burlyluo/nettool:latest"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
])
def test_names_are_qualified_as_containerd_stores_them(reference: str, full: str) -> None:
    assert oci.full_name(reference) == full


def test_a_label_containerd_would_refuse_is_refused_here(tmp_path: Path) -> None:
    image = Image("x:1", [Layer([Entry.file("/a", data=b"a")])],
                  ImageConfig(labels={"long": "x" * 5000}))
    with pytest.raises(ValueError, match="4096"):
        oci.write_archive(tmp_path / "x.tar", [image])
    assert list(tmp_path.iterdir()) == []


def test_two_entries_for_one_path_or_one_below_a_symlink_are_refused(tmp_path: Path) -> None:
    clash = Layer([Entry.file("/a", data=b"1"), Entry.file("/a", data=b"2")])
    with pytest.raises(ValueError, match="two different entries for /a"):
        oci.write_archive(tmp_path / "x.tar", [Image("x:1", [clash])])
    below = Layer([Entry.symlink("/bin", "usr/bin"), Entry.file("/bin/sh", data=b"")])
    with pytest.raises(ValueError, match="below /bin, which is a symlink"):
        oci.write_archive(tmp_path / "x.tar", [Image("x:1", [below])])


def _installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", package],
                          capture_output=True, text=True, check=False)
    return done.stdout == "installed"


@pytest.mark.skipif(not _installed("iptables"), reason="Debian's iptables is not installed")
def test_a_debian_package_comes_with_its_libraries_loader_and_alternatives() -> None:
    root = RootFS()
    assert root.add_debian_package("iptables").startswith("debian:iptables=")
    root.add_alternative("iptables", "/usr/sbin/iptables-legacy")
    entries = {entry.path: entry for entry in root.entries()}
    assert entries["/usr/sbin/iptables"].target == "/etc/alternatives/iptables"
    assert entries["/etc/alternatives/iptables"].target == "/usr/sbin/iptables-legacy"
    assert entries["/etc/alternatives/iptables-save"].target == \
        "/usr/sbin/iptables-legacy-save"
    assert entries["/usr/sbin/xtables-legacy-multi"].kind == "file"
    assert entries["/lib64"].kind == "symlink"  # the loader's /lib64/ld-linux-x86-64.so.2
    assert entries["/usr/lib/x86_64-linux-gnu/libc.so.6"].kind == "file"
    assert not any(path.startswith("/usr/share/man/") for path in entries)
    sources = root.sources()
    assert any(source.startswith("debian:libc6=") for source in sources)
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in next(
        paths for source, paths in sources.items() if source.startswith("debian:libc6="))
    labels = root.labels()
    assert all(len(key) + len(value) <= oci.LABEL_LIMIT for key, value in labels.items())
    assert "iptables=" in labels["labkit.parts.debian"]
    files = json.loads(root.annotations()["labkit.parts.files"])
    assert files == sources


def test_a_package_that_is_not_installed_is_named() -> None:
    with pytest.raises(RootFSError, match="labkit-no-such-package"):
        RootFS().add_debian_package("labkit-no-such-package")


def test_two_different_files_for_one_path_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    root = RootFS()
    root.add_file("/x", tmp_path / "a", source="one")
    root.add_file("/x", tmp_path / "a", source="one")  # the same file twice is fine
    with pytest.raises(RootFSError, match="two different entries for /x"):
        root.add_file("/x", tmp_path / "b", source="two")


def test_a_path_through_a_symlink_of_the_image_moves_where_the_symlink_leads(
        tmp_path: Path) -> None:
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    base = RootFS(libraries=False)
    base.add_symlink("/bin", "usr/bin")
    base.add_bytes("/etc/passwd", b"root:x:0:0::/:/bin/sh\n")
    top = RootFS(below=base, libraries=False)
    top.add_file("/bin/calico-node", tmp_path / "tool", source="go:example", mode=0o755)
    top.add_bytes("/etc/passwd", b"root:x:0:0::/:/bin/sh\n")  # as below: left out
    assert [(e.path, e.kind) for e in top.entries()] == [("/usr/bin/calico-node", "file")]
    assert top.sources() == {"go:example": ["/usr/bin/calico-node"],
                             "labkit": ["/bin", "/etc/passwd"]}
    one = RootFS(libraries=False)
    one.add_file("/bin/x", tmp_path / "tool", source="go:example")
    one.add_symlink("/bin", "usr/bin")
    assert [e.path for e in one.entries()] == ["/bin", "/usr/bin/x"]


# -- a real containerd ------------------------------------------------------------------


@dataclass
class Containerd:
    """A private containerd: its own root, state, socket, cgroup and runc root."""

    base: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return str(self.base / "containerd.sock")

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", self.address, "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)


CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{base}/opt"
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = "{base}/runtime-v1"
"""


def _why_no_containerd() -> str:
    if os.geteuid() != 0:
        return "a private containerd needs root (overlay mounts, cgroups, namespaces)"
    missing = [tool for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2")
               if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install containerd runc)"
    return ""


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    """Start a containerd of the test's own; stop it and remove all it made afterwards."""
    # Short and under /tmp: a unix socket's path must fit in 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="labkit-oci-", dir="/tmp"))
    # containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its state dir:
    # the folders this test makes there go again (if no other containerd uses them).
    made = [Path(p) for p in ("/run/containerd/s", "/run/containerd") if not Path(p).exists()]
    (base / "config.toml").write_text(CONFIG.format(base=base))
    log = (base / "containerd.log").open("wb")
    process = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Containerd(base, process)
    try:
        deadline = time.monotonic() + 30
        # Wait for the socket, not for `ctr version`: ctr waits for a socket to appear
        # rather than fail, so a containerd that died would look like a slow one.
        while not Path(running.address).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                text = (base / "containerd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"the private containerd did not start (exit {process.poll()}):\n"
                            f"{text}")
            time.sleep(0.1)
        version = running.ctr("version", timeout=30)
        assert version.returncode == 0, f"`ctr version` failed: {version.stderr}"
        yield running
    finally:
        _stop(running)
        log.close()
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _stop(running: Containerd) -> None:
    # Shims this containerd started (if a test failed mid-run) name its socket on their
    # command line: end exactly those, by pid.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if running.address.encode() in command and int(proc.name) != running.process.pid:
                os.kill(int(proc.name), signal.SIGKILL)
    running.process.terminate()
    try:
        running.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()
    base = str(running.base)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(base + "/")]
    for mount in reversed(mounts):
        subprocess.run(["umount", mount], check=False)
    for cgroup in Path("/sys/fs/cgroup").glob(f"*/{running.base.name}"):
        if not cgroup.is_symlink():
            cgroup.rmdir()
    shutil.rmtree(running.base)
    left = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if base in line]
    assert not left, f"still mounted after the private containerd stopped: {left}"


@pytest.mark.skipif(bool(_why_no_containerd()), reason=_why_no_containerd() or "-")
def test_containerd_imports_the_archive_and_runs_a_static_binary_from_it(
        containerd: Containerd, tmp_path: Path) -> None:
    (tmp_path / "pause").write_bytes(_static_program(b"a static binary ran\n"))
    root = RootFS()
    root.add_file("/pause", tmp_path / "pause", source="labkit:tests/test_oci.py", mode=0o755)
    assert [entry.path for entry in root.entries()] == ["/pause"], "static: no libraries"
    image = Image("k8s.gcr.io/pause:3.6", [Layer(root.entries(), "pause")],
                  ImageConfig(entrypoint=["/pause"], labels=root.labels()),
                  annotations=root.annotations())
    [written] = oci.write_archive(tmp_path / "pause.tar", [image])

    imported = containerd.ctr("images", "import", "--all-platforms", str(tmp_path / "pause.tar"))
    assert imported.returncode == 0, imported.stderr
    listed = containerd.ctr("images", "ls")
    assert "k8s.gcr.io/pause:3.6" in listed.stdout
    assert written.manifest_digest in listed.stdout

    private = containerd.base.name
    ran = containerd.ctr(
        "run", "--rm", "--runc-root", f"{containerd.base}/runc",
        "--fifo-dir", f"{containerd.base}/fifo", "--cgroup", f"/{private}/pause",
        "k8s.gcr.io/pause:3.6", "pause")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "a static binary ran\n", "")
    assert containerd.ctr("containers", "ls", "-q").stdout == ""
