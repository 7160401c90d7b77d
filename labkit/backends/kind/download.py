# Files the kind lab fetches from the internet: checked against a pinned sha256, kept in a cache.
"""Fetch a pinned :class:`~labkit.backends.cluster.settings.Download` once, and trust only its hash.

The Calico manifest is not committed (it is Calico's, and 250 kB of CRDs);
``manifests/calico.yaml`` commits its sha256 instead (kube-flannel.yml likewise,
in ``manifests/flannel/flannel.yaml``).  A file is used only if
its sha256 is the pinned one, whether it comes from the network or from the
cache, so a changed upstream file or a corrupted cache fails with a message
rather than building a different cluster.  :func:`pin` records the hash of
what a URL serves today: run it once, on a machine with network, and commit
the change to ``manifests/calico.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ...model.errors import LabUnavailable
from ..cluster.settings import Download

Fetch = Callable[[str, float], bytes]
"""``fetch(url, timeout) -> bytes``; replaced in tests."""

TIMEOUT = 60.0


def pin_hint(download: Download) -> str:
    """How to pin ``download``: the command, where it writes, and what to check."""
    return (f"on a machine with network access run `{download.pin_command}` (it downloads the "
            f"file, shows its sha256 and writes it into {download.file}), check the hash "
            "against a second source, and commit it")


class ChecksumMismatch(LabUnavailable):
    """A downloaded or cached file is not the one its manifest (``calico.yaml``...) pins."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$XDG_CACHE_HOME/labkit`` (``~/.cache/labkit``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labkit" / "downloads"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_url(url: str, timeout: float = TIMEOUT) -> bytes:
    """GET ``url`` (following redirects, honouring ``https_proxy``) and return the body."""
    request = urllib.request.Request(url, headers={"User-Agent": "labkit"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def _fetch(download: Download, fetch: Fetch) -> bytes:
    try:
        return fetch(download.url, TIMEOUT)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise LabUnavailable(
            f"cannot download {download.name} from {download.url} ({reason})",
            hint="the kind lab needs internet access once (then the file is cached in "
                 f"{cache_dir()}); check the network or https_proxy, or use the netns lab",
        ) from exc


def cached_path(download: Download, directory: Path | None = None) -> Path:
    """Where a pinned file lives in the cache: named by its hash, so a new pin is a new file."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", download.url.rsplit("/", 1)[-1]) or "file"
    return (directory or cache_dir()) / f"{download.sha256}-{name}"


def get(download: Download, *, fetch: Fetch = fetch_url, directory: Path | None = None,
        progress: Callable[[str], None] | None = None) -> bytes:
    """The pinned file's bytes, from the cache or else from its URL; raise if the hash differs."""
    if download.sha256 is None:
        raise LabUnavailable(
            f"{download.name} is not pinned: `{download.key}` in {download.file} is null, "
            "and the kind lab only applies files whose sha256 it knows",
            hint=pin_hint(download),
        )
    path = cached_path(download, directory)
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is not None and sha256(data) == download.sha256:
        return data
    if progress:
        progress(f"downloading {download.name} from {download.url}")
    data = _fetch(download, fetch)
    digest = sha256(data)
    if digest != download.sha256:
        raise ChecksumMismatch(
            f"{download.name} from {download.url} has sha256 {digest}, but {download.file} "
            f"pins {download.sha256} (`{download.key}`): the file changed upstream or was "
            "tampered with, so it was not used",
            hint=f"if the new file is trusted, pin it again with `{download.pin_command}`",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a truncated file under the final name.
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
    return data


def record_pin(calico_yaml: Path, key: str, digest: str) -> None:
    """Write ``digest`` as ``key`` (``manifest.sha256``) into calico.yaml, keeping its comments."""
    lines = calico_yaml.read_text(encoding="utf-8").splitlines(keepends=True)
    path = key.split(".")
    depth, indent = 0, -1
    for number, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if not stripped.strip() or stripped.startswith("#"):
            continue
        width = len(line) - len(stripped)
        if depth and width <= indent:
            break  # left the block that should have held the key
        name = stripped.split(":", 1)[0].strip()
        if name == path[depth] and width > indent:
            if depth == len(path) - 1:
                comment = " " + line[line.index("#"):].rstrip("\n") if "#" in line else ""
                if "pinned" in comment or "filled in" in comment:
                    comment = ""  # a placeholder's note, not the pin's
                lines[number] = f"{' ' * width}{name}: {digest}{comment}\n"
                calico_yaml.write_text("".join(lines), encoding="utf-8")
                return
            depth, indent = depth + 1, width
    raise LabUnavailable(f"{calico_yaml}: no `{key}` to write the sha256 into",
                         hint=f"add `{key}: null` and run the pin again")


def pin(download: Download, calico_yaml: Path, *, fetch: Fetch = fetch_url,
        directory: Path | None = None) -> str:
    """Download ``download``, record its sha256 in calico.yaml, cache it, and return the hash.

    This trusts whatever the URL serves now: compare the hash with a second
    source before committing it.
    """
    data = _fetch(download, fetch)
    digest = sha256(data)
    record_pin(calico_yaml, download.key, digest)
    pinned = Download(download.name, download.url, digest, download.key, download.file,
                      download.pin_command)
    path = cached_path(pinned, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest
