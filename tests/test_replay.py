# Replay: the site from transcripts with no lab at all, identical to the live build but for
# the provenance markers; and no lab means a loud failure, never old output passed off as new.
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from copies import (  # noqa: F401 - fixtures
    ROOT,
    Recorded,
    forbid_labs,
    recorded_fixture,
    recorded_once_fixture,
)

import labkit.backends.netns.launcher
from labkit.book.render import _utc
from labkit.book.transcript import Store
from labkit.model.errors import LabUnavailable, SnippetError, TranscriptError

# The provenance markers, the only things a replayed page may have that the live one has not:
# each snippet's line, the title of the page's opening box, and a sentence in that box.
LIVE_MARK = "本次构建实时运行"
TITLE_MARK = "（回放自记录）"
BANNER_REPLAY = "    本次构建没有启动实验室：输出回放自 transcript，也就是那次实时构建的记录。\n\n"


def replay_mark(recorded_at: float) -> str:
    return f"回放自 transcript（记录于 {_utc(recorded_at)}）"


BLOCK_REPLAY, BLOCK_LIVE = " · 回放自 transcript</small>", f" · {LIVE_MARK}</small>"
"""The end of each block's line: the page's line says the rest once."""


def live_mark(recorded_at: float) -> str:
    return f"{LIVE_MARK}（{_utc(recorded_at)}）"


def as_live(markdown: str, recorded_at: float) -> str:
    """A replayed page with its provenance markers put back to the live build's."""
    return (markdown.replace(replay_mark(recorded_at), live_mark(recorded_at))
            .replace(BLOCK_REPLAY, BLOCK_LIVE).replace(BANNER_REPLAY, "")
            .replace(TITLE_MARK, ""))


def recorded_times(copy_source: Path) -> dict[str, float]:
    store = Store(copy_source / "transcripts")
    times = {}
    for path in sorted(copy_source.glob("*.md")):
        transcript = store.load(f"docs_src/{path.name}")
        if transcript is not None:
            times[path.name] = transcript.recorded
    return times


