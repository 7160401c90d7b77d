# Builds the pages: for each chapter, run it live (recording) or replay it, then render it.
"""The build, independent of any site generator.

:func:`build` turns ``docs_src/*.md`` into plain Markdown pages.  Per
chapter it decides how to get the outputs:

- **live**: start a lab (a fresh one per chapter, built identically, so a chapter
  that breaks its lab cannot harm the next), run every snippet, record the transcript;
- **cached**: the chapter's key (its snippets, the manifests, labkit's code,
  the lab) matches the transcript this checkout recorded live, so nothing is
  run: the recorded outputs are replayed, and the page says when they were
  printed;
- **replay** (``mode="replay"``): no lab at all, from the committed
  transcripts.

Each chapter with snippets runs in a child process of its own, and on the netns lab they
all run at once (:class:`~labkit.book.chapter_process.SideBySide`): a cold build takes about
as long as its slowest chapter.  Pages, log lines and errors still come in chapter order.

The mkdocs-gen-files script and sybil are thin callers of this module.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.lab import Lab
from ..api.recording import Recorder, Replayer
from ..model import labs, topology
from ..model.errors import LabError, LabUnavailable, SnippetError, TranscriptError
from ..model.version import __version__
from . import differences, snippets
from .borrow import RealRecording, recordings
from .cache import (
    ManifestsMemo,
    PageMemo,
    Runs,
    changed_inputs,
    chapter_key,
    code_fingerprint,
    key_inputs,
    sha256_of,
)
from .chapter_process import ChapterProcess, SideBySide, SnippetEndedProcess, SnippetHung
from .execute import ChapterRun, skip_reason
from .render import Provenance, render_chapter, render_failed
from .transcript import SnippetRecord, Store, Transcript

ROOT = Path(__file__).resolve().parents[2]
MODES = ("auto", "live", "replay")
REPLAY_HINT = "build from the committed transcripts instead: nox -s build -- --replay"

REAL_CLUSTERS = ("kind", "native")
"""Backends that run a real cluster: one per lab for the whole build, chapters one at a
time (they share it), never side by side."""


@dataclass
class Options:
    """How to build; every field has the default ``nox -s build`` uses."""

    source: Path = ROOT / "docs_src"
    """Where the chapters are."""
    lab: str = "netns"
    """Which backend runs the snippets: ``netns`` (the replica) or ``kind``.  (Which
    cluster a chapter runs on is the chapter's front matter ``lab``.)"""
    mode: str = "auto"
    """``auto`` (live, reusing this checkout's unchanged recordings), ``live``, ``replay``."""
    keep_going: bool = False
    """Render a failing snippet as an error box and go on, instead of failing the build."""
    jobs: int = 0
    """How many chapters run at once (0: all of them).  The kind lab runs one at a time:
    its chapters share one real cluster."""
    state: Path = ROOT / ".labkit"
    """This checkout's private state: which transcripts it recorded live."""
    manifests: Path = field(default_factory=topology.default_manifests)
    """The labs' specs (``manifests/`` is the default lab, ``manifests/NAME/`` the lab
    NAME; see :mod:`labkit.model.labs`): what the labs are built from, and part of every
    chapter's key."""
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))
    on_snippet: Callable[[int], None] | None = None
    """Told the chapter line of each snippet as it starts, 0 as it ends (set by
    :func:`chapter_process`)."""

    @property
    def transcripts(self) -> Path:
        """This lab's recordings: the replica's in ``docs_src/transcripts/``, a real
        cluster's beside them in a folder of its own (``docs_src/transcripts/native/``)."""
        return recordings(self.source / "transcripts", self.lab)


@dataclass
class Page:
    source: str
    """``docs_src/<file>.md``."""
    name: str
    """The page's path in the site, e.g. ``03-datapath.md``."""
    markdown: str
    how: str
    """``live``, ``cached``, ``replay``, ``static`` (no snippets) or ``failed``."""
    errors: list[SnippetError] = field(default_factory=list)


def manifests_fingerprint(names: tuple[str, ...], fingerprints: dict[str, str]) -> str:
    """One fingerprint for the manifests of the labs ``names`` (one lab: its own)."""
    if len(names) == 1:
        return fingerprints[names[0]]
    return sha256_of({name: fingerprints[name] for name in names})


