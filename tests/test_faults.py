# Faults provoked for real around `labkit build`: a snippet that wrecks its lab, Ctrl-C and
# SIGKILL at the worst moments, two builds at once. The site, the transcripts and the host
# must come out as a user would trust them to.
from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from labproject import (
    Html,
    Project,
    host_network,
    kill_group,
    processes_running,
    wait_until,
)

from labkit.book.transcript import Store
from labkit.integrations.publish import publish
from labkit.model import topology

NODE = "calico-ipip-worker2"
GONE_WITHIN = 5.0  # seconds: "within a few seconds" of the kill


def chapter(marker: str, code: str) -> str:
    return f"# Chapter\n\n{marker}\n\n```python labkit\n{code.strip()}\n```\n"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")


@pytest.fixture
def built(project: Project) -> Project:
    """A project with a good site and transcript from a first build, marked OLD."""
    project.write("01-a.md", chapter("OLD-SITE-MARKER", f"lab.node('{NODE}').sh('echo old')"))
    first = project.build()
    assert first.returncode == 0, first.messages
    return project


def transcripts(project: Project) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(project.transcripts.iterdir())}


def assert_nothing_left(project: Project, host_before: dict[str, Any],
                        transcripts_before: dict[str, bytes]) -> None:
    """What a killed build must leave: no process of it, the host as it was, the last good
    site and transcripts, byte for byte, and no temporary file beside them."""
    assert wait_until(lambda: not project.processes(), GONE_WITHIN), \
        f"still running: {project.processes()} (agents: {project.agents()})"
    assert host_network() == host_before
    page = project.page("01-a.md")
    assert "OLD-SITE-MARKER" in page and "NEW-SITE-MARKER" not in page
    assert transcripts(project) == transcripts_before
    for name in transcripts_before:
        assert Store(project.transcripts).load(f"docs_src/{Path(name).stem}.md") is not None


def start_new_build(project: Project, code: str, **popen: Any) -> subprocess.Popen[str]:
    project.write("01-a.md", chapter("NEW-SITE-MARKER", code))
    return project.start(**popen)


# -- a snippet that wrecks its lab ------------------------------------------------------------

def _same_node_pods() -> dict[str, str]:
    spec = topology.load()
    a, b = [p for p in spec.pods if p.node == NODE][:2]
    return {"a": a.name, "b": b.name, "b_ip": b.ip, "veth": a.veth}


def test_a_chapter_that_wrecks_its_lab_does_not_reach_the_next(project: Project) -> None:
    n = _same_node_pods()
    project.write("01-wreck.md", f"""
    # Wrecked

    ```python labkit
    node = lab.node("{NODE}")
    node.sh("ip link del {n['veth']}")          # pod a's side of its veth
    lab.pod("{n['b']}").sh("ip route del default")
    node.sh("ip netns delete " + lab.pod("{n['b']}").netns)  # the runtime's name for b's
    ```

    ```python labkit
    lab.pod("{n['a']}").sh("ping -c 1 -W 1 {n['b_ip']}")
    ```

    ```python labkit
    # The node's PID 1: the node goes, with every process in it (the shell too).
    try:
        node.sh("kill 1; sleep 30")
    except labkit.LabError as gone:
        assert "calico-ipip-worker2 is gone: its PID 1 exited" in str(gone), gone
    else:
        raise AssertionError("the node outlived its PID 1")
    ```

    ```python labkit
    node.sh("echo never")
    ```
    """)
    project.write("02-fresh.md", f"""
    # Fresh

    ```python labkit
    node = lab.node("{NODE}")
    shown = node.sh("ip link show {n['veth']}").stdout
    assert "link-netns " + lab.pod("{n['a']}").netns in shown
    assert "default via 169.254.1.1" in lab.pod("{n['b']}").sh("ip route").stdout
    assert lab.pod("{n['b']}").netns in node.sh("ip netns list").stdout
    lab.pod("{n['a']}").sh("ping -c 1 -W 2 {n['b_ip']}")
    node.sh("echo FRESH-LAB-OK")
    ```
    """)
    host_before = host_network()

    build = project.build("--keep-going")
    # Every page built, and exit 1 naming the wrecked chapter's failures (make -k).
    assert build.returncode == 1, build.messages
    assert "Traceback" not in build.stderr
    assert re.search(r"but \d+ snippet\(s\) failed \(--keep-going", build.messages)

    wrecked = Html(project.page("01-wreck.md"))
    failures = [code for code in wrecked.codes if code.startswith("docs_src/01-wreck.md:")]
    ping_line = project.line_of("01-wreck.md", "ping -c 1")
    echo_line = project.line_of("01-wreck.md", "echo never")
    # The snippet that meets the damage fails as any snippet does: file:line, command, status.
    # (Deleting a's veth took its eth0 with it: no route to anywhere, ping exits with 2.)
    assert any(f.startswith(f"docs_src/01-wreck.md:{ping_line}: `ping -c 1 -W 1 {n['b_ip']}` "
                            f"on {n['a']} exited with 2")
               and "Network is unreachable" in f for f in failures), failures
    # Once the node is gone, a later snippet says so, at its own line.
    assert any(f.startswith(f"docs_src/01-wreck.md:{echo_line}: ") and
               f"{NODE} is gone: its PID 1 exited" in f for f in failures), failures

    fresh = Html(project.page("02-fresh.md"))
    assert any("FRESH-LAB-OK" in code for code in fresh.codes)
    assert not fresh.has("div", **{"class": "admonition failure"})
    assert wait_until(lambda: not project.processes(), GONE_WITHIN)
    assert host_network() == host_before


