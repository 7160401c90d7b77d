# The `labkit` command as a shell user meets it: bad arguments get usage and exit 2, a failure
# gets one line and exit 1, a command's own exit status comes back unchanged.
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from labproject import ROOT, Project, wait_until

from labkit.backends.netns import launcher
from labkit.integrations.sybil import NO_LAB
from labkit.model import topology
from labkit.model.errors import LabUnavailable


def labkit(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                          text=True, timeout=timeout)


BAD = {
    "no command": ([], "labkit", "the following arguments are required: COMMAND"),
    "unknown command": (["frobnicate"], "labkit", "invalid choice: 'frobnicate'"),
    "unknown option": (["--frobnicate", "status"], "labkit",
                       "unrecognized arguments: --frobnicate"),
    "unknown lab": (["build", "--lab", "docker"], "labkit build", "invalid choice: 'docker'"),
    "replay and fresh": (["build", "--replay", "--fresh"], "labkit build",
                         "not allowed with argument --replay"),
    "option without its value": (["build", "--site"], "labkit build",
                                 "--site: expected one argument"),
    "stray argument": (["build", "chapters"], "labkit build", "unrecognized arguments: chapters"),
    "unknown option of up": (["up", "--bogus"], "labkit up", "unrecognized arguments: --bogus"),
    "extra argument to status": (["status", "--json", "calico", "extra"], "labkit status",
                                 "unrecognized arguments: extra"),
    "a lab no manifests define": (["status", "nosuch"], "labkit status",
                                  "argument LAB: no lab named 'nosuch'"),
    "up a lab no manifests define": (["up", "Flannel"], "labkit up",
                                     "argument LAB: no lab named 'Flannel'"),
    "sh without a target": (["sh"], "labkit sh", "required: target"),
    "sh without a command": (["sh", "calico-ipip-worker2"], "labkit sh",
                             "give the command after --"),
    "sh with only --": (["sh", "calico-ipip-worker2", "--"], "labkit sh",
                        "give the command after --"),
    "sh timeout not a number": (["sh", "--timeout", "soon", "n", "--", "ls"], "labkit sh",
                                "invalid float value: 'soon'"),
    "down without a lab name": (["down", "--name"], "labkit down", "expected one argument"),
    "check of an unknown lab": (["check", "--lab", "none"], "labkit check",
                                "invalid choice: 'none'"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_arguments_print_the_commands_usage_and_exit_2(case: str) -> None:
    args, usage, complaint = BAD[case]
    done = labkit(*args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    first, *rest = done.stderr.splitlines()
    # The usage of the command that was mistyped, then what was wrong with it.
    assert first.startswith(f"usage: {usage} "), done.stderr
    assert any(line.startswith(f"{usage}: error: ") and complaint in line for line in rest), \
        done.stderr
    assert "Traceback" not in done.stderr


def test_help_and_version_exit_0() -> None:
    helped = labkit("--help")
    assert helped.returncode == 0
    for command in ("up", "status", "sh", "down", "build", "check"):
        assert command in helped.stdout
    assert labkit("build", "--help").returncode == 0
    version = labkit("--version")
    assert (version.returncode, version.stdout.split()[0]) == (0, "labkit")


def test_build_outside_a_project_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = labkit("build", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("labkit: no mkdocs.yml with a docs_src/ beside it")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["status"], ["sh", "calico-ipip-worker2", "--", "true"],
                                  ["down"]], ids=["status", "sh", "down"])
def test_no_lab_up_is_one_line_and_exit_1(args: list[str]) -> None:
    name = f"none-{uuid.uuid4().hex[:8]}"
    done = labkit(*args[:1], "--name", name, *args[1:])
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "labkit: no lab is up (start one with `labkit up`)"


def no_lab_here() -> None:
    """Skip (a failure with --require-lab) where this machine cannot run a netns lab."""
    try:
        launcher.preflight()
    except LabUnavailable as exc:
        pytest.skip(f"{NO_LAB}: {exc.one_line()}")


@pytest.fixture(scope="module")
def lab_up() -> Iterator[str]:
    """A detached lab under a name of its own, so no one else's `labkit up` is touched."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    no_lab_here()
    started = labkit("up", "--name", name)
    assert started.returncode == 0, started.stderr  # this machine can: failing is a bug
    try:
        yield name
    finally:
        labkit("down", "--name", name)


def test_an_unknown_target_names_the_ones_there_are(lab_up: str) -> None:
    done = labkit("sh", "--name", lab_up, "calico-ipip-worker9", "--", "true")
    assert done.returncode == 1
    spec = topology.load()
    assert done.stderr.startswith("labkit: no node or pod named 'calico-ipip-worker9'; "
                                  "this lab has: ")
    for name in [n.name for n in spec.nodes] + [p.name for p in spec.pods]:
        assert name in done.stderr


def test_sh_exits_with_the_commands_status_and_keeps_its_streams(lab_up: str) -> None:
    done = labkit("sh", "--name", lab_up, "calico-ipip-worker2", "--",
                  "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_sh_keeps_at_most_keep_bytes_of_a_stream_and_says_how_many_more(lab_up: str) -> None:
    done = labkit("sh", "--name", lab_up, "--keep", "10", "calico-ipip-worker2", "--",
                  "seq", "1", "1000")
    assert done.returncode == 0
    assert done.stdout == "1\n2\n3\n4\n5\n"
    whole = 9 * 2 + 90 * 3 + 900 * 4 + 5  # 1-9, 10-99, 100-999 and 1000, each with its \n
    assert done.stderr == ("labkit: calico-ipip-worker2: printed only the first 10 bytes of "
                           f"the command's stdout; {whole - 10} more were not kept "
                           "(--keep BYTES)\n")


def test_a_second_lab_under_the_same_name_is_refused(lab_up: str) -> None:
    done = labkit("up", "--name", lab_up)
    assert done.returncode == 1
    assert f"a lab named {lab_up!r} is already up" in done.stderr
    # ... and the first one still answers.
    assert labkit("sh", "--name", lab_up, "calico-ipip-worker2", "--", "true").returncode == 0


@pytest.mark.parametrize(("where", "status", "says"), [
    ("missing-folder/site", 1, "cannot put the site at missing-folder/site: "),
    # A file is something labkit did not make: refused like any folder it did not build.
    ("a-file", 2, "--site a-file: "),
], ids=["no parent", "a file"])
def test_a_site_that_cannot_be_put_there_is_one_line_and_exit_1(tmp_path: Path, where: str,
                                                                status: int, says: str) -> None:
    project = Project.create(tmp_path / "project")
    project.write("01-a.md", "# A\n\nNothing to run.\n")
    (project.root / "a-file").write_text("not a folder\n")
    build = project.build("--site", where)
    assert build.returncode == status
    assert "Traceback" not in build.stderr
    [line] = [m for m in build.messages.splitlines() if m.startswith("labkit: ")]
    assert line.startswith(f"labkit: {says}")
    assert (project.root / "a-file").read_text() == "not a folder\n"
    assert not list((project.root / ".labkit").glob("site-*"))


@pytest.fixture(scope="module")
def flannel_up() -> Iterator[str]:
    """The Flannel lab, detached under a name of its own."""
    name = f"cli-fl-{uuid.uuid4().hex[:8]}"
    no_lab_here()
    started = labkit("up", "flannel", "--name", name)
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        labkit("down", "flannel", "--name", name)


def test_up_status_sh_and_down_take_the_labs_name_and_status_says_its_cni(
        flannel_up: str) -> None:
    status = labkit("status", "flannel", "--name", flannel_up)
    assert status.returncode == 0, status.stderr
    first = status.stdout.splitlines()[0]
    assert first == ("lab: flannel  backend: netns  cluster: flannel  cni: flannel v0.22.0  "
                     "encapsulation: VXLAN")
    assert "flannel-worker2         172.18.0.4   10.244.2.0/24   flannel.1 10.244.2.0" \
        in status.stdout
    as_json = labkit("status", "flannel", "--name", flannel_up, "--json")
    document = json.loads(as_json.stdout)
    assert (document["lab"], document["cni"], document["backend"]) == (
        "flannel", "flannel v0.22.0", "netns")
    # The lab's name may come before the target, as for the other commands.
    route = labkit("sh", "--name", flannel_up, "flannel", "flannel-worker", "--", "ip", "route")
    assert route.returncode == 0, route.stderr
    assert "10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1" in route.stdout


def test_the_calico_lab_says_its_cni_too(lab_up: str) -> None:
    status = labkit("status", "--name", lab_up)
    assert status.stdout.splitlines()[0].startswith(
        "lab: calico  backend: netns  cluster: calico-ipip  cni: calico v3.23.5  "
        "encapsulation: ")


# -- a lab that breaks under `labkit up` ---------------------------------------------------


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """A detached lab of this test's own (it will break it), in a runtime folder of its own."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_RUNTIME_DIR=str(runtime))
    name = f"hurt-{uuid.uuid4().hex[:8]}"
    no_lab_here()
    started = run_labkit(env, "up", "--name", name)
    assert started.returncode == 0, started.stderr
    state = runtime / "labkit"
    agent = json.loads((state / f"{name}.json").read_text())["pid"]
    try:
        yield name, env, state
    finally:
        run_labkit(env, "down", "--name", name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(agent, signal.SIGKILL)  # whatever the test did to it


def run_labkit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def lab_processes(state: Path, name: str) -> tuple[int, int, list[int]]:
    """The agent's pid, its lab's PID 1 (which serves requests) and that one's holders."""
    agent = json.loads((state / f"{name}.json").read_text())["pid"]
    [init] = children(agent)
    return agent, init, children(init)


def test_sh_to_a_target_whose_holder_died_names_it_and_status_shows_the_damage(
        own_lab: tuple[str, dict[str, str], Path]) -> None:
    name, env, state = own_lab
    spec = topology.load()
    targets = [n.name for n in spec.nodes] + [p.name for p in spec.pods]
    _, _, holders = lab_processes(state, name)
    assert len(holders) >= len(targets)
    os.kill(holders[-1], signal.SIGKILL)
    status = run_labkit(env, "status", "--name", name)
    assert status.returncode == 1, status.stdout
    [damage] = [line for line in status.stdout.splitlines() if line.startswith("DAMAGED: ")]
    gone = [t for t in targets if f" {t} is gone: " in damage]
    assert len(gone) == 1, damage
    assert "the lab is damaged" in damage
    done = run_labkit(env, "sh", "--name", name, gone[0], "--", "true")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"labkit: the lab is damaged: {'pod' if gone[0] in spec_pods(spec) else 'node'} "
        f"{gone[0]} is gone: its PID 1 exited, and every process in it with it; nothing can "
        "run there any more; `labkit down` and `labkit up` start a new lab"]
    other = next(t for t in targets if t != gone[0])
    assert run_labkit(env, "sh", "--name", name, other, "--", "true").returncode == 0
    status_json = json.loads(run_labkit(env, "status", "--json", "--name", name).stdout)
    assert status_json["damaged"]["targets"] == gone


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spec_pods(spec: topology.Topology) -> set[str]:
    return {p.name for p in spec.pods}


def test_a_silent_agent_times_out_and_down_ends_it(
        own_lab: tuple[str, dict[str, str], Path]) -> None:
    name, env, state = own_lab
    agent, init, holders = lab_processes(state, name)
    os.kill(init, signal.SIGSTOP)  # it still holds the socket, but never answers
    started = time.monotonic()
    done = run_labkit(env, "sh", "--name", name, "--timeout", "1", "calico-ipip-worker2",
                      "--", "true")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "labkit: the lab's agent did not answer within 31s: it is stopped (SIGSTOP?) or stuck "
        "(`labkit down` ends it)"]
    assert time.monotonic() - started < 31 + 30  # it gave up, it did not hang
    down = run_labkit(env, "down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert down.stdout == (f"lab {name!r} is down (its agent, pid {agent}, did not stop by "
                           "itself and was killed)\n")
    assert wait_until(lambda: not any(alive(p) for p in (agent, init, *holders)), 10)
    assert not list(state.iterdir())  # its socket, state file and log


def test_down_removes_its_socket_state_and_log(own_lab: tuple[str, dict[str, str], Path]) -> None:
    name, env, state = own_lab
    assert {p.name for p in state.iterdir()} == {f"{name}.sock", f"{name}.json", f"{name}.log"}
    done = run_labkit(env, "down", "--name", name)
    assert (done.returncode, done.stdout) == (0, f"lab {name!r} is down\n")
    assert not list(state.iterdir())