class Fingerprints(dict[str, str]):
    """Each lab's manifests fingerprint, read once per build (or remembered from an earlier
    one, ``memo``), by lab name."""

    def __init__(self, root: Path, memo: ManifestsMemo | None = None) -> None:
        super().__init__()
        self.root = root
        self.memo = memo

    def __missing__(self, name: str) -> str:
        folder = labs.manifests(name, self.root)
        if self.memo is None:
            value = topology.load(folder).fingerprint
        else:
            value = self.memo.fingerprint(folder, lambda: topology.load(folder).fingerprint)
        self[name] = value
        return value


def _check_labs(chapter: snippets.Chapter, root: Path) -> None:
    """A chapter naming a lab that no manifests folder defines fails at its front matter."""
    for name in chapter.labs:
        try:
            labs.manifests(name, root)
        except labs.UnknownLab as exc:
            raise SnippetError(chapter.path, 2, str(exc)) from exc


def chapters(source: Path) -> list[Path]:
    return sorted(p for p in source.glob("*.md") if p.is_file())


def run_live(chapter: snippets.Chapter, lab: Lab, recorder: Recorder,
             keep_going: bool, others: dict[str, tuple[Lab, Recorder]] | None = None,
             on_start: Callable[[int], None] | None = None,
             real: RealRecording | None = None,
             ) -> tuple[ChapterRun, list[SnippetRecord]]:
    """Run every snippet against a live lab (and ``others``), recording each one's calls.

    ``real``: the chapter's recording on a real cluster, which the snippets that need one
    run against on the replica (their own records then hold no calls)."""
    others = others or {}
    chapter_run = ChapterRun(lab, others={name: each for name, (each, _) in others.items()},
                     on_start=on_start)
    records: list[SnippetRecord] = []
    for snippet in chapter.snippets:
        recorder.calls = []
        for _, other in others.values():
            other.calls = recorder.calls  # one list: the calls in the order they were made
        skip = skip_reason(snippet, lab.kind)
        snippet_run = chapter_run.run(snippet, skip=skip,
                                      stand_in=real.stand_in_for(snippet, skip) if real else None)
        records.append(SnippetRecord(snippet.line, snippet.code, recorder.calls,
                                     str(snippet_run.error) if snippet_run.error else None,
                                     snippet_run.started))
        if snippet_run.error and not keep_going:
            raise snippet_run.error
    return chapter_run, records


def run_replay(chapter: snippets.Chapter, transcript: Transcript, keep_going: bool,
               on_start: Callable[[int], None] | None = None,
               real: RealRecording | None = None) -> ChapterRun:
    """Re-run every snippet against the transcript's recorded answers.

    The snippets' Python runs again, so values in the prose and the snippets'
    assertions are computed exactly as in the live run; only the lab's answers
    come from the transcript.  A snippet that changed, or that now makes
    other calls, is refused with its file and line.
    """
    if len(transcript.snippets) != len(chapter.snippets):
        raise TranscriptError(
            f"{transcript.path}: it has {len(transcript.snippets)} snippets but "
            f"{chapter.path} has {len(chapter.snippets)}; rebuild with a lab"
        )
    replayer = Replayer(transcript.inventory, chapter.path)
    lab = Lab(replayer)
    others = {name: Lab(replayer.beside(inventory, name))
              for name, inventory in transcript.labs.items()}
    chapter_run = ChapterRun(lab, others=others, on_start=on_start)
    for snippet, record in zip(chapter.snippets, transcript.snippets, strict=True):
        if record.code != snippet.code:
            raise TranscriptError(
                f"{snippet.where}: this snippet changed since {transcript.path} was recorded; "
                "rebuild with a lab"
            )
        replayer.load(record.calls, snippet.where)
        skip = skip_reason(snippet, lab.kind)
        snippet_run = chapter_run.run(snippet, skip=skip,
                                      stand_in=real.stand_in_for(snippet, skip) if real else None)
        # The page says when the output was printed, not when it was replayed.
        snippet_run.started = record.started or transcript.recorded
        if isinstance(snippet_run.error, TranscriptError):
            raise snippet_run.error
        if snippet_run.error is None and replayer.leftover():
            raise TranscriptError(
                f"{snippet.where}: the snippet now makes fewer calls than {transcript.path} "
                "recorded; rebuild with a lab"
            )
        if snippet_run.error and not keep_going:
            raise snippet_run.error
    return chapter_run