def test_without_keep_going_the_first_snippet_to_meet_the_damage_fails_the_build(
        project: Project) -> None:
    names = _same_node_pods()
    project.write("01-wreck.md", f"""
    # Wrecked

    ```python labkit
    lab.node("{NODE}").sh("ip link del {names['veth']}")
    ```

    Then:

    ```python labkit
    lab.pod("{names['a']}").sh("ping -c 1 -W 1 {names['b_ip']}")
    ```
    """)
    build = project.build()
    assert build.returncode != 0
    assert "Traceback" not in build.stderr
    line = project.line_of("01-wreck.md", "ping -c 1")
    assert f"docs_src/01-wreck.md:{line}: `ping -c 1 -W 1 {names['b_ip']}` on {names['a']} " \
           "exited with 2" in build.messages
    assert "stderr: ping: connect: Network is unreachable" in build.messages
    assert not project.site.exists()
    assert wait_until(lambda: not project.processes(), GONE_WITHIN)


# -- interrupted builds -----------------------------------------------------------------------

def _wait_for(command: bytes, build: subprocess.Popen[str]) -> None:
    if not wait_until(lambda: bool(processes_running(command)) or build.poll() is not None, 60):
        pytest.fail(f"the build never got to run {command!r}")
    assert build.poll() is None, build.communicate()


def test_sigkill_of_the_build_mid_snippet_leaves_nothing_behind(built: Project) -> None:
    host_before, recorded = host_network(), transcripts(built)
    sleep = f"sleep {7000 + os.getpid() % 1000}"
    build = start_new_build(built, f"lab.node('{NODE}').sh('{sleep}')")
    _wait_for(sleep.encode(), build)
    assert built.agents()  # the lab is up: this is the moment that matters
    kill_group(build, signal.SIGKILL)
    build.wait()
    assert_nothing_left(built, host_before, recorded)
    # The kernel kills what was in the lab's PID namespace as its init exits: the command
    # may outlast the agent's entry in /proc by a moment, not by more than the same deadline.
    assert wait_until(lambda: not processes_running(sleep.encode()), GONE_WITHIN)


def test_the_next_build_removes_what_a_killed_build_left_in_tmp(
        built: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    # Not labkit's, or labkit's of a live process: never touched.
    others = [tmp / "mkdocs_gen_files_abc123", tmp / "labkit-notes",
              tmp / f"labkit-build-{os.getpid()}-abcdefgh"]
    for folder in others:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine\n")
    sleep = f"sleep {9000 + os.getpid() % 1000}"
    build = start_new_build(built, f"lab.node('{NODE}').sh('{sleep}')")
    _wait_for(sleep.encode(), build)
    kill_group(build, signal.SIGKILL)
    build.wait()
    assert wait_until(lambda: not built.processes(), GONE_WITHIN)
    left = sorted(p.name for p in tmp.iterdir() if p not in others)
    # The build's own folder (mkdocs-gen-files' inside it) and its chapter's lab folder.
    assert [name.split("-")[1] for name in left] == ["build", "lab"], left
    assert all(re.fullmatch(r"labkit-(build|lab)-\d+-\w{8}", name) for name in left)
    built.write("01-a.md", chapter("NEW-SITE-MARKER", f"lab.node('{NODE}').sh('echo new')"))
    again = built.build()
    assert again.returncode == 0, again.messages
    assert sorted(tmp.iterdir()) == sorted(others)
    assert all((folder / "keep.txt").read_text() == "mine\n" for folder in others)


def test_ctrl_c_mid_snippet_stops_cleanly(built: Project) -> None:
    host_before, recorded = host_network(), transcripts(built)
    sleep = f"sleep {8000 + os.getpid() % 1000}"
    build = start_new_build(built, f"lab.node('{NODE}').sh('{sleep}')")
    _wait_for(sleep.encode(), build)
    kill_group(build, signal.SIGINT)  # what the terminal sends the whole job on Ctrl-C
    _, stderr = build.communicate(timeout=30)
    assert build.returncode == 130, stderr
    assert "labkit: interrupted" in stderr
    assert "Traceback" not in stderr
    assert_nothing_left(built, host_before, recorded)
    assert not processes_running(sleep.encode())


def test_sigkill_of_the_parent_session_takes_the_build_down(built: Project) -> None:
    """`nox -s build` killed with SIGKILL: labkit and mkdocs die with it, the lab with them."""
    host_before, recorded = host_network(), transcripts(built)
    sleep = f"sleep {9000 + os.getpid() % 1000}"
    built.write("01-a.md", chapter("NEW-SITE-MARKER", f"lab.node('{NODE}').sh('{sleep}')"))
    nox = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
         *built.command()],
        cwd=built.root, env=built.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_until(lambda: bool(processes_running(sleep.encode())), 60):
        pytest.fail("the build never got to its snippet")
    os.kill(nox.pid, signal.SIGKILL)  # only the parent; nobody signals its children
    nox.wait()
    assert_nothing_left(built, host_before, recorded)


