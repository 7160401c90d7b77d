# `labkit fidelity`: every chapter on the replica and on the real cluster, outputs compared.
"""Run the chapters on both labs (or take either side's committed recording) and report.

The live runs happen in a scratch copy of ``docs_src/`` so the committed
transcripts stay as they are: a fidelity run checks, ``nox -s build -- --lab
native`` records.  One unified diff is printed per undeclared difference,
one line per declared one, and the count last; the exit status is 1 when a
difference is undeclared or an output could not be compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..book import snippets
from ..book.borrow import RECORDED_ON, recordings
from ..book.build import Options, build, chapters
from ..book.differences import load
from ..book.fidelity import Fidelity, compare
from ..book.transcript import Store
from ..model import topology
from ..model.errors import LabError
from .site import project_root


def run(args: argparse.Namespace) -> int:
    root = project_root()
    source = root / "docs_src"
    wanted = [path for path in chapters(source)
              if not args.chapters or path.stem in args.chapters or path.name in args.chapters]
    unknown = set(args.chapters) - {p.stem for p in wanted} - {p.name for p in wanted}
    if unknown:
        print(f"labkit fidelity: no chapter {', '.join(sorted(unknown))} in {source}",
              file=sys.stderr)
        return 2
    declared = load(source)
    with tempfile.TemporaryDirectory(prefix="labkit-fidelity-") as scratch:
        replica, real = Path(scratch) / "replica", Path(scratch) / "real"
        for side in (replica, real):
            _copy(source, side / "docs_src", wanted)
        took = {}
        # The real cluster first: the replica follows what it picked (labkit.book.follow)
        # and borrows what only it can print, so it runs from the fresh recordings.
        for side, lab, mode in ((real, RECORDED_ON, args.real), (replica, "netns", args.replica)):
            if mode == "live":
                started = time.monotonic()
                _record(root, side, lab)
                took[lab] = time.monotonic() - started
            if side is real:
                shutil.copytree(recordings(real / "docs_src" / "transcripts", RECORDED_ON),
                                recordings(replica / "docs_src" / "transcripts", RECORDED_ON),
                                dirs_exist_ok=True)
        result = Fidelity()
        mine = Store(recordings(replica / "docs_src" / "transcripts", "netns"))
        theirs = Store(recordings(real / "docs_src" / "transcripts", RECORDED_ON))
        for path in wanted:
            chapter = snippets.load(path, root)
            if not chapter.snippets:
                continue
            a, b = mine.load(chapter.path), theirs.load(chapter.path)
            if a is None or b is None:
                missing = mine if a is None else theirs
                result.problems.append(f"{chapter.path}:1: no recording "
                                       f"{missing.path_for(chapter.path).name} on "
                                       f"{'the replica' if a is None else 'the real cluster'}")
                continue
            result.add(compare(chapter, a, b, declared))
    for each in result.undeclared:
        print(f"{each.where}: `{each.command}` differs from the real cluster, undeclared:")
        print(each.diff)
    for each in result.declared:
        assert each.declared is not None
        print(f"{each.where}: `{each.command}` differs as declared ({each.declared.id})")
    for problem in result.problems:
        print(problem)
    spent = "; ".join(f"{lab} ran live in {seconds:.1f} s" for lab, seconds in took.items())
    print(f"labkit fidelity: {result.summary()}" + (f"; {spent}" if spent else ""))
    return 1 if result.undeclared or result.problems else 0


def _copy(source: Path, to: Path, wanted: list[Path]) -> None:
    """The chapters, their differences and both labs' recordings, in a scratch project."""
    (to / "transcripts").mkdir(parents=True)
    for path in wanted:
        shutil.copy2(path, to / path.name)
    for extra in source.iterdir():
        if extra.is_file() and extra.suffix != ".md":
            shutil.copy2(extra, to / extra.name)
    shutil.copytree(source / "transcripts", to / "transcripts", dirs_exist_ok=True)


def _record(root: Path, project: Path, lab: str) -> None:
    options = dataclasses.replace(
        Options(), source=project / "docs_src", state=project / ".labkit", lab=lab,
        mode="live", keep_going=True, manifests=topology.default_manifests(root))
    try:
        pages = build(options)
    except LabError as exc:
        raise LabError(f"the {lab} lab could not run the chapters: {exc}") from exc
    failed = [error for page in pages for error in page.errors]
    for error in failed:
        print(f"labkit fidelity: on {lab}: {error}", file=sys.stderr)