@contextlib.contextmanager
def recording_labs(kind: str, root: Path, names: tuple[str, ...], opened: dict[str, Lab],
                   on_replica: tuple[str, ...] = (),
                   ) -> Iterator[tuple[Lab, Recorder, dict[str, tuple[Lab, Recorder]]]]:
    """The labs of one chapter, each behind a recorder: its own lab, then the others by name.

    A fresh netns lab each time; a real cluster (kind, native) is kept in ``opened`` for
    the rest of the process.  A build runs each chapter in a process of its own, so every
    chapter gets a real cluster of its own: its experiments leave state (ARP caches, routes)
    that another chapter would see, and the replica gives every chapter a fresh lab.
    ``on_replica``: labs that run on the replica whatever ``kind`` is (the chapter's front
    matter ``replica``).
    """
    from ..backends import open_lab as _open

    recorded: list[tuple[Lab, Recorder]] = []
    owned: list[Lab] = []
    try:
        if kind in REAL_CLUSTERS:
            bases = []
            for name in names:
                if name in on_replica:
                    owned.append(_open("netns", manifests=labs.manifests(name, root)))
                    bases.append(owned[-1])
                    continue
                key = f"{kind}:{name}"
                if key not in opened:
                    opened[key] = _open(kind, manifests=labs.manifests(name, root))
                bases.append(opened[key])
        else:
            owned = bases = _open_together(kind, [labs.manifests(name, root) for name in names])
        for index, (name, base) in enumerate(zip(names, bases, strict=True)):
            recorder = Recorder(base.backend, lab=None if index == 0 else name)
            recorded.append((Lab(recorder), recorder))
        lab, recorder = recorded[0]
        yield lab, recorder, dict(zip(names[1:], recorded[1:], strict=True))
    finally:
        for base in owned:
            base.close()


@dataclass
class Loaded:
    """A chapter of a build, read; with its page already, if :class:`PageMemo` had it."""

    chapter: snippets.Chapter
    manifests: str = ""
    """The fingerprint of the chapter's labs' manifests (empty: no snippets)."""
    memo_key: str = ""
    page: str | None = None


class Build:
    """One build, its chapters started: :meth:`pages` collects them, in chapter order.

    Every chapter is read (and its labs checked) before any runs, so a malformed one fails
    the build before a lab starts; then they run side by side.
    """

    def __init__(self, options: Options) -> None:
        if options.mode not in MODES:
            raise LabError(f"unknown build mode {options.mode!r}: choose {', '.join(MODES)}")
        self.options = options
        self.store = Store(options.transcripts, scratch=options.state / "tmp")
        self.runs = Runs(options.state)
        self.code = code_fingerprint(options.lab)
        fingerprints = Fingerprints(options.manifests, ManifestsMemo(options.state, self.code))
        fingerprints[labs.DEFAULT]  # a broken default lab fails the build before any chapter
        self.memo = PageMemo(options.state)
        self.loaded: list[Loaded] = []
        for path in chapters(options.source):
            chapter = snippets.load(path, options.source.parent)
            loaded = Loaded(chapter)
            if chapter.snippets:
                _check_labs(chapter, options.manifests)
                loaded.manifests = manifests_fingerprint(chapter.labs, fingerprints)
                if options.mode == "auto":
                    loaded.memo_key = self.memo.key(
                        chapter, self.store.path_for(chapter.path),
                        self.runs.data.get(chapter.path),
                        chapter_key(key_inputs(chapter, options.lab, loaded.manifests,
                                               self.code)))
                    loaded.page = self.memo.get(chapter, loaded.memo_key)
            self.loaded.append(loaded)
        processes = [chapter_process(each.chapter, options, self.store, self.runs,
                                     each.manifests, self.code)
                     for each in self.loaded if each.chapter.snippets and each.page is None]
        # A kind cluster is one real cluster that every chapter uses: one chapter at a time.
        self.side = SideBySide(processes,
                               1 if options.lab in REAL_CLUSTERS else options.jobs)
        self.side.start()

    def close(self) -> None:
        """Stop the chapters still running (the build failed or was interrupted)."""
        self.side.close()

    def pages(self) -> list[Page]:
        """Every chapter's page; raise LabError on the first failure, in chapter order."""
        options = self.options
        pages: list[Page] = []
        with self.side:
            done = iter(self.side)
            try:
                for each in self.loaded:
                    chapter = each.chapter
                    if not chapter.snippets:
                        pages.append(_build_one(chapter, options, self.store, self.runs,
                                                each.manifests, self.code, {}))
                        continue
                    if each.page is not None:
                        options.log(f"labkit: {chapter.path}: cached from "
                                    f"{self.store.path_for(chapter.path)}")
                        pages.append(Page(chapter.path, Path(chapter.path).name, each.page,
                                          "cached"))
                        continue
                    try:
                        page = next(done).result()
                    except (SnippetEndedProcess, SnippetHung) as exc:
                        if not options.keep_going:
                            raise
                        options.log(f"labkit: error: {exc}")
                        page = _failed(chapter, exc, _STOPPED_TITLE[type(exc)])
                    if each.memo_key and page.how == "cached" and not page.errors:
                        self.memo.put(chapter, each.memo_key, page.markdown)
                    pages.append(page)
            except KeyboardInterrupt:
                running = self.side.running()
                if running:
                    options.log(f"labkit: interrupted while running {', '.join(running)}")
                raise
        failures = [str(error) for page in pages for error in page.errors]
        report = failures_file(options.state)
        if failures:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text("\n\0".join(failures), encoding="utf-8")
        return pages


