# `labkit build --site DIR` replaces only what labkit built: never the project or a user's files.
from __future__ import annotations

from pathlib import Path

import pytest
from labproject import Project

PROSE = {"01-a.md": "# A\n\nprose only\n"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.create(tmp_path_factory.mktemp("site") / "project", PROSE)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_folder_of_someone_elses_files_is_refused_and_kept(project: Project) -> None:
    kept = project.root / "v"
    kept.mkdir()
    (kept / "notes.txt").write_text("precious\n")
    done = project.build("--replay", "--site", "v")
    assert done.returncode == 2, done.stderr
    assert done.messages.splitlines() == [
        f"labkit: --site v: {kept} holds files that labkit did not put there (it has no "
        ".labkit-site); empty it or choose another folder, nothing was changed"]
    assert contents(kept) == {"notes.txt": b"precious\n"}


@pytest.mark.parametrize(("name", "says"), [
    ("docs", "that is the project's docs/"),
    ("docs_src", "that is the project's docs_src/"),
    ("manifests", "that is the project's manifests/"),
    (".", "that is the project's folder (or holds it)"),
    ("..", "that is the project's folder (or holds it)"),
    ("docs/site", "that is inside the project's docs/"),
])
def test_the_project_and_its_sources_are_refused(project: Project, name: str,
                                                 says: str) -> None:
    before = {folder: contents(project.root / folder)
              for folder in ("docs", "docs_src", "manifests")}
    done = project.build("--replay", "--site", name)
    assert done.returncode == 2, done.stderr
    assert len(done.messages.splitlines()) == 1
    assert done.messages.startswith(f"labkit: --site {name}: {says}"), done.messages
    assert {folder: contents(project.root / folder) for folder in before} == before


def test_an_empty_folder_or_a_site_labkit_built_is_replaced(project: Project) -> None:
    empty = project.root / "out"
    empty.mkdir()
    first = project.build("--replay", "--site", "out")
    assert first.returncode == 0, first.stderr
    assert (empty / ".labkit-site").is_file() and (empty / "01-a" / "index.html").is_file()
    (empty / "stale.html").write_text("from the last build")  # inside labkit's own site
    again = project.build("--replay", "--site", "out")
    assert again.returncode == 0, again.stderr
    assert not (empty / "stale.html").exists()
