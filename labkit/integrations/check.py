# `labkit check`: run every chapter live and diff it against its transcript.
"""The drift check, as the CLI runs it."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from .site import project_root


def check(args: argparse.Namespace) -> int:
    """Run every chapter live and diff each snippet against its transcript; 1 on any drift.

    Every problem is printed and counted, and the check goes on to the next chapter: one
    run lists everything that drifted.  A lab that cannot start stops it (exit 1).
    """
    # Imported here: `labkit build` only starts mkdocs, and should not pay for the check.
    from ..book import snippets
    from ..book.borrow import RealRecording, recordings
    from ..book.build import chapters, recording_labs, run_live
    from ..book.chapter_process import ChapterDied, run_chapter
    from ..book.drift import Drift, compare
    from ..book.transcript import Store, Transcript
    from ..model import topology
    from ..model.errors import SnippetError, TranscriptError
    from ..model.labs import DEFAULT

    root = project_root()
    source = root / "docs_src"
    store = Store(recordings(source / "transcripts", args.lab))
    problems = 0
    compared = 0
    for path in chapters(source):
        chapter = snippets.load(path, root)
        if not chapter.snippets:
            continue
        shown = _relative(store.path_for(chapter.path), root)
        try:
            transcript = store.load(chapter.path)
        except TranscriptError as exc:
            print(f"{chapter.path}:1: the transcript cannot be used: {exc}")
            problems += 1
            continue
        if transcript is None:
            print(f"{chapter.path}:1: no transcript ({shown}) to compare with; "
                  "record one with `nox -s build` and commit it")
            problems += 1
            continue
        recorded_on = transcript.inventory.get("info", {}).get("backend")
        if recorded_on != args.lab:
            print(f"{chapter.path}:1: {shown} was recorded on the {recorded_on} lab; "
                  f"this check runs on {args.lab}, so there is nothing to compare")
            problems += 1
            continue
        recorded_labs = [transcript.inventory.get("info", {}).get("lab", DEFAULT),
                         *transcript.labs]
        if recorded_labs != list(chapter.labs):
            print(f"{chapter.path}:1: {shown} was recorded on the labs "
                  f"{', '.join(recorded_labs)}; the chapter now runs on "
                  f"{', '.join(chapter.labs)}: record it again with `nox -s build`")
            problems += 1
            continue

        def work(report: Callable[[int], None], log: Callable[[str], None],
                 chapter: snippets.Chapter = chapter, transcript: Transcript = transcript,
                 shown: str = shown) -> tuple[int, list[Drift]]:
            real = (RealRecording(chapter, source / "transcripts")
                    if args.lab == "netns" else None)
            manifests = topology.default_manifests(root)
            if real is not None:
                manifests = real.manifests(manifests, root / ".labkit")
            with recording_labs(args.lab, manifests, chapter.labs,
                                {}, chapter.on_replica) as (lab, recorder, others):
                _, live = run_live(chapter, lab, recorder, keep_going=True, others=others,
                                   on_start=report, real=real)
            return compare(chapter, transcript, live, shown)

        # In a child process, as the build runs a chapter: a snippet that ends its
        # interpreter (os._exit, a signal) is a failure at its line, not a check that
        # stops early and exits 0.
        try:
            count, drifts = run_chapter(chapter.path, work, _log)
        except (SnippetError, ChapterDied) as exc:
            print(exc)
            problems += 1
            continue
        compared += count
        problems += len(drifts)
        for drift in drifts:
            print(drift)
    print(f"labkit check: {compared} snippets compared, {problems} drifted or failed",
          file=sys.stderr)
    return 1 if problems else 0


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _relative(path: Path, root: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(root))
    return str(path)
