# Transcripts: every call a chapter made to its lab and what came back, committed beside it.
"""The transcript store.

A transcript is a readable YAML file, one per chapter, in
``docs_src/transcripts/``.  It holds the lab's inventory and, per snippet,
every call the snippet made (run, start, stop) with the full result.  A live
build writes it; a replay hands the same answers back to the same snippet
code, so the page comes out identical without a lab.

Writes are atomic (a temporary file, fsync, rename), so an interrupted build
leaves the previous transcript intact.  The file carries a checksum of its
content; a transcript that fails to parse or whose checksum does not match
(edited by hand, truncated, merged badly) is reported with its path and not
used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .backend import Inventory
from .errors import TranscriptError
from .result import Result

FORMAT = 1
HEADER = (
    "# labkit transcript: what a live build's commands printed, recorded for replay and\n"
    "# for the drift check. Written by `nox -s build`; do not edit by hand (the checksum\n"
    "# below would no longer match and the file would be ignored).\n"
)


@dataclass
class SnippetRecord:
    """Every lab call one snippet made, in order, and how it ended."""

    line: int
    code: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def results(self) -> list[Result]:
        return [Result.from_dict(c["result"]) for c in self.calls if "result" in c]


@dataclass
class Transcript:
    chapter: str
    key: str
    labkit: str
    recorded: float
    inventory: Inventory
    snippets: list[SnippetRecord]
    path: Path | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chapter": self.chapter,
            "key": self.key,
            "labkit": self.labkit,
            "recorded": self.recorded,
            "inventory": self.inventory,
            "snippets": [
                {"line": s.line, "code": s.code, "calls": s.calls, "error": s.error}
                for s in self.snippets
            ],
        }

    @property
    def checksum(self) -> str:
        return checksum(self.to_data())


def checksum(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line output as a literal block, so a transcript diff reads like the terminal.
    # PyYAML falls back to a quoted scalar by itself when the text cannot be a block.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dumps(transcript: Transcript) -> str:
    data = transcript.to_data()
    data["checksum"] = checksum(data)
    body = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
    return HEADER + body


def loads(text: str, path: Path) -> Transcript:
    """Parse a transcript; TranscriptError names the file and what is wrong with it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TranscriptError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TranscriptError(f"{path}: not a labkit transcript of format {FORMAT}")
    recorded_sum = data.pop("checksum", None)
    if recorded_sum != checksum(data):
        raise TranscriptError(
            f"{path}: checksum mismatch: the file was changed after labkit wrote it "
            f"(edited by hand or merged); it is ignored until a live build rewrites it"
        )
    try:
        return Transcript(
            chapter=data["chapter"],
            key=data["key"],
            labkit=data["labkit"],
            recorded=float(data["recorded"]),
            inventory=data["inventory"],
            snippets=[SnippetRecord(s["line"], s["code"], s["calls"], s.get("error"))
                      for s in data["snippets"]],
            path=path,
        )
    except (KeyError, TypeError) as exc:
        raise TranscriptError(f"{path}: missing or malformed field {exc}") from exc


class Store:
    """The transcripts of one chapter directory (``docs_src/transcripts/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, chapter: str) -> Path:
        return self.directory / (Path(chapter).stem + ".yaml")

    def load(self, chapter: str) -> Transcript | None:
        """The chapter's transcript, None if there is none; TranscriptError if it is bad."""
        path = self.path_for(chapter)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise TranscriptError(f"{path}: cannot read it ({exc})") from exc
        return loads(text, path)

    def save(self, transcript: Transcript) -> Path:
        """Write atomically: readers see the old file or the new one, never half of one."""
        path = self.path_for(transcript.chapter)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = dumps(transcript)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        transcript.path = path
        return path
