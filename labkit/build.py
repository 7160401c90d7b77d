# Builds the pages: for each chapter, run it live (recording) or replay it, then render it.
"""The build, independent of any site generator.

:func:`build` turns ``docs_src/*.md`` into plain Markdown pages.  Per
chapter it decides how to get the outputs:

- **live**: start a lab (a fresh one per chapter, so a chapter that breaks
  its lab cannot harm the next), run every snippet, record the transcript;
- **cached**: the chapter's key (its snippets, the manifests, labkit's code,
  the lab) matches the transcript this checkout recorded live, so nothing is
  run: the recorded outputs are replayed, and the page says when they were
  printed;
- **replay** (``mode="replay"``): no lab at all, from the committed
  transcripts.

The mkdocs-gen-files script and sybil are thin callers of this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, snippets, topology
from .errors import LabError, LabUnavailable, SnippetError, TranscriptError
from .execute import ChapterRun
from .lab import Lab
from .recording import Recorder, Replayer
from .render import Provenance, render_chapter
from .transcript import SnippetRecord, Store, Transcript

ROOT = Path(__file__).resolve().parent.parent
MODES = ("auto", "live", "replay")


@dataclass
class Options:
    """How to build; every field has the default ``nox -s build`` uses."""

    source: Path = ROOT / "docs_src"
    """Where the chapters are."""
    lab: str = "netns"
    """Which lab runs the snippets: ``netns`` (the replica) or ``kind``."""
    mode: str = "auto"
    """``auto`` (live, reusing this checkout's unchanged recordings), ``live``, ``replay``."""
    keep_going: bool = False
    """Render a failing snippet as an error box and go on, instead of failing the build."""
    state: Path = ROOT / ".labkit"
    """This checkout's private state: which transcripts it recorded live."""
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))

    @property
    def transcripts(self) -> Path:
        return self.source / "transcripts"


@dataclass
class Page:
    source: str
    """``docs_src/<file>.md``."""
    name: str
    """The page's path in the site, e.g. ``03-datapath.md``."""
    markdown: str
    how: str
    """``live``, ``cached``, ``replay`` or ``static`` (no snippets)."""
    errors: list[SnippetError] = field(default_factory=list)