def _open_together(kind: str, manifests: list[Path]) -> list[Lab]:
    """New labs from ``manifests``, started at once (each agent builds its own lab): a
    chapter with two labs waits for the slower one, not for both.  If one cannot start, the
    others are closed and the first error, in the order given, is raised."""
    from ..backends import open_lab as _open

    if len(manifests) == 1:
        return [_open(kind, manifests=manifests[0])]
    with concurrent.futures.ThreadPoolExecutor(len(manifests)) as pool:
        futures = [pool.submit(_open, kind, manifests=each) for each in manifests]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [error for f in futures if (error := f.exception()) is not None]
    if failed:
        for lab in started:
            lab.close()
        raise failed[0]
    return started


def build(options: Options) -> list[Page]:
    """Build every chapter into a :class:`Page`; raise LabError on the first failure.

    If :func:`start_early` started this very build, its chapters are already running.
    """
    early = _take_early(options)
    if isinstance(early, LabError):
        raise early
    return (early or Build(options)).pages()


_early: tuple[tuple[object, ...], Build | LabError] | None = None
"""What :func:`start_early` started (or the error it met), and for which options."""


def _same_build(options: Options) -> tuple[object, ...]:
    return (options.source.resolve(), options.state.resolve(), options.manifests.resolve(),
            options.lab, options.mode, options.keep_going, options.jobs)


def start_early(options: Options) -> None:
    """Start the build's chapters now, in this process, for the :func:`build` that mkdocs'
    gen-files script calls here later: they run while mkdocs loads its theme and plugins.
    A LabError is kept for that call to raise, where mkdocs reports it."""
    global _early
    forget_early()
    try:
        started: Build | LabError = Build(options)
    except LabError as exc:
        started = exc
    _early = (_same_build(options), started)


def _take_early(options: Options) -> Build | LabError | None:
    global _early
    if _early is None:
        return None
    (key, early), _early = _early, None
    if key != _same_build(options):
        if isinstance(early, Build):
            early.close()  # not this build's chapters
        return None
    return early


def forget_early() -> None:
    """Stop what :func:`start_early` started, if no build took it (mkdocs failed first)."""
    global _early
    if _early is not None:
        (_, early), _early = _early, None
        if isinstance(early, Build):
            early.close()


def failures_file(state: Path) -> Path:
    """Where :func:`build` leaves the failures it showed on pages (--keep-going), for
    ``labkit build`` in this process to name them and exit 1."""
    return state / f"failures-{os.getpid()}.txt"


_STOPPED_TITLE = {SnippetEndedProcess: "本章的代码段结束了运行它的进程",
                  SnippetHung: "本章的代码段超时后没有停下，运行它的进程被结束"}


