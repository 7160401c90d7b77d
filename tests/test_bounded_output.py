# A command's output is bounded: at most 16 MiB (or its `keep=`) of each stream is kept, the
# rest counted, and said so on the page and in the transcript, whatever the command prints.
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from labproject import Html, Project, processes

import labkit
from labkit.book.transcript import Store
from labkit.model.output import Output, interleave

NODE = "calico-ipip-worker2"
MIB = 1024 * 1024


def snippet(code: str, options: str = "") -> str:
    return f"```python labkit{' ' + options if options else ''}\n{code.strip()}\n```\n"


# -- what is kept, in which order (no lab) ----------------------------------------------------

def test_each_stream_keeps_its_first_bytes_and_counts_the_rest() -> None:
    output = Output(keep=10)
    output.add(1, b"0123456", stamp=1)
    output.add(2, b"abc", stamp=2)
    output.add(1, b"789XYZ", stamp=3)
    output.add(2, b"defghijklmn", stamp=4)
    output.settle()
    assert output.stream(1) == b"0123456789"
    assert output.stream(2) == b"abcdefghij"
    assert output.lost() == {"stdout": {"kept": 10, "dropped": 3},
                             "stderr": {"kept": 10, "dropped": 4}}


def test_streams_are_interleaved_by_when_they_were_written_not_when_they_were_read() -> None:
    output = Output()
    # Read stdout's two writes first, though stderr wrote between them.
    output.add(1, b"one\n", stamp=10)
    output.add(1, b"three\n", stamp=30)
    output.add(2, b"two\n", stamp=20)
    output.settle()
    assert interleave(output.stream(1), output.stream(2), output.order()) == \
        b"one\ntwo\nthree\n"


def test_settling_part_way_keeps_later_writes_for_later() -> None:
    output = Output()
    output.add(1, b"a", stamp=1)
    output.add(1, b"c", stamp=3)
    output.settle(before=2)  # only what was written by time 2 is known to be complete
    output.add(2, b"b", stamp=2)  # late: its stream was read after stdout's
    output.settle()
    assert interleave(output.stream(1), output.stream(2), output.order()) == b"abc"


def test_a_byte_at_a_time_costs_a_piece_per_switch_of_stream_not_per_write() -> None:
    output = Output()
    for n in range(100_000):
        output.add(1, b"y", stamp=n)
    output.add(2, b"!", stamp=100_000)
    output.settle()
    assert len(output.pieces) == 2
    assert output.order() == [1, 100_000, 2, 1]


@pytest.mark.parametrize("keep", [-1, 129 * MIB, 1.5, True])
def test_a_keep_out_of_range_is_refused_saying_the_range(keep: object) -> None:
    with pytest.raises(ValueError, match=r"keep=.*from 0 to 134217728 \(128 MiB\)"):
        labkit.model.output.check_keep(keep)  # type: ignore[arg-type]


# -- through a real lab and a real build (the session's shared lab: `lab`) ------------------

def test_keep_bounds_what_a_command_returns_and_counts_the_rest(lab: labkit.Lab) -> None:
    node = lab.node(NODE)
    # 300000 bytes on stdout, 5 on stderr, in that order.
    result = node.sh("head -c 300000 /dev/zero | tr '\\0' y; echo oops >&2", keep=1000)
    assert result.stdout == "y" * 1000
    assert result.stderr == "oops\n"
    assert result.output == "y" * 1000 + "oops\n"
    assert result.dropped == {"stdout": {"kept": 1000, "dropped": 299_000}}
    assert node.sh("echo small").dropped == {}


def test_ready_text_printed_past_the_limit_is_still_seen(lab: labkit.Lab) -> None:
    node = lab.node(NODE)
    with node.start("head -c 100000 /dev/zero | tr '\\0' y; echo; echo READY; sleep 30",
                    ready="READY", keep=100) as background:
        pass
    result = background.result
    assert result is not None
    assert result.stdout == "y" * 100
    assert result.dropped == {"stdout": {"kept": 100, "dropped": 100_000 + 1 + 6 - 100}}


def sample_memory(token: str, stop: threading.Event, peaks: dict[str, int]) -> None:
    """Until ``stop``: the most memory the build's processes held at once (the sum of their
    proportional set sizes, sampled), and the highest peak RSS (VmHWM) of any one of them."""
    while not stop.is_set():
        total = 0
        for pid in processes(token):
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # it ended between the listing and the reading
            pss = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            total += int(pss[1]) * 1024 if pss else 0
            if hwm:
                peaks["process"] = max(peaks["process"], int(hwm[1]) * 1024)
        peaks["tree"] = max(peaks["tree"], total)
        time.sleep(0.05)


def test_yes_for_the_whole_default_timeout_stays_small_and_the_lab_still_answers(
        tmp_path: Path) -> None:
    # `sh("yes", timeout=1)` once took a build to 2.2 GB, and past ~128 MB of output the
    # agent's frame limit lost the connection. Now: 16 MiB of stdout kept, the rest counted.
    project = Project.create(tmp_path / "project")
    project.write("01-yes.md", "# Yes\n\n" + snippet(f"""
node = lab.node('{NODE}')
try:
    node.sh('yes')
except labkit.CommandTimeout as exc:
    result = exc.result
else:
    raise AssertionError('yes ended by itself')
assert result.timed_out and result.duration >= 30
assert result.stdout == 'y\\n' * (8 * 1024 * 1024)
assert result.dropped['stdout']['kept'] == 16 * 1024 * 1024
assert result.dropped['stdout']['dropped'] > 0
assert node.sh('echo still-answering').stdout == 'still-answering\\n'
""", "timeout=120"))
    peaks = {"tree": 0, "process": 0}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(project.token, stop, peaks))
    process = project.start()
    sampler.start()
    try:
        _, err = process.communicate(timeout=300)
    finally:
        stop.set()
        sampler.join()
    assert process.returncode == 0, err
    print(f"\npeak memory of the build's processes together: {peaks['tree'] / MIB:.0f} MiB; "
          f"highest peak RSS of one of them: {peaks['process'] / MIB:.0f} MiB")
    assert 0 < peaks["tree"] < 300 * 1000 * 1000
    assert 0 < peaks["process"] < 300 * 1000 * 1000
    page = Html(project.page("01-yes.md"))
    [shown] = [code for code in page.codes if code.startswith("root@") and "# yes\n" in code]
    terminal = shown.splitlines()
    assert terminal[1:202] == ["y"] * 200 + [f"root@{NODE}:/# echo still-answering"]
    dropped = re.search(r"yes 的标准输出超过了每个流的保留上限：实验室只保留了前 16777216 "
                        r"字节，其后的 (\d+) 字节没有保留", page.text)
    assert dropped is not None and int(dropped[1]) > 0, page.text
    assert "still-answering" in "".join(page.codes)
    # The transcript says the same, and holds the page's 200 lines, not 16 MiB.
    path = project.transcript("01-yes.md")
    assert path.stat().st_size < 100_000
    transcript = Store(project.transcripts).load("docs_src/01-yes.md")
    assert transcript is not None
    timeout = transcript.snippets[0].calls[0]["error"]["result"]
    assert timeout["dropped"]["stdout"] == {"kept": 16 * MIB, "dropped": int(dropped[1])}
    assert timeout["abridged"]["output"]["bytes"] == 16 * MIB
    assert timeout["abridged"]["output"]["lines"] == 8 * MIB
