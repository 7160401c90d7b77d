# The cache: what a chapter's outputs depend on, and which recordings this checkout made.
"""A chapter whose key is unchanged, and whose transcript this checkout recorded, is
replayed instead of run."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model.version import __version__
from . import snippets
from .transcript import Transcript

# What each input of a chapter's key is, in the words of a build's log.
INPUTS = {
    "snippets": "the chapter's snippets (code or options)",
    "manifests": "the lab's manifests",
    "code": "labkit's source",
    "labkit": "labkit's version",
    "lab": "the lab",
    "labs": "the labs the chapter runs on (front matter lab/labs)",
    "fresh_lab": "the chapter's fresh_lab setting",
    "real": "its recording on the real cluster (which the replica follows and borrows from)",
}


# labkit's own files that cannot change what any chapter prints: the command line (the
# benchmark is outside the package); and the other labs' backends (the real clusters'
# shared code and the parts are no part of the replica).
NOT_IN_KEY = ("cli.py",)
OTHER_BACKEND = {
    "netns": ("backends/kind/", "backends/native/", "backends/cluster/", "parts/"),
    "kind": ("backends/netns/", "backends/native/", "parts/"),
    "native": ("backends/netns/", "backends/kind/"),
}


def code_fingerprint(lab: str = "netns") -> str:
    """Hash of labkit's source that can change what a chapter run on ``lab`` prints: all of
    it but :data:`NOT_IN_KEY` and the other labs' backends (rendering is in it)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    other = OTHER_BACKEND.get(lab, ())
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name in NOT_IN_KEY or name.startswith(other):
            continue
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key_inputs(chapter: snippets.Chapter, lab: str, manifests: str,
               code: str, real: str = "") -> dict[str, Any]:
    """Everything that can change a chapter's outputs; prose and line numbers are not in it.

    ``lab`` is the backend; ``manifests`` the fingerprint of every lab the chapter uses
    (:func:`manifests_fingerprint`); ``real`` the sha256 of the chapter's recording on the
    real cluster, for the replica (empty if there is none).
    """
    snippet_material = [[s.code, sorted(s.options.items())] for s in chapter.snippets]
    return {
        "snippets": sha256_of(snippet_material),
        "manifests": manifests,
        "code": code,
        "labkit": __version__,
        "lab": lab,
        "labs": list(chapter.labs),
        "fresh_lab": bool(chapter.meta.get("fresh_lab")),
        "real": real,
    }


def chapter_key(inputs: dict[str, Any]) -> str:
    """The hash of :func:`key_inputs`: equal keys mean the outputs need not be printed again."""
    return sha256_of(inputs)


def sha256_of(material: Any) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def changed_inputs(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a transcript's key inputs and this build's, in a reader's words."""
    if not recorded:
        return ["the transcript does not say what it was recorded from"]
    return [INPUTS.get(name, name) for name in now if recorded.get(name) != now[name]]


def _read_json(path: Path) -> Any:
    """What ``path`` holds, None if it is missing or not JSON (a memo is then empty)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any, **layout: Any) -> None:
    """Write ``data`` to ``path`` all at once: a reader, or a build killed meanwhile, sees
    the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, **layout), encoding="utf-8")
    os.replace(tmp, path)


class Runs:
    """This checkout's record of the transcripts it wrote itself (``.labkit/runs.json``).

    A fresh clone has the committed transcripts but has run nothing: its first
    build runs every chapter live.  Only outputs this checkout printed count as
    a cache.
    """

    def __init__(self, state: Path) -> None:
        self.path = state / "runs.json"
        data = _read_json(self.path)
        self.data: dict[str, str] = data if isinstance(data, dict) else {}

    def recorded(self, transcript: Transcript) -> bool:
        return self.data.get(transcript.chapter) == transcript.checksum

    def remember(self, transcript: Transcript) -> None:
        # Chapters run in child processes (perhaps several at once): each adds its own line
        # to what is on disk, under a lock, rather than writing back an old copy.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_disk = _read_json(self.path)
            if isinstance(on_disk, dict):
                self.data = on_disk
            self.data[transcript.chapter] = transcript.checksum
            _write_json(self.path, self.data, indent=1, sort_keys=True)


class ManifestsMemo:
    """Each lab's manifests fingerprint, remembered by the bytes of the lab's files and
    labkit's code (``.labkit/manifests.json``).

    Reading and checking the manifests means importing the pydantic schema: most of what
    labkit added to a rebuild in which nothing changed.  The same bytes checked by the same
    code give the same fingerprint (or the same error, which is never remembered).
    """

    def __init__(self, state: Path, code: str) -> None:
        self.path = state / "manifests.json"
        self.code = code
        data = _read_json(self.path)
        self.data: dict[str, list[str]] = data if isinstance(data, dict) else {}

    def fingerprint(self, folder: Path, compute: Callable[[], str]) -> str:
        """``folder``'s fingerprint: remembered if its files are as they were, else
        ``compute()`` (which raises if they are wrong)."""
        digest = hashlib.sha256(self.code.encode())
        for path in sorted(folder.iterdir()):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        files, where = digest.hexdigest(), str(folder.resolve())
        remembered = self.data.get(where)
        if remembered and remembered[0] == files:
            return remembered[1]
        value = compute()
        self.data[where] = [files, value]
        with contextlib.suppress(OSError):  # a read-only checkout only loses the memo
            _write_json(self.path, self.data, indent=1, sort_keys=True)
        return value


class PageMemo:
    """The Markdown of each chapter's last cached page, by everything it was made from
    (``.labkit/pages/``).

    A cached page is a replay: the chapter's snippets run again against its transcript,
    and the page is rendered from what they print.  Given the same chapter text, the same
    transcript file (recorded by this checkout) and the same key (labkit's code, the
    manifests, the lab), it comes out the same, so a rebuild takes it from here instead of
    starting a process for it.  Only cached pages without errors are remembered.
    """

    def __init__(self, state: Path) -> None:
        self.directory = state / "pages"

    def key(self, chapter: snippets.Chapter, transcript: Path, recorded: str | None,
            chapter_key: str) -> str:
        """What the page depends on; ``recorded`` is this checkout's checksum of the
        transcript (:class:`Runs`), None if it did not record it.  (Not ``--keep-going``:
        a page without errors is the same either way, and no other is remembered.)"""
        try:
            transcript_bytes = hashlib.sha256(transcript.read_bytes()).hexdigest()
        except OSError:
            transcript_bytes = ""
        return sha256_of({"text": hashlib.sha256(chapter.text.encode()).hexdigest(),
                          "path": chapter.path, "transcript": transcript_bytes,
                          "recorded": recorded, "key": chapter_key})

    def _file(self, chapter: snippets.Chapter) -> Path:
        return self.directory / (Path(chapter.path).stem + ".json")

    def get(self, chapter: snippets.Chapter, key: str) -> str | None:
        """The page's Markdown if it was made from exactly ``key``."""
        data = _read_json(self._file(chapter))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        markdown = data.get("markdown")
        return markdown if isinstance(markdown, str) else None

    def put(self, chapter: snippets.Chapter, key: str, markdown: str) -> None:
        with contextlib.suppress(OSError):  # a read-only checkout only loses the memo
            _write_json(self._file(chapter), {"key": key, "markdown": markdown})