def test_replay_with_no_lab_gives_the_live_pages(recorded: Recorded,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    times = recorded_times(recorded.copy.source)
    replayed = recorded.copy.build(mode="replay")
    assert replayed.keys() == recorded.pages.keys()
    for name, page in replayed.items():
        live = recorded.pages[name].markdown
        if page.how == "static":
            assert page.markdown == live
            continue
        assert page.how == "replay"
        # The only differences are the named provenance markers ...
        assert LIVE_MARK in live and LIVE_MARK not in page.markdown
        assert replay_mark(times[name]) in page.markdown and BANNER_REPLAY in page.markdown
        box = next(p for p in page.markdown.split("\n\n") if p.startswith("??? abstract"))
        assert TITLE_MARK in box and TITLE_MARK not in live
        # ... and with those put back, the page is the live page, byte for byte.
        assert as_live(page.markdown, times[name]) == live


def test_replayed_html_is_the_live_html(recorded: Recorded, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    from benchmarks.bench import plain_site

    forbid_labs(monkeypatch)
    times = recorded_times(recorded.copy.source)
    replayed = recorded.copy.build(mode="replay")
    sites = {}
    for how, pages in (("live", {n: p.markdown for n, p in recorded.pages.items()}),
                       ("replay", {n: p.markdown for n, p in replayed.items()})):
        sites[how] = plain_site(recorded.copy.root, pages, tmp_path / how)
    for name, recorded_at in times.items():
        page = f"{Path(name).stem}/index.html"
        live = (sites["live"] / page).read_text(encoding="utf-8")
        replay = (sites["replay"] / page).read_text(encoding="utf-8")
        assert replay != live
        banner = re.sub(r"\s+", " ", BANNER_REPLAY.strip())
        restored = replay.replace(replay_mark(recorded_at), live_mark(recorded_at))
        restored = restored.replace(BLOCK_REPLAY, BLOCK_LIVE)
        restored = restored.replace(f"<p>{banner}</p>\n", "").replace(TITLE_MARK, "")
        assert restored == live


def test_a_replayed_page_says_when_its_outputs_were_printed(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    store = Store(recorded.copy.transcripts)
    transcript = store.load("docs_src/01-same-node.md")
    assert transcript is not None
    # Say it was recorded a day earlier, so no time on the page can be the replay's own.
    transcript.recorded -= 86400
    for snippet in transcript.snippets:
        assert snippet.started is not None
        snippet.started -= 86400
    store.save(transcript)
    page = recorded.copy.build(mode="replay")["01-same-node.md"].markdown
    printed = {_utc(s.started) for s in transcript.snippets if s.started}
    [whole] = [x for x in page.splitlines() if "labkit-page-provenance" in x]
    # The page says once that it is replayed, and when the transcript was recorded ...
    assert replay_mark(transcript.recorded) in whole
    lines = [x for x in page.splitlines() if "labkit-provenance" in x and x != whole]
    assert lines
    for line in lines:
        # ... and each snippet's line when it ran in the live build, and that it is replayed.
        when = re.search(r"运行于 (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC) · ", line)
        assert when is not None and when[1] in printed
        assert line.rstrip().endswith(BLOCK_REPLAY)


def test_replay_refuses_a_changed_snippet_naming_its_line(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    copy.edit("01-same-node.md", 'addr = a.sh("ip addr show eth0")',
              'addr = a.sh("ip -4 addr show eth0")')
    line = copy.line_of("01-same-node.md", "ip -4 addr show eth0") - 1  # the fence's line
    with pytest.raises(TranscriptError, match=rf"^docs_src/01-same-node\.md:{line}: this "
                                              "snippet changed since .* was recorded"):
        copy.build(mode="replay")


def test_replay_refuses_a_transcript_of_another_snippet_count(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    copy.edit("01-same-node.md", "先进 pod", '```python labkit\nassert True\n```\n\n先进 pod')
    with pytest.raises(TranscriptError, match=r"01-same-node\.yaml: it has 2 snippets but "
                                              r"docs_src/01-same-node\.md has 3"):
        copy.build(mode="replay")


@pytest.mark.parametrize("damage", ["corrupt", "hand-edited", "missing"])
def test_a_bad_transcript_stops_a_replay_with_its_path(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    path = copy.transcripts / "01-same-node.yaml"
    if damage == "missing":
        path.unlink()
    else:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("calls:", "calls: {", 1) if damage == "corrupt"
                        else text.replace("scope global eth0", "scope global eth1"),
                        encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"docs_src/01-same-node\.md: no usable "
                                              r"transcript to replay") as caught:
        copy.build(mode="replay")
    assert str(path) in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_keep_going_replays_the_rest_and_says_what_is_missing(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_labs(monkeypatch)
    copy = recorded.copy
    path = copy.transcripts / "01-same-node.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("eth0", "eth9"), encoding="utf-8")
    pages = copy.build(mode="replay", keep_going=True)
    broken = pages["01-same-node.md"]
    assert broken.how == "failed"
    assert '!!! failure "本章的输出无法回放"' in broken.markdown
    assert "checksum mismatch" in broken.markdown and str(path) in broken.markdown
    assert "```console" not in broken.markdown  # no output at all, rather than old output
    assert pages["02-setup.md"].how == "replay"
    assert any(str(path) in line and "warning" in line for line in copy.logged)


def test_the_live_build_warns_about_a_bad_transcript_and_records_it_again(
        recorded: Recorded) -> None:
    copy = recorded.copy
    path = copy.transcripts / "01-same-node.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("eth0", "eth9"), encoding="utf-8")
    pages = copy.build()
    assert pages["01-same-node.md"].how == "live"
    assert pages["02-setup.md"].how == "cached"
    warning = next(line for line in copy.logged if "warning" in line)
    assert str(path) in warning and "checksum mismatch" in warning
    assert Store(copy.transcripts).load("docs_src/01-same-node.md") is not None


def test_no_lab_fails_loudly_and_offers_replay(recorded: Recorded,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def not_linux() -> None:
        raise LabUnavailable("the netns lab needs Linux namespaces; this is darwin")

    monkeypatch.setattr(labkit.backends.netns.launcher, "preflight", not_linux)
    copy = recorded.copy
    # A fresh clone: good transcripts are committed, but this checkout printed none of them.
    shutil.rmtree(copy.root / ".labkit")
    with pytest.raises(LabUnavailable) as caught:
        copy.build()
    message = str(caught.value)
    assert "docs_src/01-same-node.md must run live" in message
    assert "this is darwin" in message and "nox -s build -- --replay" in message
    # It said so instead of replaying: nothing was built from the transcripts.
    assert not any("cached" in line or "replay" in line.split(":")[-1] for line in copy.logged)


def test_no_lab_through_the_cli_fails_and_the_site_is_not_built(recorded: Recorded,
                                                                tmp_path: Path) -> None:
    copy = recorded.copy
    shutil.rmtree(copy.root / ".labkit")
    # The build runs in mkdocs' process: simulate a machine without namespaces there.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import labkit.backends.netns.launcher as launcher\n"
        "from labkit.model.errors import LabUnavailable\n"
        "def preflight():\n"
        "    raise LabUnavailable('this kernel has user namespaces turned off')\n"
        "launcher.preflight = preflight\n"
    )
    env = {"PYTHONPATH": f"{hook}:{ROOT}"}
    done = copy.cli("build", env=env)
    assert done.returncode != 0
    assert "user namespaces turned off" in done.stderr
    assert "nox -s build -- --replay" in done.stderr
    assert not (copy.root / "site").exists()
    replay = copy.cli("build", "--replay", env=env)
    assert replay.returncode == 0, replay.stderr
    html = (copy.root / "site" / "01-same-node" / "index.html").read_text(encoding="utf-8")
    assert "回放自 transcript（记录于" in html and LIVE_MARK not in html


def test_replay_keeps_failures_of_snippet_code_as_failures(
        recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    # The snippets' Python runs again over the recorded answers: its assertions too.
    forbid_labs(monkeypatch)
    copy = recorded.copy
    store = Store(copy.transcripts)
    transcript = store.load("docs_src/01-same-node.md")
    assert transcript is not None
    call = transcript.snippets[1].calls[0]
    for stream in ("stdout", "output"):
        call["result"][stream] = call["result"][stream].replace("/32 scope", "/24 scope")
    store.save(transcript)
    with pytest.raises(SnippetError, match=r"docs_src/01-same-node\.md:\d+: AssertionError"):
        copy.build(mode="replay")


def test_a_replay_does_not_wait_for_a_lab_to_settle() -> None:
    import time

    from labkit.api.lab import Lab
    from labkit.api.recording import Replayer

    inventory = {"info": {"backend": "netns"}, "nodes": [], "pods": []}
    started = time.monotonic()
    Lab(Replayer(inventory, "docs_src/x.md")).pause(5.0)
    assert time.monotonic() - started < 0.5


def test_the_site_build_runs_where_libc_has_no_linux_calls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader's machine that is not Linux replays: no prctl, no renameat2 in its libc.
    import ctypes

    from labkit.backends.netns import linux
    from labkit.integrations import publish, site

    class NotLinuxLibc:
        def __getattr__(self, name: str) -> object:
            raise AttributeError(f"dlsym: symbol not found: {name}")

    monkeypatch.setattr(linux, "_libc", NotLinuxLibc())
    monkeypatch.setattr(ctypes, "CDLL", lambda *_, **__: NotLinuxLibc())
    site._die_with_parent()
    old, new = tmp_path / "site", tmp_path / "built"
    old.mkdir()
    (old / "index.html").write_text("old")
    new.mkdir()
    (new / "index.html").write_text("new")
    publish.publish(new, old)
    assert (old / "index.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