def code_fingerprint() -> str:
    """Hash of labkit's own source: a change to it may change what a command prints."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def chapter_key(chapter: snippets.Chapter, lab: str, manifests: str, code: str) -> str:
    """Everything that can change a chapter's outputs; prose and line numbers are not in it."""
    material = {
        "labkit": __version__,
        "code": code,
        "lab": lab,
        "manifests": manifests,
        "fresh_lab": chapter.meta.get("fresh_lab"),
        "snippets": [[s.code, sorted(s.options.items())] for s in chapter.snippets],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class Runs:
    """This checkout's record of the transcripts it wrote itself (``.labkit/runs.json``).

    A fresh clone has the committed transcripts but has run nothing: its first
    build runs every chapter live.  Only outputs this checkout printed count as
    a cache.
    """

    def __init__(self, state: Path) -> None:
        self.path = state / "runs.json"
        try:
            self.data: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def recorded(self, transcript: Transcript) -> bool:
        return self.data.get(transcript.chapter) == transcript.checksum

    def remember(self, transcript: Transcript) -> None:
        self.data[transcript.chapter] = transcript.checksum
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def chapters(source: Path) -> list[Path]:
    return sorted(p for p in source.glob("*.md") if p.is_file())


def run_live(chapter: snippets.Chapter, lab: Lab, recorder: Recorder,
             keep_going: bool) -> tuple[ChapterRun, list[SnippetRecord]]:
    """Run every snippet against a live lab, recording each one's calls."""
    run = ChapterRun(lab)
    records: list[SnippetRecord] = []
    for snippet in chapter.snippets:
        recorder.calls = []
        skip = _skip_reason(snippet, lab.backend)
        result = run.run(snippet, skip=skip)
        records.append(SnippetRecord(snippet.line, snippet.code, recorder.calls,
                                     str(result.error) if result.error else None))
        if result.error and not keep_going:
            raise result.error
    return run, records


def run_replay(chapter: snippets.Chapter, transcript: Transcript,
               keep_going: bool) -> ChapterRun:
    """Re-run every snippet against the transcript's recorded answers."""
    replayer = Replayer(transcript.inventory, chapter.path)
    lab = Lab(replayer)
    run = ChapterRun(lab)
    if len(transcript.snippets) != len(chapter.snippets):
        raise TranscriptError(
            f"{transcript.path}: it has {len(transcript.snippets)} snippets but "
            f"{chapter.path} has {len(chapter.snippets)}; rebuild with a lab"
        )
    for snippet, record in zip(chapter.snippets, transcript.snippets, strict=True):
        if record.code != snippet.code:
            raise TranscriptError(
                f"{snippet.where}: this snippet changed since {transcript.path} was recorded; "
                "rebuild with a lab"
            )
        replayer.load(record.calls, snippet.where)
        result = run.run(snippet, skip=_skip_reason(snippet, lab.backend))
        if result.error is None and replayer.leftover():
            result.error = SnippetError(snippet.path, snippet.line,
                                        "the snippet made fewer calls than the transcript has")
        if result.error and not keep_going:
            raise result.error
    return run


def _skip_reason(snippet: snippets.Snippet, backend: str) -> str | None:
    """Why a snippet cannot run on this lab (it needs kubectl, say), or None if it can."""
    if snippet.only_on is None or snippet.only_on == backend:
        return None
    return f"needs the {snippet.only_on} lab; this build runs on {backend}"


@contextlib.contextmanager
def _recording_lab(kind: str, opened: dict[str, Lab]) -> Iterator[tuple[Lab, Recorder]]:
    """A lab for one chapter: a fresh netns lab each time; the kind cluster is reused."""
    from .lab import open_lab as _open

    if kind == "kind":
        if "kind" not in opened:
            opened["kind"] = _open("kind")
        base = opened["kind"]
        recorder = Recorder(base._backend)
        yield Lab(recorder), recorder
        return
    lab = _open(kind)
    recorder = Recorder(lab._backend)
    try:
        yield Lab(recorder), recorder
    finally:
        lab.close()


def build(options: Options) -> list[Page]:
    """Build every chapter into a :class:`Page`; raise LabError on the first failure."""
    if options.mode not in MODES:
        raise LabError(f"unknown build mode {options.mode!r}: choose {', '.join(MODES)}")
    store = Store(options.transcripts)
    runs = Runs(options.state)
    manifests = topology.load().fingerprint
    code = code_fingerprint()
    pages: list[Page] = []
    opened: dict[str, Lab] = {}
    try:
        for path in chapters(options.source):
            chapter = snippets.load(path, options.source.parent)
            pages.append(_build_one(chapter, options, store, runs, manifests, code, opened))
    finally:
        for lab in opened.values():
            lab.close()
    return pages


def _build_one(chapter: snippets.Chapter, options: Options, store: Store, runs: Runs,
               manifests: str, code: str, opened: dict[str, Lab]) -> Page:
    name = Path(chapter.path).name
    if not chapter.snippets:
        markdown = render_chapter(chapter, [], {}, None)
        return Page(chapter.path, name, markdown, "static")
    key = chapter_key(chapter, options.lab, manifests, code)
    try:
        transcript = store.load(chapter.path)
    except TranscriptError as exc:
        options.log(f"labkit: warning: {exc}")
        transcript = None
    if options.mode == "replay":
        if transcript is None:
            raise TranscriptError(
                f"{chapter.path}: no usable transcript to replay "
                f"({store.path_for(chapter.path)}); build once with a lab"
            )
        return _replayed(chapter, transcript, options, "replay")
    if (options.mode == "auto" and transcript is not None and transcript.key == key
            and runs.recorded(transcript)):
        return _replayed(chapter, transcript, options, "cached")
    started = time.time()
    try:
        with _recording_lab(options.lab, opened) as (lab, recorder):
            run, records = run_live(chapter, lab, recorder, options.keep_going)
            inventory = recorder.inventory()
    except LabUnavailable as exc:
        raise LabUnavailable(
            f"{chapter.path}: cannot start the {options.lab} lab: {exc}",
            hint="build from the committed transcripts instead: nox -s build -- --replay",
        ) from exc
    errors = [r.error for r in run.runs if r.error]
    provenance = Provenance(inventory["info"], "live", started)
    markdown = render_chapter(chapter, run.runs, run.namespace, provenance, options.lab)
    if not errors:  # a failed chapter must not replace the last good recording
        transcript = Transcript(chapter.path, key, __version__, started, inventory, records)
        store.save(transcript)
        runs.remember(transcript)
    options.log(f"labkit: {chapter.path}: ran {len(chapter.snippets)} snippets live "
                f"({time.time() - started:.2f}s)")
    return Page(chapter.path, name, markdown, "live", errors)


def _replayed(chapter: snippets.Chapter, transcript: Transcript, options: Options,
              how: str) -> Page:
    run = run_replay(chapter, transcript, options.keep_going)
    provenance = Provenance(transcript.inventory["info"], "replay", transcript.recorded)
    markdown = render_chapter(chapter, run.runs, run.namespace, provenance, options.lab)
    options.log(f"labkit: {chapter.path}: {how} from {transcript.path}")
    return Page(chapter.path, Path(chapter.path).name, markdown, how,
                [r.error for r in run.runs if r.error])


def options_from_env() -> Options:
    """Options for the mkdocs-gen-files script, which mkdocs gives no arguments of its own."""
    return Options(
        lab=os.environ.get("LABKIT_LAB", "netns"),
        mode=os.environ.get("LABKIT_MODE", "auto"),
        keep_going=os.environ.get("LABKIT_KEEP_GOING", "") not in ("", "0"),
    )

