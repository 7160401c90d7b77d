# The suite itself: a machine that cannot run a lab skips, a lab that fails to build fails, and
# --require-lab (CI) turns every lab-dependent skip into a failure.
"""Each case runs pytest on a few of the real lab tests in a child process whose Python is
changed at start-up by a ``sitecustomize`` module: either this machine "cannot" run a lab
(the launcher's preflight says so) or the replica's plan is broken (the node's ``eth0`` is
renamed, so the lab cannot be built). The lab's agent runs that Python too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from labproject import ROOT

import labkit
from labkit.model.errors import LabBuildFailed, LabUnavailable

CANNOT = """
    from labkit.model.errors import LabUnavailable
    from labkit.backends.netns import launcher

    def preflight():
        raise LabUnavailable("this test's machine has no user namespaces")

    launcher.preflight = preflight
"""
BROKEN = """
    from labkit.backends.netns import plan

    real = plan.node

    def node(*args, **kwargs):
        batch = real(*args, **kwargs)
        batch.ip[:] = [line.replace(" eth0", " eth9") for line in batch.ip]
        return batch

    plan.node = node
"""
# The real clusters' cases of the contract suite are not the replica's: the patch above does
# not touch them (kind's skip for want of Docker, native's own preflight: test_native.py).
NOT_REAL = "not kind and not native"
# One test of each kind that needs a lab: the contract suite's `lab`, the chapters' `lab`
# (sybil), the isolation suite's own lab and the CLI's detached one.
LAB_TESTS = ["tests/test_contract.py::test_a_background_command_is_stopped_like_ctrl_c",
             "tests/test_isolation.py", "tests/test_cli.py::test_sh_exits_with_the_commands"
             "_status_and_keeps_its_streams", "docs_src/01-same-node.md"]


def patched(tmp_path: Path, code: str) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(code))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(site)]))


def pytest_run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-ra", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    last = done.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


def test_a_machine_that_cannot_run_a_lab_skips_with_its_reason(tmp_path: Path) -> None:
    done = pytest_run(patched(tmp_path, CANNOT), *LAB_TESTS, "-k", NOT_REAL)
    counts = summary(done)
    assert done.returncode == 0, done.stdout
    assert counts.get("skipped", 0) >= 4 and not counts.get("passed"), done.stdout
    assert "no lab available: this test's machine has no user namespaces" in done.stdout


def test_with_require_lab_every_such_skip_fails(tmp_path: Path) -> None:
    done = pytest_run(patched(tmp_path, CANNOT), "--require-lab", *LAB_TESTS, "-k", NOT_REAL)
    counts = summary(done)
    assert done.returncode == 1, done.stdout
    assert not counts.get("skipped") and not counts.get("passed"), done.stdout
    for where in ("test_contract.py", "test_isolation.py", "test_cli.py", "01-same-node.md"):
        assert re.search(rf"(FAILED|ERROR) \S*{re.escape(where)}", done.stdout), where


def test_a_lab_that_fails_to_build_is_an_error_not_a_skip(tmp_path: Path) -> None:
    env = patched(tmp_path, BROKEN)
    done = pytest_run(env, *LAB_TESTS, "-k", NOT_REAL)
    counts = summary(done)
    assert done.returncode == 1, done.stdout
    assert not counts.get("skipped"), done.stdout
    # The Calico lab's tests (the plan is Calico's; the Flannel lab and the CLI's lab, whose
    # Python this test does not change, still pass).
    for where in ("test_contract.py::test_a_background_command_is_stopped_like_ctrl_c"
                  "[netns-calico]", "test_isolation.py::", "docs_src/01-same-node.md::"):
        assert re.search(rf"^ERROR \S*{re.escape(where)}.*", done.stdout, re.M), where
    assert "LabBuildFailed: the lab could not be built" in done.stdout
    assert 'Cannot find device "eth9"' in done.stdout


def test_open_lab_tells_a_broken_build_from_a_machine_that_cannot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", patched(tmp_path, BROKEN)["PYTHONPATH"])
    with pytest.raises(LabBuildFailed) as caught:
        labkit.open_lab()
    assert not isinstance(caught.value, LabUnavailable)
    assert "eth9" in str(caught.value)
