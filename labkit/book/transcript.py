# Transcripts: every call a chapter made to its lab and what came back, committed beside it.
"""The transcript store.

A transcript is a readable YAML file, one per chapter, in
``docs_src/transcripts/``.  It holds the lab's inventory and, per snippet,
every call the snippet made (run, start, stop) with the full result: the
command, where it ran, what it printed, its exit status and when.  A live
build writes it; a replay hands the same answers back to the same snippet
code, so the page comes out identical without a lab.

Outputs are written as YAML literal blocks, line for line as the terminal
showed them (trailing spaces included), so a change in what the lab prints is
a readable diff in review.  Fields that follow from others (a result's
command, an empty stderr) are left out of the file and restored on reading.

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

from ..api.backend import Inventory
from ..model.errors import TranscriptError
from ..model.leftovers import left_by_dead_process
from ..model.result import Result
from .excerpt import abridge

FORMAT = 2
HEADER = (
    "# labkit transcript: what a live build's commands printed, recorded for replay and\n"
    "# for the drift check. Written by `nox -s build`; do not edit by hand (the checksum\n"
    "# below would no longer match and the file would be ignored).\n"
)
OPS = ("run", "start", "stop")

# libyaml's loader is ~10x faster than the pure-Python one: a cached rebuild reads every
# transcript, and that is most of its time.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class SnippetRecord:
    """Every lab call one snippet made, in order, and how it ended."""

    line: int
    code: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    """When the snippet started running (the page's provenance shows it)."""

    def results(self) -> list[Result]:
        """The results in the order the page shows them: a background command where it started.

        That is the order :meth:`labkit.book.execute.SnippetRun.results` gives for a live run,
        so a recording and a live run compare line for line.
        """
        slots: list[Result | None] = []
        started: dict[str, int] = {}
        for call in self.calls:
            if call["op"] == "start" and "handle" in call:
                started[str(call["handle"])] = len(slots)
                slots.append(None)
            elif "result" in call:
                result = Result.from_dict(call["result"])
                slot = started.pop(str(call.get("handle")), None) if call["op"] == "stop" else None
                if slot is None:
                    slots.append(result)
                else:
                    slots[slot] = result
        return [r for r in slots if r is not None]


@dataclass
class Transcript:
    chapter: str
    key: str
    labkit: str
    recorded: float
    inventory: Inventory
    snippets: list[SnippetRecord]
    inputs: dict[str, Any] = field(default_factory=dict)
    """What the key was made of (see :func:`labkit.book.cache.key_inputs`): says why it changed."""
    path: Path | None = None
    labs: dict[str, Inventory] = field(default_factory=dict)
    """The inventories of the other labs the chapter used (front matter ``labs:``), by name;
    their calls carry ``lab: NAME``."""

    def to_data(self) -> dict[str, Any]:
        """The file's content (without the checksum), in the compact form it is written in."""
        prompts = _prompts(self.inventory, self.labs)
        others = {"labs": self.labs} if self.labs else {}
        return {
            "format": FORMAT,
            "chapter": self.chapter,
            "key": self.key,
            "inputs": self.inputs,
            "labkit": self.labkit,
            "recorded": self.recorded,
            "inventory": self.inventory,
            **others,
            "snippets": [
                {"line": s.line, "started": s.started, "code": s.code, "error": s.error,
                 "calls": [_compact(call, prompts) for call in s.calls]}
                for s in self.snippets
            ],
        }

    @property
    def checksum(self) -> str:
        return checksum(self.to_data())


def checksum(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- the compact form of a call ---------------------------------------------------------------

Prompts = dict[str | None, dict[str, str]]
"""Each lab's prompts by target name; ``None`` is the chapter's own lab."""


def _prompts(inventory: Inventory, others: dict[str, Inventory] | None = None) -> Prompts:
    labs: dict[str | None, Inventory] = {None: inventory}
    labs.update(others or {})
    return {name: {t["name"]: t.get("prompt", "") for t in (*each.get("nodes", ()),
                                                             *each.get("pods", ()))}
            for name, each in labs.items()}


def _abridged(result: dict[str, Any]) -> dict[str, Any]:
    """A result as the transcript keeps it: of a long output, only what the page shows."""
    try:
        whole = Result.from_dict(result)
    except (TypeError, ValueError):
        return dict(result)  # not a result: written as it is, and refused when read
    return abridge(whole).to_dict()


def _compact(call: dict[str, Any], every: Prompts) -> dict[str, Any]:
    """Leave out of a call's result what the call or the inventory already says, and of a
    long output what the page does not show (:func:`labkit.book.excerpt.abridge`)."""
    error = call.get("error")
    if isinstance(error, dict) and "result" in error:  # a timeout: what it printed till then
        call = {**call, "error": {**error, "result": _abridged(error["result"])}}
    if "result" not in call:
        return dict(call)
    prompts = every.get(call.get("lab"), {})
    result = _abridged(call["result"])
    for name in ("command", "target"):
        if name in call and result.get(name) == call[name]:
            del result[name]
    target = result.get("target", call.get("target"))
    if result.get("prompt") == prompts.get(str(target)):
        del result["prompt"]
    if result.get("stdout") == result.get("output"):
        del result["stdout"]
    for name, default in (("stderr", ""), ("timed_out", False), ("invalid_bytes", 0),
                          ("extra", {}), ("dropped", {}), ("abridged", {})):
        if result.get(name) == default:
            del result[name]
    # The output first: it is what a reviewer reads.
    ordered = {k: result.pop(k) for k in ("output", "rc") if k in result}
    return {**call, "result": {**ordered, **result}}


def _expand(call: dict[str, Any], every: Prompts) -> dict[str, Any]:
    """The inverse of :func:`_compact`: the call with its full :class:`Result` fields."""
    if "result" not in call:
        return call
    prompts = every.get(call.get("lab"), {})
    result = dict(call["result"])
    for name in ("command", "target"):
        if name not in result and name in call:
            result[name] = call[name]
    result.setdefault("prompt", prompts.get(str(result.get("target")), ""))
    result.setdefault("stdout", result.get("output", ""))
    for name, default in (("stderr", ""), ("timed_out", False), ("invalid_bytes", 0)):
        result.setdefault(name, default)
    for name in ("extra", "dropped", "abridged"):
        result.setdefault(name, {})
    return {**call, "result": result}


# -- YAML ------------------------------------------------------------------------------------

def _printable(text: str) -> bool:
    """True when every character can stand in a literal block as itself."""
    for ch in text:
        if ch == "\n" or " " <= ch <= "~":
            continue
        if ch in "\u2028\u2029\ufeff" or not (
                "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd" or ch >= "\U00010000"):
            return False  # a control character, or one YAML reads as a line break
    return True


class _Dumper(yaml.SafeDumper):
    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)
        # PyYAML refuses a literal block for text with trailing spaces on a line, because
        # an editor may strip them; `ip route` prints such lines. YAML keeps them, and the
        # checksum catches an editor that does not, so the output stays readable line by line.
        if (analysis.multiline and not analysis.allow_block and not scalar.endswith(" ")
                and _printable(scalar)):
            analysis.allow_block = True
        return analysis


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line output as a literal block, so a transcript diff reads like the terminal
    # (the emitter turns it into a double-quoted scalar when the text cannot be a block).
    # YAML reads U+0085, U+2028 and U+2029 as line breaks unless they are escaped, and only
    # the double-quoted style escapes them.
    style = "|" if "\n" in value else None
    if any(ch in value for ch in "\x85\u2028\u2029"):
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dumps(transcript: Transcript) -> str:
    data = transcript.to_data()
    data["checksum"] = checksum(data)
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
    if yaml.load(text, Loader=_Loader) != data:
        # Never write a file that would read back differently: escaping everything is exact.
        text = yaml.safe_dump(data, allow_unicode=False, sort_keys=False, width=1000)
    return HEADER + text


def loads(text: str, path: Path) -> Transcript:
    """Parse a transcript; TranscriptError names the file and what is wrong with it."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TranscriptError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "format" not in data:
        raise TranscriptError(f"{path}: not a labkit transcript")
    if data["format"] != FORMAT:
        raise TranscriptError(
            f"{path}: written in transcript format {data['format']}, this labkit reads "
            f"format {FORMAT}; a live build rewrites it"
        )
    recorded_sum = data.pop("checksum", None)
    if recorded_sum != checksum(data):
        raise TranscriptError(
            f"{path}: checksum mismatch: the file was changed after labkit wrote it "
            f"(edited by hand or merged); it is ignored until a live build rewrites it"
        )
    try:
        inventory = data["inventory"]
        labs = dict(data.get("labs") or {})
        prompts = _prompts(inventory, labs)
        snippets = []
        for s in data["snippets"]:
            calls = [_expand(dict(c), prompts) for c in s["calls"]]
            for call in calls:
                if call.get("op") not in OPS:
                    raise ValueError(f"a call of the snippet at line {s['line']} has no valid op")
                if "result" in call:
                    Result.from_dict(call["result"])  # fails here, not halfway through a replay
            snippets.append(SnippetRecord(int(s["line"]), str(s["code"]), calls, s.get("error"),
                                          s.get("started")))
        return Transcript(
            chapter=data["chapter"],
            key=data["key"],
            labkit=data["labkit"],
            recorded=float(data["recorded"]),
            inventory=inventory,
            snippets=snippets,
            inputs=dict(data.get("inputs") or {}),
            path=path,
            labs=labs,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TranscriptError(f"{path}: missing or malformed field ({exc})") from exc


# -- the store -------------------------------------------------------------------------------

class Store:
    """The transcripts of one chapter directory (``docs_src/transcripts/``)."""

    def __init__(self, directory: Path, scratch: Path | None = None) -> None:
        self.directory = directory
        self.scratch = scratch
        """Where a transcript is written before it is renamed into place (the build's private
        state, on the same filesystem): a build killed mid-write leaves its half-written file
        there, never among the transcripts an author commits."""

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
        self.clean()
        text = dumps(transcript)
        # The pid in the name lets a later build tell the leftovers of a killed one.
        folder = self.scratch or path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a committed file private
            os.replace(tmp, path)
            _fsync_directory(path.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        transcript.path = path
        return path

    def clean(self) -> list[Path]:
        """Remove temporary files that a killed build left behind; return them."""
        removed = []
        folders = [self.directory, *([self.scratch] if self.scratch else [])]
        for leftover in (p for folder in folders for p in folder.glob(".*.tmp")):
            parts = leftover.name.split(".")
            pid = parts[-3] if len(parts) >= 4 else ""
            if left_by_dead_process(pid):
                with contextlib.suppress(OSError):
                    leftover.unlink()
                    removed.append(leftover)
        return removed


def _fsync_directory(directory: Path) -> None:
    # The rename itself survives a power cut only once the directory is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
