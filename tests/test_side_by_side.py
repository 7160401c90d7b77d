# Chapters run side by side, each on a lab of its own, and the build still reads in chapter
# order: its log, its pages, its transcripts, its first error; a snippet that hangs is named.
"""Whether chapters overlap is shown without a clock: a chapter waits for a file that a later
chapter writes, which it can only see if the two run at once (and, with ``--jobs 1``, never
sees).  How much faster that makes a build is measured by ``nox -s bench``, not here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from labproject import Html, Project, wait_until

from labkit.book.chapter_process import GRACE
from labkit.book.transcript import Store
from labkit.model import topology

NODE = "calico-ipip-worker2"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")


def snippet(code: str, options: str = "") -> str:
    return f"```python labkit{' ' + options if options else ''}\n{code.strip()}\n```\n"


def wait_for(flag: Path, seconds: float = 60) -> str:
    """Snippet code that waits (up to ``seconds``) for ``flag`` to exist, and fails if not."""
    return (f"import os, time\nfor _ in range({int(seconds * 20)}):\n"
            f"    if os.path.exists({str(flag)!r}):\n        break\n    time.sleep(0.05)\n"
            f"else:\n    raise AssertionError('never saw {flag.name}')\n")


def touch(flag: Path) -> str:
    return f"open({str(flag)!r}, 'w').close()\n"


def labkit_lines(messages: str) -> list[str]:
    return [line for line in messages.splitlines() if line.startswith("labkit: docs_src/")]


def test_a_chapter_sees_what_a_later_one_does_meanwhile(project: Project, tmp_path: Path) -> None:
    flag = tmp_path / "written-by-02"
    # 01 cannot end before 02 has run: only chapters that run at once can build this.
    project.write("01-a.md", "# A\n\n" + snippet(
        f"lab.node('{NODE}').sh('echo first-chapter')\n" + wait_for(flag), "timeout=90"))
    project.write("02-b.md", "# B\n\n" + snippet(
        touch(flag) + f"lab.node('{NODE}').sh('echo second-chapter')"))
    build = project.build()
    assert build.returncode == 0, build.messages
    # 02 finished first, yet the log reads in chapter order, each chapter's lines together.
    lines = labkit_lines(build.messages)
    assert [line.split(":")[1].strip() for line in lines] == [
        "docs_src/01-a.md", "docs_src/01-a.md", "docs_src/02-b.md", "docs_src/02-b.md"], lines
    assert "first-chapter" in "".join(Html(project.page("01-a.md")).codes)
    assert "second-chapter" in "".join(Html(project.page("02-b.md")).codes)
    for chapter in ("docs_src/01-a.md", "docs_src/02-b.md"):
        assert Store(project.transcripts).load(chapter) is not None
    assert wait_until(lambda: not project.agents()), project.agents()


def test_with_one_job_a_chapter_starts_when_the_one_before_has_ended(
        project: Project, tmp_path: Path) -> None:
    started = tmp_path / "02-started"
    project.write("01-a.md", "# A\n\n" + snippet(
        f"import os, time\ntime.sleep(1)\nassert not os.path.exists({str(started)!r})\n"
        f"lab.node('{NODE}').sh('true')"))
    project.write("02-b.md", "# B\n\n" + snippet(touch(started) + f"lab.node('{NODE}').sh('true')"))
    build = project.build("--jobs", "1")
    assert build.returncode == 0, build.messages
    assert started.exists()


def test_each_chapter_has_a_lab_of_its_own_built_identically(
        project: Project, tmp_path: Path) -> None:
    changed, checked = tmp_path / "01-changed-its-lab", tmp_path / "02-checked"
    spec = topology.load()
    pod = next(p for p in spec.pods if p.node == NODE)
    # 01 changes its lab and keeps it so until 02, running at the same time, has looked.
    project.write("01-a.md", "# A\n\n" + snippet(
        f"node = lab.node('{NODE}')\nnode.sh('ip route add 192.0.2.0/24 dev {pod.veth}')\n"
        + touch(changed) + wait_for(checked)
        + "assert '192.0.2.0/24' in node.sh('ip route').stdout\n"
          f"links = node.sh('ip -o link show {pod.veth}').stdout", "timeout=90"))
    project.write("02-b.md", "# B\n\n" + snippet(
        wait_for(changed) + f"node = lab.node('{NODE}')\n"
        "routes = node.sh('ip route').stdout\n" + touch(checked)
        + "assert '192.0.2.0/24' not in routes, routes\n"
          f"links = node.sh('ip -o link show {pod.veth}').stdout", "timeout=90"))
    build = project.build()
    assert build.returncode == 0, build.messages
    store = Store(project.transcripts)
    first, second = store.load("docs_src/01-a.md"), store.load("docs_src/02-b.md")
    assert first is not None and second is not None
    # The same cluster, node for node and pod for pod: names, addresses, MACs, netns names.
    assert first.inventory["nodes"] == second.inventory["nodes"]
    assert first.inventory["pods"] == second.inventory["pods"]
    # And the same device, as `ip` prints it, in both (its MAC and peer included).
    link = [t.snippets[0].results()[-1].output for t in (first, second)]
    assert link[0] == link[1]
    assert f"{pod.veth}@if3" in link[0] and "ee:ee:ee:ee:ee:ee" in link[0], link[0]


def write_two_failing_chapters(project: Project, tmp_path: Path) -> None:
    """02 fails at once; 01 fails only after that, once it sees that 02 has."""
    failed = tmp_path / "02-failed"
    project.write("01-a.md", "# A\n\n" + snippet(
        wait_for(failed) + f"lab.node('{NODE}').sh('ls /no/such/dir-01')", "timeout=90"))
    project.write("02-b.md", "# B\n\n" + snippet(
        touch(failed) + f"lab.node('{NODE}').sh('ls /no/such/dir-02')"))


def test_the_first_error_in_chapter_order_fails_the_build(
        project: Project, tmp_path: Path) -> None:
    # The build names 01, as a build that ran the chapters one after another would.
    write_two_failing_chapters(project, tmp_path)
    build = project.build()
    assert build.returncode != 0
    assert "Traceback" not in build.stderr
    assert len(re.findall(r"^ERROR\b", build.messages, re.M)) == 1, build.messages
    assert "`ls /no/such/dir-01` on calico-ipip-worker2 exited with 2" in build.messages
    assert "dir-02" not in build.messages
    assert not project.site.exists()
    assert wait_until(lambda: not project.agents()), project.agents()


def test_keep_going_lists_every_failure_in_chapter_order(
        project: Project, tmp_path: Path) -> None:
    write_two_failing_chapters(project, tmp_path)
    build = project.build("--keep-going")
    assert build.returncode == 1, build.messages
    named = re.findall(r"^  (docs_src/\S+\.md):\d+: ", build.messages, re.M)
    assert named == ["docs_src/01-a.md", "docs_src/02-b.md"], build.messages


def test_a_snippet_that_ignores_its_timeout_is_named_and_its_chapter_stopped(
        project: Project) -> None:
    # Blocking the alarm the timeout sets: only the build's watch can stop this one.
    project.write("01-a.md", "# A\n\n" + snippet(
        f"import signal, time\nlab.node('{NODE}').sh('echo before-the-hang')\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\ntime.sleep(600)",
        "timeout=1"))
    project.write("02-b.md", "# B\n\n" + snippet(f"lab.node('{NODE}').sh('echo next-chapter')"))
    build = project.build("--keep-going", timeout=120)
    assert build.returncode == 1, build.messages
    said = (f"docs_src/01-a.md:3: the snippet did not finish within 1s and did not stop when "
            f"its time was up, so the process running its chapter was killed {GRACE:g}s later")
    assert said in build.messages
    page = Html(project.page("01-a.md"))
    assert page.has("div", **{"class": "admonition failure"})
    assert "did not stop when its time was up" in page.text
    assert any("next-chapter" in code for code in Html(project.page("02-b.md")).codes)
    # The hung chapter recorded nothing; its lab went with its process.
    assert Store(project.transcripts).load("docs_src/01-a.md") is None
    assert wait_until(lambda: not project.agents()), project.agents()


def test_chapters_started_before_mkdocs_fails_are_stopped(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('sleep 20')"))
    config = project.root / "mkdocs.yml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "theme:\n  name: material", "theme:\n  name: no-such-theme"), encoding="utf-8")
    build = project.build()
    assert build.returncode != 0
    assert "no-such-theme" in build.messages
    assert "site/ is unchanged" in build.messages
    assert wait_until(lambda: not project.agents()), project.agents()
    assert Store(project.transcripts).load("docs_src/01-a.md") is None