def test_sigkill_while_mkdocs_writes_keeps_the_old_site(built: Project) -> None:
    host_before, recorded = host_network(), transcripts(built)
    state = built.root / ".labkit"
    build = start_new_build(built, f"lab.node('{NODE}').sh('echo new')")
    if not wait_until(lambda: any(p.name.startswith("site-") for p in state.iterdir())
                      or build.poll() is not None, 60):
        pytest.fail("mkdocs never started writing")
    kill_group(build, signal.SIGKILL)
    build.wait()
    assert wait_until(lambda: not built.processes(), GONE_WITHIN)
    assert host_network() == host_before
    page = built.page("01-a.md")
    assert "OLD-SITE-MARKER" in page and "NEW-SITE-MARKER" not in page
    del recorded  # the transcript may be the new one already: it was complete before mkdocs wrote

    # The next build finishes the job and clears the killed build's private folder.
    again = built.build()
    assert again.returncode == 0, again.messages
    assert "NEW-SITE-MARKER" in built.page("01-a.md")
    assert not [p for p in state.iterdir() if p.name.startswith("site-")]


STRACE = shutil.which("strace")
SLOW_FSYNC = ["-f", "-qq", "-o", os.devnull, "--seccomp-bpf", "-e", "trace=fsync",
              "-e", "inject=fsync:delay_enter=5s"]


def _kill_while_the_transcript_is_written(project: Project) -> None:
    """SIGKILL a build at the moment its transcript's temporary file exists.

    strace holds every fsync() for five seconds, so the moment lasts long enough to hit
    deterministically; the kill itself is a real SIGKILL of the whole process group.
    """
    project.write("01-a.md", chapter("NEW-SITE-MARKER", f"lab.node('{NODE}').sh('echo new')"))
    assert STRACE is not None
    build = subprocess.Popen([STRACE, *SLOW_FSYNC, *project.command()], cwd=project.root,
                             env=project.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    # Wherever labkit keeps the file it is writing, its name says which transcript it is.
    writing = wait_until(lambda: any(project.root.rglob(".01-a.yaml.*.tmp")), 60)
    doomed = project.processes()
    kill_group(build, signal.SIGKILL)
    build.wait()
    assert writing, "the build never started writing its transcript"
    assert wait_until(lambda: not project.processes(), GONE_WITHIN)
    # And gone from /proc too (init has reaped the zombies), so that what this test looks at
    # next is what they left, not what they are still holding.
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in doomed),
                      GONE_WITHIN)


@pytest.mark.skipif(STRACE is None, reason="strace is needed to stretch fsync() long enough "
                                           "to SIGKILL a build mid-write (apt-get install strace)")
def test_sigkill_while_the_transcript_is_written_keeps_the_old_one(built: Project) -> None:
    host_before, recorded = host_network(), transcripts(built)
    _kill_while_the_transcript_is_written(built)
    assert host_network() == host_before
    transcript = built.transcript("01-a.md")
    assert transcript.read_bytes() == recorded[transcript.name]
    assert "OLD-SITE-MARKER" in built.page("01-a.md")
    # The next build rewrites it, whole, and leaves no temporary file behind.
    again = built.build()
    assert again.returncode == 0, again.messages
    assert [p.name for p in built.transcripts.iterdir()] == [transcript.name]
    assert Store(built.transcripts).load("docs_src/01-a.md") is not None
    assert "NEW-SITE-MARKER" in built.page("01-a.md")