def chapter_process(chapter: snippets.Chapter, options: Options, store: Store, runs: Runs,
                    manifests: str, code: str) -> ChapterProcess[Page]:
    """One chapter's page, made in a child process (:mod:`labkit.book.chapter_process`) so
    that a snippet which ends its interpreter, or hangs, fails at its line instead of
    ending the build; not started yet."""
    def work(report: Callable[[int], None], log: Callable[[str], None]) -> Page:
        here = dataclasses.replace(options, log=log, on_snippet=report)
        opened: dict[str, Lab] = {}
        try:
            return _build_one(chapter, here, store, runs, manifests, code, opened)
        finally:
            for lab in opened.values():
                lab.close()

    return ChapterProcess(chapter.path, work, options.log,
                          {s.line: s.timeout for s in chapter.snippets})


def _build_one(chapter: snippets.Chapter, options: Options, store: Store, runs: Runs,
               manifests: str, code: str, opened: dict[str, Lab]) -> Page:
    name = Path(chapter.path).name
    if not chapter.snippets:
        markdown = render_chapter(chapter, [], {}, None)
        return Page(chapter.path, name, markdown, "static")
    inputs = key_inputs(chapter, options.lab, manifests, code, _real_fingerprint(chapter, options))
    key = chapter_key(inputs)
    try:
        transcript = store.load(chapter.path)
        problem = "" if transcript else f"there is no transcript {store.path_for(chapter.path)}"
    except TranscriptError as exc:
        options.log(f"labkit: warning: {exc}")
        transcript, problem = None, str(exc)
    if options.mode == "replay":
        if transcript is None:
            return _unreplayable(chapter, options, TranscriptError(
                f"{chapter.path}: no usable transcript to replay ({problem}); "
                "build once with a lab (nox -s build) and commit docs_src/transcripts/"
            ))
        changed = changed_inputs(transcript.inputs, inputs)
        if changed:
            options.log(f"labkit: note: {chapter.path}: replaying outputs recorded before "
                        f"a change to {', '.join(changed)}; the page shows when they were "
                        "recorded")
        try:
            return _replayed(chapter, transcript, options, "replay")
        except TranscriptError as exc:
            return _unreplayable(chapter, options, exc)
    reason = _why_live(options, transcript, key, inputs, runs) if transcript else problem
    if options.mode == "auto" and transcript is not None and not reason:
        try:
            return _replayed(chapter, transcript, options, "cached")
        except TranscriptError as exc:
            # The snippets' code did not change but what it asks the lab did (say, labkit
            # code outside the key): print the outputs again rather than fail.
            reason = str(exc)
    options.log(f"labkit: {chapter.path}: running live: {reason}")
    return _live(chapter, options, store, runs, key, inputs, opened)


def _why_live(options: Options, transcript: Transcript, key: str, inputs: dict[str, Any],
              runs: Runs) -> str:
    """Why a chapter with a transcript must run live; empty if its recording can be reused."""
    if options.mode == "live":
        return "a fresh build was asked for"
    if transcript.key != key:
        return "changed since the recording: " + ", ".join(
            changed_inputs(transcript.inputs, inputs) or ["its key"])
    if not runs.recorded(transcript):
        return f"{transcript.path} was not recorded by this checkout ({runs.path})"
    return ""


def _live(chapter: snippets.Chapter, options: Options, store: Store, runs: Runs, key: str,
          inputs: dict[str, Any], opened: dict[str, Lab]) -> Page:
    started = time.time()
    real = _real(chapter, options)
    manifests = options.manifests if real is None else real.manifests(options.manifests,
                                                                       options.state)
    try:
        with recording_labs(options.lab, manifests, chapter.labs,
                            opened, chapter.on_replica) as (lab, recorder, others):
            chapter_run, records = run_live(chapter, lab, recorder, options.keep_going, others,
                                            options.on_snippet, real)
            inventory = recorder.inventory()
            other_inventories = {name: r.inventory() for name, (_, r) in others.items()}
    except LabUnavailable as exc:
        # Never fall back to old outputs by ourselves: a page must not pass a recording off
        # as this build's run. Replaying is the author's explicit choice.
        raise LabUnavailable(
            f"{chapter.path} must run live, but the {options.lab} lab cannot start here: "
            f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""),
            hint=REPLAY_HINT,
        ) from exc
    errors = [r.error for r in chapter_run.runs if r.error]
    provenance = Provenance(inventory["info"], "live", started,
                            {name: inv["info"] for name, inv in other_inventories.items()},
                            differs=_differs(options, inventory["info"],
                                     [inv["info"] for inv in other_inventories.values()]))
    markdown = render_chapter(chapter, chapter_run.runs, chapter_run.namespace, provenance)
    if errors:  # a failed chapter must not replace the last good recording
        for error in errors:
            options.log(f"labkit: error (shown on its page, --keep-going): {error}")
        options.log(f"labkit: {chapter.path}: {len(errors)} snippet(s) failed; "
                    "its transcript is left as it was")
    else:
        transcript = Transcript(chapter.path, key, __version__, started, inventory, records,
                                inputs=inputs, labs=other_inventories)
        store.save(transcript)
        runs.remember(transcript)
    options.log(f"labkit: {chapter.path}: ran {len(chapter.snippets)} snippets live "
                f"({time.time() - started:.2f}s)")
    return Page(chapter.path, Path(chapter.path).name, markdown, "live", errors)


