# The parts cache on disk: where it is, one folder per part and key, part.json, the lock.
"""The cache's layout::

    $LABKIT_PARTS (default $XDG_CACHE_HOME/labkit/parts, or ~/.cache/labkit/parts)
      .lock                      held by the one `labkit parts build` that may write
      logs/<name>.log            the last build of each part
      <name>/<key>/part.json     what it is, what built it, each file's sha256 and size
      <name>/<key>/<binary>...
      <name>/.building-<key>     a build under way (renamed to <key> when complete)

A part's folder appears by one rename once everything in it is written, so a folder
named by a key is always complete; whatever else is left (a build killed by SIGKILL) is
removed by the next build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .gobuild import make_writable

RECORD = "part.json"
BUILDING = ".building-"


def root() -> Path:
    """The cache's folder (it may not exist yet)."""
    if os.environ.get("LABKIT_PARTS"):
        return Path(os.environ["LABKIT_PARTS"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labkit" / "parts"


def folder(name: str, key: str) -> Path:
    return root() / name / key


def log_path(name: str) -> Path:
    return root() / "logs" / f"{name}.log"


@dataclass(frozen=True)
class FileRecord:
    """One file of a built part."""

    path: str
    """Relative to the part's folder."""
    sha256: str
    size: int


def sha256(path: Path) -> str:
    """The file's sha256 (a symlink's target's)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_files(part: Path) -> list[FileRecord]:
    """Every file in a part's folder but part.json, sorted by path."""
    return [FileRecord(path.relative_to(part).as_posix(), sha256(path), path.stat().st_size)
            for path in sorted(part.rglob("*"))
            if path.is_file() and path.name != RECORD]


def read_record(part: Path) -> dict[str, object] | None:
    """A part folder's part.json, or None if there is none (or it is unreadable)."""
    try:
        record = json.loads((part / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def damage(part: Path, record: dict[str, object]) -> list[str]:
    """What is wrong with a built part: ``kubelet: missing``, ``kubectl: sha256 differs``."""
    problems = []
    files = record.get("files")
    for entry in files if isinstance(files, list) else []:
        path = part / str(entry["path"])
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the one recorded")
    return problems


def install(building: Path, final: Path) -> None:
    """Put a complete build in place by one rename, replacing a damaged one if any."""
    if final.exists():
        old = final.with_name(f"{BUILDING}old-{final.name}")
        remove(old)
        final.rename(old)
        remove(old)
    building.rename(final)


def remove(tree: Path) -> None:
    """Remove a folder (and its read-only files) if it exists."""
    if tree.is_symlink() or tree.is_file():
        tree.unlink()
    elif tree.exists():
        make_writable(tree)
        shutil.rmtree(tree)


def remove_leftovers() -> None:
    """Remove what killed builds left: half-built folders and work folders. Called with
    the lock held, when no other build can be writing them."""
    base = root()
    remove(base / ".work")
    for part in base.iterdir() if base.is_dir() else ():
        if part.is_dir():
            for left in part.glob(f"{BUILDING}*"):
                remove(left)


@contextlib.contextmanager
def locked(waiting: Callable[[], None]) -> Iterator[None]:
    """Hold the cache's lock: one build writes at a time; ``waiting`` is called first if
    another build holds it."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
