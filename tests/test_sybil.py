# Sybil tests exactly the snippets the renderer runs: same parser, same count, same lines.
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

from labkit.book import snippets
from labkit.book.build import chapters

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs_src"


def collected_by_pytest(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::line:" in line]


def rendered_by_build() -> list[str]:
    found = []
    for path in chapters(SOURCE):
        chapter = snippets.load(path, ROOT)
        found += [f"{chapter.path}::line:{s.line}" for s in chapter.snippets]
    return found


def test_sybil_collects_every_snippet_the_build_runs() -> None:
    collected = collected_by_pytest("docs_src")
    rendered = rendered_by_build()
    missing = sorted(set(rendered) - set(collected))
    extra = sorted(set(collected) - set(rendered))
    assert not missing, f"snippets the build runs but sybil does not test: {missing}"
    assert not extra, f"tests that match no snippet the build runs: {extra}"
    assert len(collected) == len(rendered) > 10


def test_each_snippet_is_a_test_named_by_its_file_and_line() -> None:
    for test_id in collected_by_pytest("docs_src"):
        assert re.fullmatch(r"docs_src/[\w.-]+\.md::line:\d+", test_id), test_id


def test_sybils_stock_parser_would_miss_fences_with_attributes(tmp_path: Path) -> None:
    # Why labkit has its own lexer: the stock Markdown parser compares the whole info string.
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        ```python labkit timeout=5
        x = 1
        ```

        ```python
        y = 2
        ```
    """))
    stock = Sybil(parsers=[PythonCodeBlockParser()], patterns=["*.md"], path=str(tmp_path))
    assert len(list(stock.parse(page).examples())) == 1  # only the plain ```python block
    ours = snippets.parse(page.read_text(), "page.md")
    found = [(s.line, s.code, s.options) for s in ours.snippets]
    assert found == [(1, "x = 1\n", {"timeout": 5.0})]


def test_a_failing_snippet_fails_at_its_own_line(tmp_path: Path) -> None:
    chapter_dir = tmp_path / "docs_src"
    chapter_dir.mkdir()
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")  # the lab this project runs
    (chapter_dir / "99-broken.md").write_text(textwrap.dedent("""\
        # broken

        ```python labkit
        pod = lab.select(app="app")[0]
        route = pod.sh("ip route")
        ```

        Some prose.

        ```python labkit
        assert "via 10.9.9.9" in route.stdout, "the default route goes via 169.254.1.1"
        ```
    """))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), str(chapter_dir)], capture_output=True, text=True, cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    # The first ran and held, but with no transcript its output is compared with nothing:
    # it says so, as a skip, rather than passing as if it had been checked.
    assert "1 failed, 1 skipped" in done.stdout
    assert "output not compared: docs_src/99-broken.md:3 ran and its assertions held, but " \
        "there is no transcript" in done.stdout
    assert "FAILED docs_src/99-broken.md::line:10" in done.stdout
    assert "docs_src/99-broken.md:11: AssertionError: the default route goes via 169.254.1.1" \
        in done.stdout
