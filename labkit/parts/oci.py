# An OCI image archive writer: layers, config, manifest, index; the tar `ctr images import` reads.
"""Write OCI image archives without Docker, a registry or any library.

An archive is an `OCI image layout <https://github.com/opencontainers/image-spec>`_ in one
tar: ``oci-layout``, ``index.json`` and ``blobs/sha256/<digest>``.  ``ctr -n k8s.io images
import ARCHIVE`` stores each image under the name in its index entry's
``io.containerd.image.name`` annotation, so the manifests of the real cluster find
``k8s.gcr.io/pause:3.6`` or ``docker.io/calico/node:v3.23.2`` without pulling anything.

Everything is deterministic: entries sorted, every mtime 0, owners as given (root by
default), gzip without a name or a time, JSON with sorted keys.  The same inputs give the
same bytes, hence the same image digest, build after build.

For ``pause``::

    image = Image("k8s.gcr.io/pause:3.6",
                  [Layer([Entry.file("/pause", Path("pause"), mode=0o755)])],
                  ImageConfig(entrypoint=["/pause"]))
    write_archive(Path("pause.tar"), [image])
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
LABEL_LIMIT = 4096
"""containerd's limit on a label's key plus value, in bytes: ``ctr run`` and the CRI plugin
copy an image's labels onto its containers, and refuse to create one with a longer label."""
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` Docker gives an image that sets none."""

_CHUNK = 1 << 20
# Level 6 (gzip's own default) is about twice as fast as Python's 9 on 100 MB Go binaries
# and only a few percent larger.
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class Entry:
    """One file, directory or symbolic link of a layer.

    ``path`` is absolute in the image (``/usr/sbin/ip``).  A file's bytes are ``data``, or
    the content of ``source`` (a path on this machine, read when the archive is written).
    """

    path: str
    kind: Literal["file", "dir", "symlink"]
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    target: str = ""
    uid: int = 0
    gid: int = 0

    @classmethod
    def file(
        cls, path: str, source: Path | None = None, *, data: bytes | None = None,
        mode: int = 0o644, uid: int = 0, gid: int = 0,
    ) -> Entry:
        """A regular file, from ``source`` on disk or from ``data``."""
        if (source is None) == (data is None):
            raise ValueError(f"{path}: give a file either a source or data, not both or none")
        return cls(path, "file", mode, source, data, "", uid, gid)

    @classmethod
    def directory(cls, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
        """A directory (parents of every entry are added by :class:`Layer` anyway)."""
        return cls(path, "dir", mode, uid=uid, gid=gid)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        """A symbolic link to ``target``, kept as written (relative or absolute)."""
        return cls(path, "symlink", 0o777, target=target)

    @property
    def name(self) -> str:
        """The entry's name inside the layer's tar (no leading slash)."""
        return _tar_name(self.path)


@dataclass(frozen=True)
class Layer:
    """A layer's entries (any order: they are sorted) and a line for the image history."""

    entries: Sequence[Entry]
    comment: str = ""

    def sorted_entries(self) -> list[Entry]:
        """The entries with every missing parent directory added (0755), sorted by path.

        Raises :class:`ValueError` on two entries for one path, or an entry below a symlink.
        """
        by_name: dict[str, Entry] = {}
        for entry in self.entries:
            name = entry.name
            if not name:
                raise ValueError(f"{entry.path!r}: the root cannot be an entry")
            if name in by_name and by_name[name] != entry:
                raise ValueError(f"two different entries for {entry.path}")
            by_name[name] = entry
        for name in list(by_name):
            parent = name.rpartition("/")[0]
            while parent:
                held = by_name.get(parent)
                if held is None:
                    by_name[parent] = Entry.directory("/" + parent)
                elif held.kind != "dir":
                    raise ValueError(f"/{name} is below /{parent}, which is a {held.kind}")
                parent = parent.rpartition("/")[0]
        return [by_name[name] for name in sorted(by_name)]


@dataclass(frozen=True)
class ImageConfig:
    """What a container of the image runs, and the labels that say what it was built from."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = (DEFAULT_PATH,)
    working_dir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str | None = None
    """An RFC 3339 time for ``created``, or ``None`` to leave it out (Docker shows N/A)."""
    architecture: str = "amd64"
    os: str = "linux"


@dataclass(frozen=True)
class Image:
    """An image: its full name (``docker.io/calico/node:v3.23.2``), layers and config."""

    name: str
    layers: Sequence[Layer]
    config: ImageConfig = field(default_factory=ImageConfig)
    annotations: Mapping[str, str] = field(default_factory=dict)
    """The manifest's annotations: unlike labels, not copied to containers, no size limit."""


@dataclass(frozen=True)
class Written:
    """What :func:`write_archive` wrote for one image."""

    name: str
    """The full name, as ``ctr images ls`` will show it."""
    manifest_digest: str
    config_digest: str
    """The image ID (``crictl images`` shows its first 13 characters)."""
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    size: int
    """Compressed size of the layers plus config and manifest: what a pull would fetch."""


def full_name(reference: str) -> str:
    """The fully qualified name containerd stores an image under.

    >>> full_name("burlyluo/nettool")
    'docker.io/burlyluo/nettool:latest'
    >>> full_name("busybox:1.36")
    'docker.io/library/busybox:1.36'
    >>> full_name("k8s.gcr.io/pause:3.6")
    'k8s.gcr.io/pause:3.6'
    """
    if "@" in reference:
        raise ValueError(f"{reference!r}: name images by tag, not by digest")
    first, _, rest = reference.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = "docker.io", reference
    else:
        domain, path = first, rest
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if ":" not in path.rpartition("/")[2]:
        path += ":latest"
    return f"{domain}/{path}"


def write_archive(path: Path, images: Sequence[Image]) -> list[Written]:
    """Write ``images`` as one OCI archive at ``path`` (replaced atomically).

    Returns, per image, its digests and size.  Nothing is left behind on failure.
    """
    path = Path(path)
    names = [full_name(image.name) for image in images]
    if len(set(names)) != len(names):
        raise ValueError(f"an archive names each image once: {names}")
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=path.parent) as scratch:
        blobs: dict[str, Path] = {}
        written = [_write_image(image, name, Path(scratch), blobs) for image, name
                   in zip(images, names, strict=True)]
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": one.manifest_digest,
                    "size": blobs[one.manifest_digest].stat().st_size,
                    "annotations": {
                        "io.containerd.image.name": one.name,
                        "org.opencontainers.image.ref.name": one.name.rpartition(":")[2],
                    },
                    "platform": {"architecture": image.config.architecture,
                                 "os": image.config.os},
                }
                for image, one in zip(images, written, strict=True)
            ],
        }
        partial = Path(scratch) / "archive.tar"
        with partial.open("wb") as out, tarfile.open(fileobj=out, mode="w",
                                                     format=tarfile.PAX_FORMAT) as tar:
            for directory in ("blobs", "blobs/sha256"):
                tar.addfile(_info(directory + "/", tarfile.DIRTYPE, 0o755))
            for digest in sorted(blobs):
                blob = blobs[digest]
                info = _info("blobs/sha256/" + digest.removeprefix("sha256:"),
                             tarfile.REGTYPE, 0o644, blob.stat().st_size)
                with blob.open("rb") as data:
                    tar.addfile(info, data)
            for name, content in (("index.json", _json(index)),
                                  ("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))):
                tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(content)),
                            io.BytesIO(content))
        os.replace(partial, path)
    return written


def _write_image(image: Image, name: str, scratch: Path, blobs: dict[str, Path]) -> Written:
    for label, text in image.config.labels.items():
        if len(label.encode()) + len(text.encode()) > LABEL_LIMIT:
            raise ValueError(
                f"{name}: label {label} is {len(label.encode()) + len(text.encode())} bytes "
                f"with its key; containerd copies image labels onto containers and refuses "
                f"one over {LABEL_LIMIT} (put long records in the image's annotations)"
            )
    layers: list[tuple[str, int, str]] = [_write_layer(layer, scratch, blobs)
                                          for layer in image.layers]
    config = image.config
    runtime: dict[str, object] = {"Env": list(config.env)}
    for key, value in (("Entrypoint", list(config.entrypoint)), ("Cmd", list(config.cmd)),
                       ("WorkingDir", config.working_dir), ("User", config.user),
                       ("Labels", dict(config.labels))):
        if value:
            runtime[key] = value
    document: dict[str, object] = {
        "architecture": config.architecture,
        "os": config.os,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, _, diff_id in layers]},
        "history": [{"created_by": layer.comment or "labkit parts", **_created(config)}
                    for layer in image.layers],
        **_created(config),
    }
    config_blob = _json(document)
    config_digest = _store(config_blob, scratch, blobs)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest,
                   "size": len(config_blob)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest, "size": size}
                   for digest, size, _ in layers],
    }
    if image.annotations:
        manifest["annotations"] = dict(image.annotations)
    manifest_blob = _json(manifest)
    manifest_digest = _store(manifest_blob, scratch, blobs)
    return Written(
        name=name,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layer_digests=tuple(digest for digest, _, _ in layers),
        diff_ids=tuple(diff_id for _, _, diff_id in layers),
        size=sum(size for _, size, _ in layers) + len(config_blob) + len(manifest_blob),
    )


def _created(config: ImageConfig) -> dict[str, str]:
    return {"created": config.created} if config.created else {}


def _write_layer(layer: Layer, scratch: Path, blobs: dict[str, Path]) -> tuple[str, int, str]:
    """Write one layer as a blob; returns its digest, compressed size and diff_id."""
    handle, name = tempfile.mkstemp(prefix="layer-", dir=scratch)
    compressed_file = os.fdopen(handle, "wb")
    with compressed_file:
        compressed = _Hashing(compressed_file.write)
        # filename="" and mtime=0 keep the gzip header free of anything that changes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed,
                           compresslevel=_GZIP_LEVEL, mtime=0) as gz:
            plain = _Hashing(gz.write)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in layer.sorted_entries():
                    _add_entry(tar, entry)
    digest = "sha256:" + compressed.sha256.hexdigest()
    blob = scratch / digest.removeprefix("sha256:")
    os.replace(name, blob)
    blobs[digest] = blob
    return digest, compressed.size, "sha256:" + plain.sha256.hexdigest()


def _add_entry(tar: tarfile.TarFile, entry: Entry) -> None:
    if entry.kind == "dir":
        tar.addfile(_info(entry.name, tarfile.DIRTYPE, entry.mode, 0, entry.uid, entry.gid))
    elif entry.kind == "symlink":
        info = _info(entry.name, tarfile.SYMTYPE, 0o777)
        info.linkname = entry.target
        tar.addfile(info)
    elif entry.data is not None:
        info = _info(entry.name, tarfile.REGTYPE, entry.mode, len(entry.data), entry.uid,
                     entry.gid)
        tar.addfile(info, io.BytesIO(entry.data))
    else:
        assert entry.source is not None
        with entry.source.open("rb") as data:
            size = os.fstat(data.fileno()).st_size
            info = _info(entry.name, tarfile.REGTYPE, entry.mode, size, entry.uid, entry.gid)
            tar.addfile(info, data)


def _info(name: str, kind: bytes, mode: int, size: int = 0, uid: int = 0,
          gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _tar_name(path: str) -> str:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r}: a path in an image cannot contain '..'")
    return "/".join(parts)


def _store(blob: bytes, scratch: Path, blobs: dict[str, Path]) -> str:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    target = scratch / digest.removeprefix("sha256:")
    target.write_bytes(blob)
    blobs[digest] = target
    return digest


def _json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what it passes on."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.inner = write
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self.size += len(data)
        self.inner(data)
        return len(data)