def _replayed(chapter: snippets.Chapter, transcript: Transcript, options: Options,
              how: str) -> Page:
    chapter_run = run_replay(chapter, transcript, options.keep_going, options.on_snippet,
                             _real(chapter, options))
    provenance = Provenance(transcript.inventory["info"], "replay", transcript.recorded,
                            {name: inv["info"] for name, inv in transcript.labs.items()},
                            differs=_differs(options, transcript.inventory["info"],
                                     [inv["info"] for inv in transcript.labs.values()]))
    markdown = render_chapter(chapter, chapter_run.runs, chapter_run.namespace, provenance)
    options.log(f"labkit: {chapter.path}: {how} from {transcript.path}")
    return Page(chapter.path, Path(chapter.path).name, markdown, how,
                [r.error for r in chapter_run.runs if r.error])


def _differs(options: Options, info: dict[str, Any], others: list[dict[str, Any]],
             ) -> tuple[str, ...]:
    return differences.box_lines(differences.load(options.source), info, others)


def _real_fingerprint(chapter: snippets.Chapter, options: Options) -> str:
    """The sha256 of the chapter's recording on the real cluster, for the replica's key."""
    if options.lab != "netns":
        return ""
    path = Store(recordings(options.source / "transcripts")).path_for(chapter.path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def _real(chapter: snippets.Chapter, options: Options) -> RealRecording | None:
    """The real cluster's recording of the chapter, for the replica's ``lab=real`` snippets."""
    if options.lab != "netns":
        return None
    return RealRecording(chapter, options.source / "transcripts")


def _unreplayable(chapter: snippets.Chapter, options: Options, problem: TranscriptError) -> Page:
    """A chapter a replay cannot show: fail, or (--keep-going) a page that says so plainly."""
    if not options.keep_going:
        raise problem
    options.log(f"labkit: error: {problem}")
    return _failed(chapter, problem, "本章的输出无法回放",
                   "这次构建没有启动实验室，而本章没有可用的 transcript，")


def _failed(chapter: snippets.Chapter, problem: LabError, title: str, why: str = "") -> Page:
    """A page with no output at all, which says plainly why (--keep-going)."""
    markdown, errors = render_failed(chapter, problem, title, why)
    return Page(chapter.path, Path(chapter.path).name, markdown, "failed", errors)


def options_for(root: Path) -> Options:
    """How ``labkit build`` builds the project whose ``mkdocs.yml`` is in ``root``: its own
    chapters into its own state, from its own manifests unless LABKIT_MANIFESTS names
    others (as for ``labkit up``), the rest from the environment."""
    return dataclasses.replace(options_from_env(), source=root / "docs_src",
                               state=root / ".labkit",
                               manifests=topology.default_manifests(root))


def options_from_env() -> Options:
    """Options for the mkdocs-gen-files script, which mkdocs gives no arguments of its own."""
    return Options(
        lab=os.environ.get("LABKIT_LAB", "netns"),
        mode=os.environ.get("LABKIT_MODE", "auto"),
        keep_going=os.environ.get("LABKIT_KEEP_GOING", "") not in ("", "0"),
        jobs=_jobs(os.environ.get("LABKIT_JOBS", "")),
    )


def _jobs(value: str) -> int:
    """``LABKIT_JOBS``: how many chapters run at once; empty or 0 for all of them."""
    if not value.strip():
        return 0
    try:
        jobs = int(value)
    except ValueError:
        jobs = -1
    if jobs < 0:
        raise LabError(f"LABKIT_JOBS={value!r}: give a number of chapters, or 0 for all")
    return jobs
