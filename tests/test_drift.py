# The drift check: `labkit check` passes on an unchanged lab, and fails with a unified diff
# naming docs_src/<file>.md:<line> when what a command prints really changed.
from __future__ import annotations

import re

from copies import (  # noqa: F401 - fixtures
    Copy,
    Recorded,
    recorded_fixture,
    recorded_once_fixture,
)

from labkit.book import snippets
from labkit.book.drift import compare
from labkit.book.transcript import Store, Transcript

ADDR = 'addr = a.sh("ip addr show eth0")'


def doctor(recorded: Recorded, chapter: str, old: str, new: str) -> int:
    """Change what a transcript says the commands printed, everywhere, as another lab would
    have printed it; saved with a valid checksum.  Returns the first snippet's line."""
    store = Store(recorded.copy.transcripts)
    transcript = store.load(f"docs_src/{chapter}")
    assert transcript is not None
    lines = []
    for record in transcript.snippets:
        for call in record.calls:
            result = call.get("result", {})
            if old in result.get("output", ""):
                for stream in ("stdout", "output"):
                    result[stream] = result[stream].replace(old, new)
                lines.append(record.line)
    assert lines, f"{old!r} is in no output of {chapter}"
    store.save(transcript)
    return lines[0]


def test_an_unchanged_lab_passes(recorded: Recorded) -> None:
    done = recorded.copy.cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert re.search(r"labkit check: \d+ snippets compared, 0 drifted or failed", done.stderr)


def test_a_changed_output_fails_with_a_diff_naming_the_snippet(recorded: Recorded) -> None:
    # The recording says the pod's address had a broadcast address: the live lab's has none.
    line = doctor(recorded, "01-same-node.md", "/32 scope global eth0",
                  "/32 brd 10.244.244.255 scope global eth0")
    done = recorded.copy.cli("check")
    assert done.returncode == 1
    out = done.stdout
    assert f"docs_src/01-same-node.md:{line}: the output drifted from the transcript" in out
    assert "--- docs_src/transcripts/01-same-node.yaml (recorded)\n" in out
    assert f"+++ docs_src/01-same-node.md:{line} (live)\n" in out
    assert re.search(r"^-    inet 10\.244\.\d+\.\d+/32 brd 10\.244\.244\.255 scope global eth0$",
                     out, re.M)
    assert re.search(r"^\+    inet 10\.244\.\d+\.\d+/32 scope global eth0$", out, re.M)
    # Only that snippet drifted; the other chapter was compared and passed.
    assert out.count("drifted from the transcript") == 1
    assert "1 drifted or failed" in done.stderr


def test_a_changed_device_is_drift_whatever_the_normalisers(recorded: Recorded) -> None:
    # Chapter 01 declares mac, ifindex, time: they must not hide this kind of change.
    store = Store(recorded.copy.transcripts)
    transcript = store.load("docs_src/01-same-node.md")
    assert transcript is not None
    chapter = snippets.load(recorded.copy.source / "01-same-node.md", recorded.copy.root)
    live = transcript.snippets
    doctor(recorded, "01-same-node.md", "scope global eth0", "scope global eth1")
    changed = store.load("docs_src/01-same-node.md")
    assert changed is not None
    compared, drifts = compare(chapter, changed, live, "t.yaml")
    assert compared == 2 and len(drifts) == 1
    assert drifts[0].where == chapter.snippets[1].where
    assert "-    inet" in drifts[0].diff and "eth1" in drifts[0].diff


def test_random_macs_and_timings_are_not_drift(recorded: Recorded) -> None:
    # The kernel picks a new MAC for every pod each time: the recording has another one,
    # wherever that pod's MAC shows.
    store = Store(recorded.copy.transcripts)
    transcript = store.load("docs_src/01-same-node.md")
    assert transcript is not None
    output = transcript.snippets[1].calls[0]["result"]["output"]
    mac = re.search(r"link/ether (\S+)", output)
    assert mac is not None and mac[1] != "ee:ee:ee:ee:ee:ee"
    doctor(recorded, "01-same-node.md", mac[1], "02:00:00:00:be:ef")
    done = recorded.copy.cli("check")
    assert done.returncode == 0, done.stdout


