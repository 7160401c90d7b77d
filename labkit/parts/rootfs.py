# A container's root filesystem gathered from built binaries and this machine's Debian packages.
"""Collect what goes into an image, and where each file came from.

A :class:`RootFS` takes files built elsewhere (a path on disk, a path in the image, a
source such as ``go:github.com/projectcalico/calico@v1.11.0-…``), the files of Debian
packages installed here (what ``dpkg -L`` lists, without documentation), Debian's
alternatives symlinks (``iptables`` → ``iptables-nft``) and a minimal ``/etc``.  When
its entries are taken, every ELF file in it brings the shared libraries ``ldd`` says it
needs, with the dynamic loader and the symlinks on the way (``/lib64`` →
``usr/lib64``), each labelled with the Debian package that owns it.

Paths taken from this machine keep its layout: ``/sbin/ip`` is recorded as the symlink
``/sbin`` → ``usr/sbin`` plus ``/usr/sbin/ip`` → ``/bin/ip`` plus the file
``/usr/bin/ip``, so a program finds its files in the image where it finds them here.

For ``calico/node``, a Debian layer shared with other images, then the binary::

    base = RootFS()
    for package in ("iptables", "ipset", "iproute2", "conntrack", "runit"):
        base.add_debian_package(package)
    base.add_alternative("iptables")
    base.add_base_files()
    top = RootFS(below=base)
    top.add_file("/bin/calico-node", Path("calico-node"), source="go:…", mode=0o755)
    image = Image("docker.io/calico/node:v3.23.2",
                  [Layer(base.entries()), Layer(top.entries())],
                  ImageConfig(entrypoint=["start_runit"], labels=top.labels()),
                  annotations=top.annotations())
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import PartsError
from .oci import Entry

SKIPPED = (
    "/usr/share/doc/", "/usr/share/doc-base/", "/usr/share/man/", "/usr/share/info/",
    "/usr/share/lintian/", "/usr/share/bug/", "/usr/share/bash-completion/",
    "/usr/share/zsh/", "/usr/share/fish/", "/usr/share/locale/", "/usr/share/menu/",
)
"""What :meth:`RootFS.add_debian_package` leaves out: documentation, shell completions,
translations."""

BASE_FILES = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "/etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\n"
                          "hosts: files dns\nnetworks: files\nprotocols: files\n"
                          "services: files\nethers: files\nrpc: files\n",
}
"""The ``/etc`` of :meth:`RootFS.add_base_files`: root and nobody, files-only lookups."""

HOST = "host"
"""The source of a path on this machine that no Debian package owns: the merged-``/usr``
symlinks (``/lib64`` → ``usr/lib64``)."""


class RootFSError(PartsError):
    """A root filesystem cannot be gathered: a package not installed, a library ``ldd``
    cannot find, two different files for one path."""


@dataclass(frozen=True)
class _Item:
    entry: Entry
    source: str | None
    """Where the entry came from; ``None`` until the owning Debian package is looked up."""
    host_path: str = ""
    """The path on this machine it was copied from, as it was named there."""


class RootFS:
    """The files, directories and symlinks of an image, each with where it came from."""

    def __init__(self, *, below: RootFS | None = None, libraries: bool = True) -> None:
        """``below``: the root filesystem of the layers under this one, for an image of
        several layers (a Debian base shared by images, then each image's binaries): paths
        through its symlinks are followed, what it holds already is left out, and
        :meth:`sources` describes both.  ``libraries``: add the shared libraries each ELF
        file needs (by ``ldd``) when the entries are taken.
        """
        self._items: dict[str, _Item] = {}
        self._versions: dict[str, str] = {}
        self._below = below
        self._libraries = libraries
        self._scanned: set[str] = set()

    # -- what goes in -------------------------------------------------------------------

    def add_file(self, path: str, file: Path, *, source: str, mode: int | None = None) -> None:
        """Put the file ``file`` (on this machine) at ``path`` in the image.

        ``source`` says where it came from (``go:MODULE@VERSION#main``); ``mode`` defaults
        to the file's own.  A ``path`` through a symlink of the image (``/bin/x``) is
        moved where the symlink leads (``/usr/bin/x``) when the entries are taken.
        """
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise RootFSError(f"{file} is not a regular file (for {path} in the image)")
        chosen = stat.S_IMODE(info.st_mode) if mode is None else mode
        self._put(_Item(Entry.file(path, file.absolute(), mode=chosen), source))

    def add_bytes(self, path: str, data: bytes, *, source: str = "labkit",
                  mode: int = 0o644) -> None:
        """Put ``data`` at ``path`` in the image (a configuration file labkit writes)."""
        self._put(_Item(Entry.file(path, data=data, mode=mode), source))

    def add_directory(self, path: str, *, mode: int = 0o755, source: str = "labkit") -> None:
        """An (empty) directory; parents of every entry are made 0755 without asking."""
        self._put(_Item(Entry.directory(path, mode=mode), source))

    def add_symlink(self, path: str, target: str, *, source: str = "labkit") -> None:
        """A symlink at ``path`` to ``target`` (kept as written)."""
        self._put(_Item(Entry.symlink(path, target), source))

    def add_host_path(self, path: str, *, source: str | None = None) -> None:
        """Copy ``path`` from this machine: the symlinks on the way to it, then the file,
        directory (empty) or symlink chain itself, each at the same place in the image.

        ``source`` ``None`` looks up the Debian package owning each piece (``dpkg -S``)
        when the entries are taken.
        """
        for host, entry in self._walk(path):
            self._put(_Item(entry, source, host))

    def add_debian_package(self, package: str, *,
                           skip: Sequence[str] = SKIPPED) -> str:
        """Every file the installed Debian ``package`` holds (``dpkg -L``), but those under
        ``skip``; returns the source recorded for them, ``debian:PACKAGE=VERSION``."""
        source = f"debian:{package}={self._version(package)}"
        listed = _run(["dpkg-query", "-L", package], f"the files of Debian package {package}")
        for line in listed.splitlines():
            if not line.startswith("/") or line == "/." or line.startswith(tuple(skip)):
                continue
            if not os.path.lexists(line):
                continue  # a file dpkg lists but a local admin removed
            if os.path.isdir(line):
                continue  # directories (and /bin → usr/bin) come as parents of their files
            for host, entry in self._walk(line):
                self._put(_Item(entry, source if host == line else None, host))
        return source

    def add_alternative(self, name: str, choice: str | None = None) -> None:
        """Debian's alternative ``name`` with its slaves, as ``update-alternatives`` makes
        them: ``/usr/sbin/iptables`` → ``/etc/alternatives/iptables`` → ``choice`` (this
        machine's current choice by default, e.g. ``/usr/sbin/iptables-nft``).

        The alternatives' targets must be in the image too (add their package).
        """
        query = _run(["update-alternatives", "--query", name], f"the alternative {name}")
        blocks = query.split("\n\n")
        head = _fields(blocks[0])
        chosen = choice or head.get("Value", "")
        for block in blocks[1:]:
            fields = _fields(block)
            if fields.get("Alternative") == chosen:
                break
        else:
            raise RootFSError(f"{chosen!r} is not one of the alternatives for {name}")
        links = {name: (head["Link"], chosen)}
        slave_links = dict(_pairs(head.get("Slaves", "")))
        for slave, target in _pairs(fields.get("Slaves", "")):
            links[slave] = (slave_links[slave], target)
        source = f"alternatives:{name}={chosen}"
        for alternative, (link, target) in sorted(links.items()):
            self.add_symlink(self._canonical(link), f"/etc/alternatives/{alternative}",
                             source=source)
            self.add_symlink(f"/etc/alternatives/{alternative}", target, source=source)

    def add_base_files(self) -> None:
        """``/etc/passwd``, ``/etc/group``, ``/etc/nsswitch.conf``, ``/tmp`` (1777),
        ``/root`` (0700) and Debian's merged-``/usr`` symlinks (``/bin`` → ``usr/bin``…)."""
        for path, text in BASE_FILES.items():
            self.add_bytes(path, text.encode())
        self.add_directory("/tmp", mode=0o1777)
        self.add_directory("/root", mode=0o700)
        for top in ("bin", "sbin", "lib", "lib64"):
            if os.path.islink(f"/{top}"):
                self.add_host_path(f"/{top}")

    # -- what comes out -----------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every entry of this layer, sorted by path.

        First each ELF file brings the shared libraries and loader ``ldd`` names; a path
        through a symlink of the image (``/bin/x`` with ``/bin`` → ``usr/bin``) moves to
        where the symlink leads, since a directory ``/bin`` in a layer would hide the link;
        and what ``below`` holds already, the same, is left out.
        """
        self._finish()
        lower = self._below._items if self._below else {}
        return [item.entry for path, item in sorted(self._items.items())
                if path not in lower or lower[path].entry != item.entry]

    def sources(self) -> dict[str, list[str]]:
        """Each source with the files and symlinks that came from it (directories left out),
        those of ``below`` included: what the whole image holds."""
        self._finish()
        by_source: dict[str, list[str]] = {}
        if self._below is not None:
            for source, paths in self._below.sources().items():
                by_source[source] = list(paths)
        for path in sorted(self._items):
            item = self._items[path]
            if item.entry.kind != "dir":
                listed = by_source.setdefault(item.source or HOST, [])
                if path not in listed:
                    listed.append(path)
        return {source: sorted(paths) for source, paths in sorted(by_source.items())}

    def labels(self) -> dict[str, str]:
        """Short labels for the image config: ``labkit.parts.sources``, each source with
        how many files came from it (compact JSON), and ``labkit.parts.debian``, the Debian
        packages as ``name=version`` joined by spaces.

        Short because containerd copies an image's labels onto each of its containers
        (``ctr run`` and the CRI plugin both) and refuses a label over 4096 bytes; the
        path of every file is in :meth:`annotations`.
        """
        sources = self.sources()
        counts = {source: len(paths) for source, paths in sources.items()}
        debian = sorted(s.removeprefix("debian:") for s in sources if s.startswith("debian:"))
        labels = {"labkit.parts.sources": json.dumps(counts, separators=(",", ":"))}
        if debian:
            labels["labkit.parts.debian"] = " ".join(debian)
        return labels

    def annotations(self) -> dict[str, str]:
        """The manifest annotation ``labkit.parts.files``: :meth:`sources` as compact JSON,
        every file and symlink under the source it came from (no size limit there)."""
        return {"labkit.parts.files": json.dumps(self.sources(), separators=(",", ":"))}

    # -- inside -------------------------------------------------------------------------

    def _finish(self) -> None:
        if self._libraries:
            self._add_libraries()
        self._look_up_owners()
        links = {path: item.entry.target for root in (self, self._below) if root is not None
                 for path, item in root._items.items() if item.entry.kind == "symlink"}
        for key, item in list(self._items.items()):
            moved = os.path.join(_through(os.path.dirname(key), links), os.path.basename(key))
            if moved != key:
                del self._items[key]
                self._put(_Item(replace(item.entry, path=moved), item.source, item.host_path))

    def _put(self, item: _Item) -> None:
        entry = item.entry
        key = "/" + entry.name
        held = self._items.get(key)
        if held is not None and held.entry != entry:
            raise RootFSError(
                f"two different entries for {key}: a {held.entry.kind} from "
                f"{held.source or held.host_path} and a {entry.kind} from "
                f"{item.source or item.host_path}"
            )
        if held is None or (held.source is None and item.source is not None):
            self._items[key] = item

    def _canonical(self, path: str) -> str:
        """``path`` with this machine's directory symlinks resolved (``/sbin/x`` →
        ``/usr/sbin/x``), recording those symlinks in the image."""
        walked = list(self._walk_dirs(os.path.dirname(path)))
        for host, entry in walked[:-1]:
            self._put(_Item(entry, None, host))
        return os.path.join(walked[-1][1].path, os.path.basename(path))

    def _walk(self, path: str) -> list[tuple[str, Entry]]:
        """The entries that copy ``path`` from this machine: symlinks on the way, the
        symlink chain at the end, and the file (or empty directory) it ends at."""
        found: list[tuple[str, Entry]] = []
        seen: set[str] = set()
        current = path
        while True:
            if current in seen or len(seen) > 40:
                raise RootFSError(f"{path}: too many levels of symbolic links")
            seen.add(current)
            walked = list(self._walk_dirs(os.path.dirname(current)))
            found.extend(walked[:-1])
            place = os.path.join(walked[-1][1].path, os.path.basename(current))
            info = os.lstat(place)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(place)
                found.append((current, Entry.symlink(place, target)))
                current = os.path.normpath(os.path.join(os.path.dirname(place), target))
            elif stat.S_ISREG(info.st_mode):
                found.append((current, Entry.file(place, Path(place),
                                                  mode=stat.S_IMODE(info.st_mode))))
                return found
            elif stat.S_ISDIR(info.st_mode):
                found.append((current, Entry.directory(place, mode=stat.S_IMODE(info.st_mode))))
                return found
            else:
                raise RootFSError(f"{place} is neither a file, a directory nor a symlink")

    def _walk_dirs(self, directory: str) -> Iterable[tuple[str, Entry]]:
        """The symlinks met resolving ``directory`` on this machine, then (last) the
        resolved directory itself."""
        resolved = "/"
        for part in [p for p in directory.split("/") if p]:
            candidate = os.path.join(resolved, part)
            if os.path.islink(candidate):
                target = os.readlink(candidate)
                yield candidate, Entry.symlink(candidate, target)
                real = os.path.normpath(os.path.join(resolved, target))
                *links, last = list(self._walk_dirs(real))
                yield from links
                resolved = last[1].path
            elif part == "..":
                resolved = os.path.dirname(resolved)
            else:
                resolved = candidate
        yield directory, Entry.directory(resolved)

    def _add_libraries(self) -> None:
        done = self._scanned
        while True:
            elves = [item.entry.source for item in self._items.values()
                     if item.entry.kind == "file" and item.entry.source is not None
                     and str(item.entry.source) not in done and _is_elf(item.entry.source)]
            if not elves:
                return
            for elf in elves:
                done.add(str(elf))
                for library in _needed(elf):
                    self.add_host_path(library)

    def _look_up_owners(self) -> None:
        for key, item in list(self._items.items()):
            if item.source is None and item.entry.kind == "symlink" and os.path.isdir(key):
                # A directory symlink (/lib → usr/lib) is this machine's merged-/usr layout;
                # dpkg knows /lib as a directory of many packages, so it is not asked.
                self._items[key] = _Item(item.entry, HOST, item.host_path)
        unknown = sorted({item.host_path for item in self._items.values()
                          if item.source is None and item.host_path})
        if not unknown:
            return
        owners = _owners(sorted({alias for path in unknown for alias in _aliases(path)}))
        for key, item in list(self._items.items()):
            if item.source is None:
                package = next((owners[alias] for path in (item.host_path, key)
                                for alias in _aliases(path) if alias in owners), None)
                source = f"debian:{package}={self._version(package)}" if package else HOST
                self._items[key] = _Item(item.entry, source, item.host_path)

    def _version(self, package: str) -> str:
        if package not in self._versions:
            shown = _run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", package],
                         f"the version of Debian package {package}")
            status, _, version = shown.partition(" ")
            if status != "installed":
                raise RootFSError(f"Debian package {package} is not installed "
                                  f"(apt-get install {package})")
            self._versions[package] = version
        return self._versions[package]


def _through(directory: str, links: dict[str, str], depth: int = 0) -> str:
    """``directory`` with the image's symlinks (``links``: path → target) followed."""
    resolved = "/"
    for part in directory.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        if candidate in links:
            if depth > 40:
                raise RootFSError(f"{directory}: too many levels of symbolic links in the image")
            candidate = _through(os.path.join(resolved, links[candidate]), links, depth + 1)
        resolved = candidate
    return resolved


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


_LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?$")


def _needed(elf: Path) -> list[str]:
    """The absolute paths of the shared libraries (and loader) ``elf`` loads, by ``ldd``."""
    done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env={},
                          check=False)
    if "not a dynamic executable" in done.stderr + done.stdout or (
            "statically linked" in done.stdout):
        return []
    if done.returncode != 0:
        raise RootFSError(f"`ldd {elf}` exited with {done.returncode}: {done.stderr.strip()}")
    found: list[str] = []
    for line in done.stdout.splitlines():
        match = _LDD_LINE.match(line)
        if match is None:
            continue
        name, where = match.groups()
        if where == "not found":
            raise RootFSError(f"{elf} needs {name}, which is not installed here")
        if where.startswith("/"):
            found.append(where)
    return found


def _aliases(path: str) -> list[str]:
    """``path`` and its other name under merged ``/usr``: dpkg knows each file by the name
    its package used (``/lib/…/libc.so.6`` but ``/usr/lib/…/libatm.so.1``)."""
    for top in _MERGED:
        if path.startswith(f"/usr/{top}/"):
            return [path, path.removeprefix("/usr")]
        if path.startswith(f"/{top}/"):
            return [path, "/usr" + path]
    return [path]


_MERGED = ("bin", "sbin", "lib", "lib64")


def _owners(paths: Sequence[str]) -> dict[str, str]:
    """The Debian package owning each path that one owns (``dpkg-query -S``)."""
    owners: dict[str, str] = {}
    # dpkg-query exits 1 when one path is owned by nobody; it still lists the others.
    done = subprocess.run(["dpkg-query", "-S", *paths], capture_output=True, text=True,
                          check=False)
    for line in done.stdout.splitlines():
        packages, _, path = line.partition(": ")
        if path.startswith("/") and not line.startswith("diversion by"):
            # "libc6:amd64, libc6-dev:amd64: /path": the first is as good as any.
            owners[path] = packages.split(",")[0].strip().split(":")[0]
    return owners


def _run(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise RootFSError(f"cannot read {what}: `{command[0]}` is not installed") from error
    if done.returncode != 0:
        raise RootFSError(f"cannot read {what}: `{' '.join(command)}` exited with "
                          f"{done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _fields(block: str) -> dict[str, str]:
    """``update-alternatives --query``'s ``Key: value`` lines (indented ones continue)."""
    fields: dict[str, str] = {}
    key = ""
    for line in block.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _pairs(slaves: str) -> list[tuple[str, str]]:
    return [(name, path) for name, _, path in
            (line.strip().partition(" ") for line in slaves.splitlines() if line.strip())]
