# The transcript store: exact round trips, readable files, atomic writes, bad files reported.
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from copies import (  # noqa: F401 - fixtures
    Recorded,
    recorded_fixture,
    recorded_once_fixture,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.book.transcript import FORMAT, SnippetRecord, Store, Transcript, dumps, loads
from labkit.model.errors import SnippetError, TranscriptError
from labkit.model.result import Result

CHAPTER = "docs_src/09-store.md"
INVENTORY = {
    "info": {"backend": "netns", "encapsulation": "VXLAN", "calico": "v3.23.5"},
    "nodes": [{"name": "calico-ipip-worker2", "prompt": "root@calico-ipip-worker2:/#"}],
    "pods": [{"name": "app-1", "prompt": "root@app-1:/#"}],
}
# Outputs that are hard to write as YAML and must still come back byte for byte.
TRICKY = {
    "ip route": ("default via 169.254.1.1 dev eth0 \n169.254.1.1 dev eth0 scope link \n", ""),
    "ls /nope": ("", "ls: cannot access '/nope': No such file or directory\n"),
    "both": ("out\n", "err\n"),
    "colours": ("\x1b[1mbold\x1b[0m\r\n\tindented by a tab\n", ""),
    "no newline": ("abc", ""),
    "trailing space": ("abc ", ""),
    "leading spaces": ("   indented first line\nsecond\n", ""),
    "empty": ("", ""),
    "not utf-8": ("\ufffd\ufffdok\n", ""),
    "chinese": ("目的 MAC：ee:ee:ee:ee:ee:ee\n", ""),
    "yaml-looking": ("key: value\n- item\n# not a comment\n---\n", ""),
    "line separator": ("a\u2028b\x85c\n", ""),
}


def result(command: str, stdout: str, stderr: str, target: str = "app-1",
           **extra: object) -> Result:
    values: dict[str, object] = {
        "command": command, "target": target, "prompt": f"root@{target}:/#",
        "stdout": stdout, "stderr": stderr, "output": stdout + stderr,
        "rc": 2 if stderr else 0, "started": 1795700000.123456, "duration": 0.004321,
    }
    values.update(extra)
    return Result(**values)  # type: ignore[arg-type]


def a_transcript(results: list[Result] | None = None) -> Transcript:
    results = results if results is not None else [
        result(cmd, out, err, invalid_bytes=2 if cmd == "not utf-8" else 0)
        for cmd, (out, err) in TRICKY.items()
    ]
    calls = [{"op": "run", "target": r.target, "command": r.command, "timeout": 30.0,
              "result": r.to_dict()} for r in results]
    background = result("tcpdump -c 2 -n -i cali1 icmp", "2 packets captured\n", "",
                        target="calico-ipip-worker2", extra={"container": "x"})
    calls += [
        {"op": "start", "target": "calico-ipip-worker2", "command": background.command,
         "ready": "listening on", "timeout": 10.0, "handle": "7"},
        {"op": "stop", "handle": "7", "signal": "", "timeout": 30.0,
         "result": background.to_dict()},
        {"op": "run", "target": "app-1", "command": "sleep 99", "timeout": 1.0,
         "error": {"type": "CommandTimeout", "timeout": 1.0,
                   "result": result("sleep 99", "", "", timed_out=True, rc=137).to_dict()}},
    ]
    return Transcript(CHAPTER, "k" * 64, "0.1.0", 1795700000.5, INVENTORY,
                      [SnippetRecord(3, "a.sh('ip route')\n", calls, None, 1795700000.1),
                       SnippetRecord(9, "pass\n", [], None, 1795700001.0)],
                      inputs={"lab": "netns"})


def saved(tmp_path: Path, transcript: Transcript | None = None) -> tuple[Store, Path]:
    store = Store(tmp_path / "transcripts")
    return store, store.save(transcript or a_transcript())


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- what is written, and that it reads back exactly ----------------------------------------

def test_every_call_reads_back_exactly(tmp_path: Path) -> None:
    original = a_transcript()
    store, _ = saved(tmp_path, original)
    loaded = store.load(CHAPTER)
    assert loaded is not None
    assert loaded.snippets[0].calls == original.snippets[0].calls
    assert [r.output for r in loaded.snippets[0].results()][:len(TRICKY)] == \
        [out + err for out, err in TRICKY.values()]
    assert loaded.inventory == INVENTORY and loaded.recorded == original.recorded
    assert loaded.snippets[0].started == 1795700000.1 and loaded.inputs == {"lab": "netns"}


@settings(max_examples=200, deadline=None)
@given(stdout=st.text(), stderr=st.text())
def test_any_output_reads_back_exactly(stdout: str, stderr: str) -> None:
    transcript = a_transcript([result("cmd", stdout, stderr)])
    loaded = loads(dumps(transcript), Path("t.yaml"))
    assert loaded.snippets[0].results()[0] == transcript.snippets[0].results()[0]


def test_outputs_are_written_line_for_line_for_review(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    text = path.read_text(encoding="utf-8")
    # A literal block, trailing spaces and all, as the terminal showed it: a change in one
    # route is a one-line diff.
    assert "      output: |\n        default via 169.254.1.1 dev eth0 \n" \
           "        169.254.1.1 dev eth0 scope link \n" in text
    assert "目的 MAC：ee:ee:ee:ee:ee:ee" in text
    # What follows from the call is not repeated: the command once, no empty stderr.
    assert text.count("command: ip route") == 1
    assert text.startswith("# labkit transcript")
    assert f"format: {FORMAT}\n" in text
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_background_command_sits_where_it_started() -> None:
    # The page shows the capture's output where the capture started (a second terminal);
    # the drift check compares recordings in that same order.
    record = a_transcript().snippets[0]
    commands = [r.command for r in record.results()]
    assert commands[len(TRICKY)] == "tcpdump -c 2 -n -i cali1 icmp"
    assert "sleep 99" not in commands  # it raised: it has no result to show


def test_the_checksum_the_cache_compares_is_the_files(tmp_path: Path) -> None:
    store, path = saved(tmp_path)
    loaded = store.load(CHAPTER)
    assert loaded is not None
    written = path.read_text(encoding="utf-8").rsplit("checksum: ", 1)[1].strip()
    assert loaded.checksum == written == a_transcript().checksum


# -- atomic writes ------------------------------------------------------------------------

def test_a_write_that_fails_halfway_leaves_the_previous_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, path = saved(tmp_path)
    before = path.read_bytes()
    newer = a_transcript()
    newer.recorded += 60

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save(newer)
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_a_build_killed_mid_write_leaves_the_previous_file(tmp_path: Path) -> None:
    store, path = saved(tmp_path)
    before = path.read_bytes()
    # Another process starts writing a newer recording and is SIGKILLed before the rename.
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from labkit.book.transcript import Store\n"
        "store = Store(Path(sys.argv[1]))\n"
        f"t = store.load({CHAPTER!r}); t.recorded += 60\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "store.save(t)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path.parent)],
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert path.read_bytes() == before
    assert store.load(CHAPTER) is not None
    assert len(leftovers(path.parent)) == 1  # a SIGKILL leaves its temporary file ...
    store.save(a_transcript())  # ... and the next write clears it away
    assert leftovers(path.parent) == []


