# Temporary copies of the project with some of its real chapters, for the transcript tests.
"""Anything that records or edits transcripts works on a copy in ``tmp_path``, never on
the repository's ``docs_src/transcripts/``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from labproject import skeleton

import labkit.api.lab
import labkit.backends
import labkit.backends.netns.launcher
import labkit.book.build
from labkit.book.build import Options, Page, build
from labkit.model.errors import LabUnavailable

ROOT = Path(__file__).resolve().parent.parent
# The two quickest real chapters: about half a second each on the netns lab.
CHAPTERS = ("01-same-node.md", "02-setup.md")


@dataclass
class Copy:
    """A copy of the project: mkdocs.yml, docs/, manifests/ and a few chapters."""

    root: Path
    logged: list[str] = field(default_factory=list)

    @property
    def source(self) -> Path:
        return self.root / "docs_src"

    @property
    def transcripts(self) -> Path:
        return self.source / "transcripts"

    def options(self, **changes: Any) -> Options:
        values: dict[str, Any] = {"source": self.source, "state": self.root / ".labkit",
                                  "manifests": self.root / "manifests", "log": self.logged.append}
        values.update(changes)
        return Options(**values)

    def build(self, **changes: Any) -> dict[str, Page]:
        """Build the pages in-process; returns them by chapter file name."""
        return {page.name: page for page in build(self.options(**changes))}

    def edit(self, chapter: str, old: str, new: str) -> None:
        path = self.source / chapter
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {chapter}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def line_of(self, chapter: str, needle: str) -> int:
        lines = (self.source / chapter).read_text(encoding="utf-8").splitlines()
        return next(n for n, line in enumerate(lines, 1) if needle in line)

    def cli(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python -m labkit.cli ARGS`` in the copy, as an author would run it."""
        environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        return subprocess.run([sys.executable, "-m", "labkit.cli", *args], cwd=self.root,
                              env=environ, capture_output=True, text=True, timeout=timeout)


def make_copy(where: Path, chapters: tuple[str, ...] = CHAPTERS) -> Copy:
    """The chapters with what they need beside them: the declared differences, and their
    recordings on the real cluster (which their ``lab=real`` snippets replay on the replica)."""
    skeleton(where)
    source = ROOT / "docs_src"
    for name in ("index.md", "differences.yaml", *chapters):
        shutil.copy(source / name, where / "docs_src" / name)
    (where / "docs_src" / "transcripts" / "native").mkdir(parents=True, exist_ok=True)
    for name in chapters:
        real = source / "transcripts" / "native" / (Path(name).stem + ".yaml")
        if real.exists():
            shutil.copy(real, where / "docs_src" / "transcripts" / "native" / real.name)
    return Copy(where)


class LabOpened(AssertionError):
    """A test that must not start a lab started one."""


def forbid_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting any lab fail the test: what follows must work with no lab at all."""
    def refuse(*_: object, **__: object) -> None:
        raise LabOpened("a lab was started")

    monkeypatch.setattr(labkit.backends, "open_lab", refuse)
    monkeypatch.setattr(labkit.backends.netns.launcher, "start", refuse)


class Opened:
    """The labs started so far, by kind; kept in a file, because chapters run in child
    processes (labkit.book.chapter_process), whose calls a list in this process would not see."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def append(self, kind: str) -> None:
        with open(self.path, "a") as handle:
            handle.write(kind + "\n")

    def kinds(self) -> list[str]:
        return self.path.read_text().split()

    def __eq__(self, other: object) -> bool:
        return self.kinds() == other

    def __len__(self) -> int:
        return len(self.kinds())

    def __repr__(self) -> str:
        return repr(self.kinds())


def count_labs(monkeypatch: pytest.MonkeyPatch, where: Path) -> Opened:
    """Let labs start, and list the kind of each one that did."""
    opened = Opened(where / "labs-opened.txt")
    real: Callable[..., labkit.api.lab.Lab] = labkit.backends.open_lab

    def counting(kind: str = "netns", **options: Any) -> labkit.api.lab.Lab:
        opened.append(kind)
        return real(kind, **options)

    monkeypatch.setattr(labkit.backends, "open_lab", counting)
    return opened


def require_lab(request: pytest.FixtureRequest) -> None:
    """Skip (or, with --require-lab, fail) where no netns lab can start."""
    try:
        labkit.backends.netns.launcher.preflight()
    except LabUnavailable as exc:
        if request.config.getoption("--require-lab"):
            pytest.fail(f"no lab available: {exc.one_line()}", pytrace=False)
        pytest.skip(f"no lab available: {exc.one_line()}")


@dataclass
class Recorded:
    """A copy whose chapters a live build recorded, and the pages that build made."""

    copy: Copy
    pages: dict[str, Page]


# labkit's source as it was when the session began: edits to the checkout while the tests
# run must not make every cached chapter look changed (tests that change it say so).
SOURCE = labkit.book.cache.code_fingerprint()


@pytest.fixture(scope="session", name="recorded_once")
def recorded_once_fixture(request: pytest.FixtureRequest,
                          tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    require_lab(request)
    copy = make_copy(tmp_path_factory.mktemp("recorded"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labkit.book.build, "code_fingerprint", lambda *_: SOURCE)
        pages = copy.build()
    assert {p.how for p in pages.values()} == {"live", "static"}, copy.logged
    return Recorded(copy, pages)


@pytest.fixture(name="recorded")
def recorded_fixture(recorded_once: Recorded, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """A fresh copy of the recorded project for one test to change as it likes."""
    root = tmp_path / "project"
    shutil.copytree(recorded_once.copy.root, root, symlinks=True)
    monkeypatch.setattr(labkit.book.build, "code_fingerprint", lambda *_: SOURCE)
    return Recorded(Copy(root), recorded_once.pages)