def test_a_hand_edited_transcript_is_reported_with_its_path(recorded: Recorded) -> None:
    path = recorded.copy.transcripts / "02-setup.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("blackhole", "unreachable"),
                    encoding="utf-8")
    done = recorded.copy.cli("check")
    assert done.returncode == 1
    assert f"docs_src/02-setup.md:1: the transcript cannot be used: {path}: checksum " \
           "mismatch" in done.stdout


def test_a_missing_transcript_fails_the_check(recorded: Recorded) -> None:
    (recorded.copy.transcripts / "02-setup.yaml").unlink()
    done = recorded.copy.cli("check")
    assert done.returncode == 1
    assert "docs_src/02-setup.md:1: no transcript (docs_src/transcripts/02-setup.yaml)" \
        in done.stdout


def test_a_snippet_changed_since_recording_is_named(recorded: Recorded) -> None:
    copy = recorded.copy
    copy.edit("01-same-node.md", ADDR, 'addr = a.sh("ip addr show dev eth0")')
    line = copy.line_of("01-same-node.md", "ip addr show dev eth0") - 1
    done = copy.cli("check")
    assert done.returncode == 1
    assert f"docs_src/01-same-node.md:{line}: the snippet changed since " \
           "docs_src/transcripts/01-same-node.yaml was recorded" in done.stdout


def _edit_as_recorded(copy: Copy, code: str) -> Transcript:
    """Replace chapter 01's ``addr = ...`` line with ``code``, in the chapter and in its
    transcript alike: the snippet is unchanged since its recording, only the lab differs."""
    copy.edit("01-same-node.md", ADDR, code)
    store = Store(copy.transcripts)
    transcript = store.load("docs_src/01-same-node.md")
    assert transcript is not None
    transcript.snippets[1].code = transcript.snippets[1].code.replace(ADDR, code)
    store.save(transcript)
    return transcript


def test_a_snippet_that_now_fails_is_named(recorded: Recorded) -> None:
    copy = recorded.copy
    # Recorded as it now is, but from a lab where eth7 existed.
    _edit_as_recorded(copy, 'addr = a.sh("ip addr show eth7")')
    done = copy.cli("check")
    assert done.returncode == 1
    line = copy.line_of("01-same-node.md", "ip addr show eth7")
    assert re.search(rf"docs_src/01-same-node\.md:{line - 1}: the snippet failed on the live "
                     rf"lab: docs_src/01-same-node\.md:{line}: `ip addr show eth7` .* exited "
                     "with 1", done.stdout)


def test_a_snippet_that_ends_the_interpreter_fails_the_check_at_its_line(
        recorded: Recorded) -> None:
    # Run in-process, `os._exit(0)` would end the check early with exit 0, as if nothing
    # drifted; run like the build runs a chapter, it is a failure at its line, and the
    # next chapter is still compared.
    copy = recorded.copy
    transcript = _edit_as_recorded(copy, "import os; os._exit(0)")
    line = copy.line_of("01-same-node.md", "os._exit(0)")
    done = copy.cli("check")
    assert done.returncode == 1, done.stdout + done.stderr
    start = transcript.snippets[1].line
    assert f"docs_src/01-same-node.md:{start}: the snippet ended the process running its " \
           "chapter (it exited with status 0" in done.stdout, (line, done.stdout)
    # Chapter 02's snippets ran and matched: counted as compared, not as failures.
    compared = re.search(r"labkit check: (\d+) snippets compared, 1 drifted or failed",
                         done.stderr)
    chapter = snippets.load(copy.source / "02-setup.md", copy.root)
    assert compared is not None and int(compared[1]) >= len(chapter.snippets), done.stderr
