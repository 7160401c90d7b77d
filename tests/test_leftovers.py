# One rule for what a dead process left: gone or zombie is dead, another user's is alive.
"""Every cleaner (temporary folders, transcripts' temporary files, private site folders)
asks :func:`labkit.model.leftovers.left_by_dead_process`; these provoke each case with
real processes."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.model import leftovers, scratch
from labkit.model.leftovers import left_by_dead_process


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child that has exited and that nobody has reaped yet."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while _state(child.pid) != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    yield child.pid
    child.wait()


@pytest.fixture
def running() -> Iterator[int]:
    child = subprocess.Popen(["sleep", "60"])
    yield child.pid
    child.kill()
    child.wait()


def test_a_zombie_is_dead(zombie: int) -> None:
    assert _state(zombie) == "Z" and Path(f"/proc/{zombie}").exists()
    assert left_by_dead_process(str(zombie)) is True


def test_a_running_process_and_this_one_are_alive(running: int) -> None:
    assert left_by_dead_process(str(running)) is False
    assert left_by_dead_process(str(os.getpid())) is False


def test_a_reaped_process_is_dead() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert left_by_dead_process(str(child.pid)) is True


@pytest.mark.parametrize("name", ["", "abc", "12a", "-5", "0"])
def test_what_is_no_pid_is_never_taken_for_a_dead_one(name: str) -> None:
    assert left_by_dead_process(name) is False


def test_another_users_process_is_alive() -> None:
    if os.getuid() != 0:
        if os.stat("/proc/1").st_uid == os.getuid():
            pytest.skip("PID 1 is this user's own here, and no other user's process is "
                        "known to exist")
        assert left_by_dead_process("1") is False
        return
    # As root every process may be signalled: ask as `nobody` about this (root's) process,
    # with the module's own source, which `nobody` may not be able to import from here.
    code = (Path(leftovers.__file__).read_text(encoding="utf-8")
            + f"\nprint(left_by_dead_process({str(os.getpid())!r}))\n")
    done = subprocess.run(["/usr/bin/python3", "-"], input=code, capture_output=True,
                          text=True, user=65534, group=65534, extra_groups=[], cwd="/",
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_sweep_removes_a_zombies_folder_and_keeps_a_live_ones(
        tmp_path: Path, zombie: int, running: int) -> None:
    dead = tmp_path / f"labkit-build-{zombie}-abcdefgh"
    live = tmp_path / f"labkit-lab-{running}-abcdefgh"
    own = tmp_path / f"labkit-build-{os.getpid()}-abcdefgh"
    for folder in (dead, live, own):
        (folder / "inside").mkdir(parents=True)
    assert scratch.sweep(tmp_path) == [dead]
    assert not dead.exists() and live.is_dir() and own.is_dir()


def test_the_store_clears_a_zombies_temporary_transcript(tmp_path: Path, zombie: int) -> None:
    from labkit.book.transcript import Store

    left = tmp_path / f".01-a.yaml.{zombie}.x1y2z3.tmp"
    kept = tmp_path / f".02-b.yaml.{os.getpid()}.x1y2z3.tmp"
    left.write_text("half")
    kept.write_text("being written")
    assert Store(tmp_path).clean() == [left]
    assert kept.exists()