@pytest.mark.skipif(STRACE is None, reason="strace is needed to stretch fsync() long enough "
                                           "to SIGKILL a build mid-write (apt-get install strace)")
def test_sigkill_while_the_transcript_is_written_leaves_no_temporary_file(
        built: Project) -> None:
    _kill_while_the_transcript_is_written(built)
    assert [p.name for p in built.transcripts.iterdir()] == ["01-a.yaml"]


# -- two builds at once -------------------------------------------------------------------

def test_two_projects_build_at_once_each_with_its_own_output(tmp_path: Path) -> None:
    host_before = host_network()
    marks = {name: f"MARK-{name}-{uuid.uuid4().hex[:8]}" for name in ("a", "b")}
    projects = {name: Project.create(tmp_path / name) for name in marks}
    # Each project's lab is built from its own manifests: b renamed its first pod.
    first_pod = topology.load().listed_pods()[0].name  # lab.pods[0]
    pods = {"a": first_pod, "b": first_pod[:-5] + "zz9zz"}
    replica = projects["b"].root / "manifests" / "replica.yaml"
    replica.write_text(replica.read_text().replace(pods["a"], pods["b"]))
    for name, project in projects.items():
        project.write("01-a.md", f"# {name}\n\nProse {marks[name]}.\n\n```python labkit\n"
                      f"out = lab.node('{NODE}').sh('sleep 1; echo {marks[name]}')\n```\n\n"
                      "Printed: {{ out.stdout }} by {{ lab.pods[0].name }}\n")
    started = {name: project.start() for name, project in projects.items()}
    # Both labs really are up at the same time.
    assert wait_until(lambda: all(p.agents() for p in projects.values()), 60)
    done = {name: build.communicate(timeout=300) for name, build in started.items()}
    for name, project in projects.items():
        other = marks["b" if name == "a" else "a"]
        assert started[name].returncode == 0, done[name][1]
        page = Html(project.page("01-a.md"))
        assert f"Prose {marks[name]}." in page.prose
        assert f"Printed: {marks[name]} by {pods[name]}" in page.prose
        assert any(code.endswith(f"echo {marks[name]}\n{marks[name]}\n") for code in page.codes)
        assert other not in project.page("01-a.md")
        assert other not in project.transcript("01-a.md").read_text(encoding="utf-8")
        assert marks[name] in project.transcript("01-a.md").read_text(encoding="utf-8")
        assert not project.processes()
    assert host_network() == host_before


def test_two_builds_of_one_project_at_once_both_succeed(built: Project) -> None:
    built.write("01-a.md", chapter("NEW-SITE-MARKER", f"lab.node('{NODE}').sh('sleep 1')"))
    first, second = built.start("--fresh"), built.start("--fresh")
    outcomes = [build.communicate(timeout=300) for build in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outcomes
    assert "NEW-SITE-MARKER" in built.page("01-a.md")
    assert (built.site / "sitemap.xml").exists()  # a whole site, not a mix of halves
    assert Store(built.transcripts).load("docs_src/01-a.md") is not None
    assert [p.name for p in built.transcripts.iterdir()] == ["01-a.yaml"]
    assert not [p for p in (built.root / ".labkit").iterdir() if p.name.startswith("site-")]
    assert wait_until(lambda: not built.processes(), GONE_WITHIN)


def _publish_at(barrier: Any, built: str, site: str, answers: Any) -> None:
    barrier.wait()
    try:
        publish(Path(built), Path(site))
        answers.put("")
    except OSError as exc:
        answers.put(repr(exc))


def test_two_builds_publishing_the_first_site_at_the_same_instant(tmp_path: Path) -> None:
    """The last step of two builds of a fresh checkout, at the same moment, many times over:
    real processes and a real filesystem, only the moment is forced (by a barrier)."""
    context = multiprocessing.get_context("fork")
    site = tmp_path / "site"
    for attempt in range(40):
        shutil.rmtree(site, ignore_errors=True)
        builds = []
        for name in ("one", "two"):
            built = tmp_path / f"site-{name}"
            built.mkdir()
            (built / "index.html").write_text(name)
            builds.append(built)
        barrier, answers = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_publish_at, args=(barrier, str(b), str(site), answers))
                   for b in builds]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        failures = [answer for answer in (answers.get(), answers.get()) if answer]
        assert not failures, f"attempt {attempt}: {failures}"
        # One complete site in place, the other gone with the previous one.
        assert (site / "index.html").read_text() in ("one", "two")
        assert not any(b.exists() for b in builds)