def test_a_write_in_progress_is_not_cleared_away(tmp_path: Path) -> None:
    store, path = saved(tmp_path)
    live = path.parent / f".{path.name}.{os.getppid()}.abc123.tmp"  # a running process's
    live.write_text("half")
    store.save(a_transcript())
    assert live.exists()


# -- bad files ------------------------------------------------------------------------------

def _bad(tmp_path: Path, change: str) -> tuple[Store, Path]:
    store, path = saved(tmp_path)
    text = path.read_text(encoding="utf-8")
    if change == "corrupt":
        text = text.replace("calls:\n", "calls: [\n", 1)
    elif change == "hand-edited":
        text = text.replace("169.254.1.1 dev eth0 scope link", "169.254.1.1 dev eth1 scope link")
    elif change == "truncated":
        text = text[: len(text) // 2]
    elif change == "not a transcript":
        text = "- just\n- a list\n"
    elif change == "older format":
        text = text.replace(f"format: {FORMAT}\n", "format: 1\n")
    path.write_text(text, encoding="utf-8")
    return store, path


@pytest.mark.parametrize(("change", "reason"), [
    ("corrupt", "not valid YAML"),
    ("hand-edited", "checksum mismatch"),
    ("truncated", "not valid YAML|checksum mismatch|missing or malformed"),
    ("not a transcript", "not a labkit transcript"),
    ("older format", "format 1"),
])
def test_a_bad_file_is_reported_with_its_path(tmp_path: Path, change: str, reason: str) -> None:
    store, path = _bad(tmp_path, change)
    with pytest.raises(TranscriptError, match=reason) as caught:
        store.load(CHAPTER)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_wrong_structure_with_a_valid_checksum_is_reported(tmp_path: Path) -> None:
    broken = a_transcript()
    broken.snippets[0].calls[0]["result"]["exit_code"] = 0  # a field Result does not have
    store, path = saved(tmp_path, broken)
    with pytest.raises(TranscriptError, match=r"missing or malformed field .*exit_code") as caught:
        store.load(CHAPTER)
    assert str(caught.value).startswith(f"{path}: ")


def test_no_transcript_is_not_an_error(tmp_path: Path) -> None:
    assert Store(tmp_path / "transcripts").load(CHAPTER) is None


# -- the store during a build ---------------------------------------------------------------

@pytest.mark.parametrize("how", ["a failing snippet", "Ctrl-C", "keep-going"])
def test_a_build_that_does_not_finish_a_chapter_keeps_its_recording(
        recorded: Recorded, how: str) -> None:
    copy = recorded.copy
    path = copy.transcripts / "01-same-node.yaml"
    before = path.read_bytes()
    ending = {"a failing snippet": "assert False, 'broken'", "Ctrl-C": "raise KeyboardInterrupt",
              "keep-going": "assert False, 'broken'"}[how]
    copy.edit("01-same-node.md", 'addr = a.sh("ip addr show eth0")',
              f'addr = a.sh("ip addr show eth0")\n{ending}')
    if how == "keep-going":
        pages = copy.build(keep_going=True)
        assert pages["01-same-node.md"].errors
    else:
        with pytest.raises((SnippetError, KeyboardInterrupt)):
            copy.build()
    assert path.read_bytes() == before
    assert leftovers(copy.transcripts) == []
