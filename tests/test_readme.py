# The README's set-up line as a new user meets it: as root without sudo, and through sudo.
"""The system-packages line is run with stand-ins for ``apt-get`` and ``sudo`` on ``PATH``
(nothing is installed): it must reach apt-get with the packages in both worlds, and name
every package CI installs for the same purpose."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"iproute2", "iputils-ping", "iputils-arping", "tcpdump", "uidmap", "procps",
            "bird", "catatonit", "python3", "python3-venv"}
"""What the lab and the build need from Debian (the README's own list, written down here)."""


def readme_line() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    [line] = [x for x in text.splitlines() if "apt-get install" in x]
    return line


def run_line(tmp_path: Path, with_sudo: bool) -> list[str]:
    """Run the README's line where ``apt-get`` (and ``sudo``, if wanted) only log their use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    if with_sudo:
        (bin_dir / "sudo").write_text(f'#!/bin/sh\necho "sudo $1" >> {log}\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    # Only the stand-ins are on PATH: no real sudo or apt-get is reachable.
    result = subprocess.run(["/bin/sh", "-c", readme_line()], capture_output=True, text=True,
                            env={"PATH": str(bin_dir)}, timeout=30)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("with_sudo", [False, True], ids=["root-without-sudo", "user-with-sudo"])
def test_the_system_packages_line_works_with_and_without_sudo(tmp_path: Path,
                                                              with_sudo: bool) -> None:
    calls = run_line(tmp_path, with_sudo)
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert len(installs) == 1
    assert set(installs[0].split()[3:]) >= PACKAGES  # apt-get install -y <packages>
    assert "apt-get update" in calls and calls.index("apt-get update") < calls.index(installs[0])
    assert ("sudo apt-get" in calls) == with_sudo


def test_ci_installs_what_the_readme_names() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    apt = re.search(r"apt-get install[^\n]*\\\n([^\n]*\\\n)*[^\n]*", ci)
    assert apt is not None
    named = {word for word in readme_line().split("apt-get install -y", 1)[1].split()}
    assert set(apt[0].replace("\\", " ").split()) >= named >= PACKAGES
