# Authors' mistakes and whatever commands print, end to end through `labkit build`: one clear
# error at docs_src/<file>.md:<line>, and command output that stays data on the page.
from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path

import pytest
from labproject import Build, Html, Project, wait_until

from labkit.book.render import MAX_LINE_CHARS, MAX_LINES
from labkit.book.transcript import Store
from labkit.model import topology

NODE = "calico-ipip-worker2"
WHERE = re.compile(r"docs_src/[\w.-]+\.md:\d+")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")


def assert_one_error(build: Build, where: str, *what: str) -> str:
    """The build failed with one error at ``where`` saying ``what``, and no traceback."""
    shown = build.messages
    assert build.returncode != 0, shown
    assert "Traceback" not in build.stderr, build.stderr
    assert len(re.findall(r"^ERROR\b", shown, re.M)) == 1, shown
    assert set(WHERE.findall(shown)) == {where}, shown
    for text in what:
        assert text in shown, f"{text!r} not in:\n{shown}"
    return shown


def snippet(code: str, options: str = "") -> str:
    return f"```python labkit{' ' + options if options else ''}\n{code.strip()}\n```\n"


# -- malformed chapters: refused before anything runs -----------------------------------------

FENCE = "```python labkit"
MALFORMED = {
    "unclosed fence": (
        f"# Bad\n\n{FENCE}\nlab.node('{NODE}').sh('true')\n\nMore text, never closed.\n",
        FENCE, ["fence is never closed"]),
    "unknown option": (
        f"# Bad\n\n{FENCE} frobnicate=1\npass\n```\n", FENCE,
        ["unknown snippet option 'frobnicate'", "known: hide, lab, normalize, timeout"]),
    "timeout not a number": (
        f"# Bad\n\n{FENCE} timeout=soon\npass\n```\n", FENCE,
        ["timeout=soon is not a positive number of seconds"]),
    "timeout zero": (
        f"# Bad\n\n{FENCE} timeout=0\npass\n```\n", FENCE,
        ["timeout=0 is not a positive number of seconds"]),
    "unbalanced quote": (
        f'# Bad\n\n{FENCE} hide "oops\npass\n```\n', FENCE, ["cannot read the snippet options"]),
    "hide with a value": (
        f"# Bad\n\n{FENCE} hide=yes\npass\n```\n", FENCE, ["`hide` takes no value"]),
    "option given twice": (
        f"# Bad\n\n{FENCE} timeout=5 timeout=6\npass\n```\n", FENCE,
        ["snippet option 'timeout' given twice"]),
    "unknown lab": (
        f"# Bad\n\n{FENCE} lab=docker\npass\n```\n", FENCE, ["lab=docker: choose one of"]),
    "unknown normaliser": (
        f"# Bad\n\n{FENCE} normalize=nope\npass\n```\n", FENCE, ["unknown normaliser 'nope'"]),
    "misspelt marker": (
        "# Bad\n\n```python labkits\npass\n```\n", "```python labkits",
        ["did you mean `python labkit`?"]),
    "front matter not YAML": (
        "---\ntitle: [oops\nnormalize: []\n---\n# Bad\n", "normalize", ["not valid YAML"]),
    "front matter never closed": (
        "---\ntitle: oops\n# Bad\n", "---", ["front matter opened with `---` is never closed"]),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_chapter_is_one_error_at_its_line(project: Project, case: str) -> None:
    text, needle, what = MALFORMED[case]
    project.write("01-fine.md", "# Fine\n\nNothing to run here.\n")
    project.write("02-bad.md", text)
    build = project.build()
    assert_one_error(build, f"docs_src/02-bad.md:{project.line_of('02-bad.md', needle)}", *what)
    assert not project.site.exists()
    assert not project.agents()


def test_a_chapter_that_is_not_utf8_is_one_error_at_its_line(project: Project) -> None:
    (project.root / "docs_src" / "01-latin1.md").write_bytes(
        "# Cafe\n\nfine\n\nthe next line is Latin-1:\ncaf\xe9\n".encode("latin-1"))
    assert_one_error(project.build(), "docs_src/01-latin1.md:6", "not valid UTF-8")


# -- snippets that fail when they run ---------------------------------------------------------

def test_a_syntax_error_names_the_chapters_line(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"node = lab.node('{NODE}')\nx = = 1\n"))
    assert_one_error(project.build(), f"docs_src/01-a.md:{project.line_of('01-a.md', 'x = =')}",
                     "SyntaxError")


def test_an_exception_names_the_line_that_raised_it(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet("def ratio(a, b):\n    return a / b\n")
                  + "\nThen:\n\n" + snippet("total = 3\nshare = ratio(total, 0)\n"))
    shown = assert_one_error(
        project.build(),
        # The line inside the function, in the earlier snippet: where the author must look.
        f"docs_src/01-a.md:{project.line_of('01-a.md', 'return a / b')}",
        "ZeroDivisionError: division by zero", "in: return a / b")
    assert "labkit/" not in shown  # nothing from labkit's own files


EXITS = {"sys.exit(3)": "SystemExit: 3", "exit()": "SystemExit",
         "raise SystemExit": "SystemExit", "raise GeneratorExit": "GeneratorExit"}


@pytest.mark.parametrize("call", EXITS, ids=list(EXITS))
def test_a_snippet_that_exits_fails_at_its_line_and_does_not_end_the_build_quietly(
        project: Project, call: str) -> None:
    # exit() must not pass for success: the build would publish a site without the chapter.
    project.write("01-a.md", "# A\n\n" + snippet(
        f"import sys\nlab.node('{NODE}').sh('true')\n{call}"))
    assert_one_error(project.build(), f"docs_src/01-a.md:{project.line_of('01-a.md', call)}",
                     EXITS[call], f"in: {call}")
    assert not project.site.exists()


@pytest.mark.parametrize(("code", "name", "listed"), [
    ("pod = lab.pod('app-nope')", "app-nope", "pods"),
    ("x = 1\nlab.sh('worker9', 'ip route')", "worker9", "nodes and pods"),
    ("print('before')\npods = lab.select(node='calico-ipip-worker3', app='app')",
     "calico-ipip-worker3", "nodes"),
], ids=["pod", "target", "node"])
def test_an_unknown_name_lists_the_names_that_exist(project: Project, code: str, name: str,
                                                    listed: str) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(code))
    spec = topology.load(project.root / "manifests")
    shown = assert_one_error(project.build(),
                             f"docs_src/01-a.md:{project.line_of('01-a.md', name)}",
                             f"no node or pod named {name!r}")
    names = {"pods": [p.name for p in spec.pods], "nodes": [n.name for n in spec.nodes]}
    for kind in ("pods", "nodes"):
        for existing in names[kind]:
            # Each error lists exactly the kind of thing that was asked for.
            assert (existing in shown) == (kind in listed), (existing, shown)


def test_a_failing_command_shows_the_command_its_status_and_stderr(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(
        f"node = lab.node('{NODE}')\nnode.sh('ip route')\nnode.sh('ls /no/such/dir')"))
    assert_one_error(
        project.build(), f"docs_src/01-a.md:{project.line_of('01-a.md', 'ls /no/such')}",
        f"`ls /no/such/dir` on {NODE} exited with 2",
        "ls: cannot access '/no/such/dir': No such file or directory")


def test_a_command_that_is_not_installed_says_so(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('no-such-tool -v')"))
    assert_one_error(project.build(), "docs_src/01-a.md:4",
                     f"`no-such-tool` is not installed on {NODE}")


def test_a_snippet_that_hangs_is_stopped_by_its_timeout(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(
        f"lab.node('{NODE}').sh('sleep 600', timeout=900)", "timeout=2"))
    started = time.monotonic()
    build = project.build()
    assert time.monotonic() - started < 60
    assert_one_error(build, "docs_src/01-a.md:3", "the snippet did not finish within 2s")
    assert not project.agents()


def test_a_python_loop_that_never_ends_is_stopped_too(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet("while True:\n    pass", "timeout=1"))
    assert_one_error(project.build(), "docs_src/01-a.md:3", "did not finish within 1s")


def test_a_command_past_its_own_timeout_is_killed_and_named(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('sleep 600', timeout=1)"))
    assert_one_error(project.build(), "docs_src/01-a.md:4",
                     f"`sleep 600` on {NODE} did not finish within 1s and was killed")


def test_an_undefined_name_in_the_prose_is_one_error_at_its_line(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"node = lab.node('{NODE}')")
                  + "\nThe node is {{ node.name }}, its pod is {{ pod.name }}.\n")
    assert_one_error(project.build(), "docs_src/01-a.md:7", "'pod' is undefined")


def test_a_template_syntax_error_in_the_prose_is_one_error_at_its_line(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet("x = 1") + "\nFine.\n\n{% if x %}never closed\n")
    assert_one_error(project.build(), "docs_src/01-a.md:9", "template error")


# -- --keep-going ---------------------------------------------------------------------------

def test_keep_going_shows_the_error_on_its_page_and_runs_the_rest(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('echo recorded-before')"))
    assert project.build().returncode == 0
    recorded = project.transcript("01-a.md").read_bytes()

    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('ls /no/such/dir')")
                  + "\n" + snippet(f"after = lab.node('{NODE}').sh('echo still-running')")
                  + "\nAfter: {{ after.stdout }}\n")
    project.write("02-b.md", "# B\n\n" + snippet(f"lab.node('{NODE}').sh('echo next-chapter')"))
    build = project.build("--keep-going")
    # Like `make -k`: every page built, then exit 1 so that CI sees it.
    assert build.returncode == 1, build.messages
    assert "Traceback" not in build.stderr
    # The author still learns, in the terminal, which chapter has a failing snippet.
    assert "docs_src/01-a.md" in build.messages and "fail" in build.messages

    page = Html(project.page("01-a.md"))
    assert page.has("div", **{"class": "admonition failure"})
    assert "代码段失败：docs_src/01-a.md:3" in page.text
    assert any("`ls /no/such/dir` on calico-ipip-worker2 exited with 2" in c and
               "No such file or directory" in c for c in page.codes)
    assert any("still-running" in c for c in page.codes)
    assert "After: still-running" in page.text
    assert any("next-chapter" in c for c in Html(project.page("02-b.md")).codes)
    # A failed chapter does not replace the last good recording.
    assert project.transcript("01-a.md").read_bytes() == recorded


def test_keep_going_names_each_failure_in_the_terminal(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet(f"lab.node('{NODE}').sh('ls /no/such/dir')"))
    project.write("02-b.md", "# B\n\n" + snippet("1 / 0"))
    build = project.build("--keep-going")
    assert build.returncode == 1, build.messages
    # Where and why, as without --keep-going: the author should not have to hunt the pages.
    assert f"docs_src/01-a.md:4: `ls /no/such/dir` on {NODE} exited with 2" in build.messages
    # And, last, every failure by name after every page was built.
    summary = build.messages.splitlines()[-3:]
    assert summary[0].startswith("labkit: built site/ in ")
    assert summary[0].endswith(", but 2 snippet(s) failed (--keep-going; their pages show "
                               "the errors):")
    assert summary[1:] == [
        f"  docs_src/01-a.md:4: `ls /no/such/dir` on {NODE} exited with 2 (expected 0)",
        "  docs_src/02-b.md:4: ZeroDivisionError: division by zero"]
    assert (project.site / "02-b" / "index.html").is_file()


def test_a_value_a_failed_snippet_never_set_shows_as_a_marker(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet("1 / 0\nanswer = 42")
                  + "\nThe answer is {{ answer }}.\n")
    build = project.build("--keep-going")
    assert build.returncode == 1, build.messages
    page = Html(project.page("01-a.md"))
    # The marker is emphasised, not shown with its Markdown asterisks.
    assert "The answer is ⚠ answer 未定义（前面的代码段失败了）." in page.text
    assert "**" not in page.text


def test_keep_going_after_a_timeout_gives_later_commands_their_own_output(
        project: Project) -> None:
    # The first command is still running in the lab when its snippet is stopped; its answer
    # must never be taken for the answer to a later command.
    project.write("01-a.md", "# A\n\n"
                  + snippet(f"lab.node('{NODE}').sh('sleep 2; echo too-late')", "timeout=1")
                  + "\n" + snippet(f"import time\ntime.sleep(2.5)\n"
                                   f"later = lab.node('{NODE}').sh('echo mine')")
                  + "\nLater: {{ later.stdout }}\n")
    build = project.build("--keep-going")
    assert build.returncode == 1, build.messages
    page = Html(project.page("01-a.md"))
    assert "did not finish within 1s" in page.text
    assert "Later: mine" in page.text
    # Its output line, that is; the snippet's source in the other tab does say `echo too-late`.
    assert not any("\ntoo-late\n" in code for code in page.codes)
    assert any(code.endswith("# echo mine\nmine\n") for code in page.codes)


# -- command output is data -----------------------------------------------------------------

PAYLOADS = {
    "script": '<script>alert("labkit-xss")</script>',
    "end of code": '</code></pre><img src=x onerror="alert(2)"><pre><code>',
    "fences": "```\n```` not closed\n~~~\n`code`",
    "jinja": "{{ lab }} {% if true %}jinja{% endif %} {# hidden? #} {{ 7 * 7 }}",
    "markdown": "**bold-labkit** _em_ [a-link](https://example.invalid/x) <b>b-labkit</b> "
                "&amp; &lt;",
    "blocks": '!!! danger "labkit-admonition"\n    inside\n\n=== "labkit-tab"\n- item-labkit\n'
              "1. one-labkit\n---\n# heading-labkit\n> quote-labkit\n    indented-labkit",
    "comment": "<!-- everything after this would vanish",
}


def _printing(name: str, text: str) -> str:
    # base64 keeps the payload out of the command line, so only the output carries it.
    encoded = base64.b64encode(text.encode()).decode()
    return f"out_{name.replace(' ', '_')} = node.sh('echo {encoded} | base64 -d')\n"


@pytest.fixture(scope="module")
def data_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One build whose commands print markup, jinja, fences, bad bytes and too many lines."""
    project = Project.create(tmp_path_factory.mktemp("data") / "project")
    code = f"node = lab.node('{NODE}')\n" + "".join(_printing(n, t) for n, t in PAYLOADS.items())
    prose = "".join(f"\nQuoted {name}: {{{{ out_{name.replace(' ', '_')}.stdout }}}}\n\n"
                    f"As code: {{{{ out_{name.replace(' ', '_')}.stdout | code }}}}\n"
                    for name in PAYLOADS)
    project.write("01-data.md",
                  "# Data\n\n" + snippet(code) + prose + "\nThe end-of-page-marker.\n")
    printf = r"printf 'caf\303\251 \377\376 nul:\000: end\n'"
    project.write("02-bytes.md", "# Bytes\n\n" + snippet(f"lab.node('{NODE}').sh({printf!r})"))
    project.write("03-long.md", "# Long\n\n" + snippet(f"lab.node('{NODE}').sh('seq 1 1234')"))
    build = project.build()
    assert build.returncode == 0, build.messages
    return project


def test_output_that_looks_like_markup_or_script_is_shown_literally(data_project: Project) -> None:
    raw = data_project.page("01-data.md")
    page = Html(raw)
    for name, text in PAYLOADS.items():
        # Each output is in a console block, whole and exactly as printed.
        assert any(text + "\n" in code for code in page.codes), name
    assert not any("labkit-xss" in s or "alert(2)" in s for s in page.scripts)
    assert not any("onerror" in h for h in page.handlers)
    assert not page.has("img", src="x")
    assert not page.has("a", href="https://example.invalid/x")
    for injected in ("<b>b-labkit</b>", "<strong>bold-labkit</strong>", ">labkit-admonition<",
                     ">labkit-tab<", "<li>item-labkit", "<li>one-labkit", "<h1 id=\"heading",
                     "<blockquote>", "<pre><code>indented-labkit", "<em>em</em>"):
        assert injected not in raw, injected
    # Nothing swallowed the rest of the page (an unclosed fence, comment or tag would).
    assert "The end-of-page-marker." in page.text


def test_output_quoted_in_the_prose_is_text_too(data_project: Project) -> None:
    page = Html(data_project.page("01-data.md"))
    for name, text in PAYLOADS.items():
        for line in text.splitlines():
            # Shown as written, in the page's own text (runs of spaces fold, as in any prose).
            assert " ".join(line.split()) in page.prose, (name, line)
        # `| code` makes it one inline code span, whatever backticks it holds.
        assert text.replace("\n", " ").strip() in page.codes, name


def test_bytes_that_are_not_utf8_are_replaced_and_noted(data_project: Project) -> None:
    page = Html(data_project.page("02-bytes.md"))
    assert any("café \ufffd\ufffd nul:" in code and ": end\n" in code for code in page.codes)
    assert "的输出含 2 个不是 UTF-8 的字节，页面上显示为 �。" in page.text
    # The note names the command as it was typed: no HTML entities shown to the reader.
    assert "printf 'caf\\303\\251 \\377\\376 nul:\\000: end\\n' 的输出含" in page.text


def test_output_over_the_limit_is_cut_with_a_note_and_only_its_shown_part_transcribed(
        data_project: Project) -> None:
    page = Html(data_project.page("03-long.md"))
    shown = next(code for code in page.codes if "seq 1 1234" in code)
    assert shown.splitlines()[1:] == [str(n) for n in range(1, MAX_LINES + 1)]
    assert (f"`seq 1 1234` 的输出共 1234 行，页面只显示前 {MAX_LINES} 行，"
            f"省略了 {1234 - MAX_LINES} 行。").replace("`", "") in page.text
    # The transcript keeps what the page shows, and the size and sha256 of all of it.
    whole = "".join(f"{n}\n" for n in range(1, 1235)).encode()
    assert len(whole) == 9 * 2 + 90 * 3 + 900 * 4 + 235 * 5 == 5_063
    digest = hashlib.sha256(whole).hexdigest()
    assert (f"transcript 只保存了 seq 1 1234 的输出在页面上显示的部分，以及完整输出的大小"
            f"（5063 字节）和 sha256（{digest}）。") in page.text
    transcript = Store(data_project.transcripts).load("docs_src/03-long.md")
    assert transcript is not None
    [result] = transcript.snippets[0].results()
    assert result.output == "".join(f"{n}\n" for n in range(1, MAX_LINES + 1))
    assert result.abridged["output"] == {"bytes": 5_063, "sha256": digest, "lines": 1234,
                                         "wide": [], "left_out": 0}
    text = data_project.transcript("03-long.md").read_text(encoding="utf-8")
    assert {"201", "1033", "1234"}.isdisjoint(line.strip() for line in text.splitlines())


def test_output_with_very_long_lines_is_cut_and_never_stalls_the_build(project: Project) -> None:
    # Pygments' console lexer takes time quadratic in a long run of word characters: a
    # 3 MB line of output once kept a build busy for hours.
    project.write("01-wide.md", "# Wide\n\n" + snippet(
        f"node = lab.node('{NODE}')\n"
        "node.sh(\"head -c 3000000 /dev/zero | tr '\\\\0' x; echo; echo after-the-long-line\")\n"
        "node.sh(\"for i in $(seq 200); do head -c 3999 /dev/zero | tr '\\\\0' y; echo; done\")\n"
        "node.sh(\"for i in $(seq 24); do head -c 3999 /dev/zero | tr '\\\\0' z; echo; done\")"))
    started = time.monotonic()
    build = project.build(timeout=240)
    assert build.returncode == 0, build.messages
    assert time.monotonic() - started < 120
    page = Html(project.page("01-wide.md"))
    [shown] = [code for code in page.codes if "\nafter-the-long-line\n" in code]
    assert "\n" + "x" * MAX_LINE_CHARS + "…\nafter-the-long-line\n" in shown
    assert (f"的输出有 1 行长于 {MAX_LINE_CHARS} 个字符，页面上每行只显示前 {MAX_LINE_CHARS} 个，"
            f"共省略了 {3_000_000 - MAX_LINE_CHARS} 个字符。") in page.text
    assert any(code.count("y" * 3999 + "\n") == 200 for code in page.codes)
    assert any(code.count("z" * 3999 + "\n") == 24 for code in page.codes)
    # A 3 MB output is not 3 MB in git: the transcript keeps the page's part and a digest
    # (the 224 lines of y's and z's, 0.9 MB, are shown whole, so they are kept whole).
    path = project.transcript("01-wide.md")
    assert path.stat().st_size < 1_000_000
    assert "x" * (MAX_LINE_CHARS + 1) not in path.read_text(encoding="utf-8")
    transcript = Store(project.transcripts).load("docs_src/01-wide.md")
    assert transcript is not None
    first = transcript.snippets[0].results()[0]
    assert first.output == "x" * MAX_LINE_CHARS + "\nafter-the-long-line\n"
    whole = ("x" * 3_000_000 + "\nafter-the-long-line\n").encode()
    assert first.abridged["output"] == {
        "bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(), "lines": 2,
        "wide": [0], "left_out": 3_000_000 - MAX_LINE_CHARS}
    # The 200 lines of y's are shown whole: kept whole.
    assert transcript.snippets[0].results()[1].abridged == {}
    # Replayed from that transcript, the page shows the same terminals and notes.
    before = page.codes, page.text.split("完整输出的大小")[1].split("。")[0]
    assert project.build("--replay").returncode == 0
    again = Html(project.page("01-wide.md"))
    assert (again.codes, again.text.split("完整输出的大小")[1].split("。")[0]) == before


# -- a snippet that ends the interpreter ----------------------------------------------------

DEATHS = {
    "os._exit(0)": "it exited with status 0",
    "os.kill(os.getpid(), signal.SIGKILL)": "it was killed by SIGKILL",
    "os.kill(os.getpid(), signal.SIGTERM)": "it was killed by SIGTERM",
}


@pytest.mark.parametrize("call", DEATHS, ids=list(DEATHS))
def test_a_snippet_that_ends_the_interpreter_fails_the_build_at_its_line(
        project: Project, call: str) -> None:
    # Run where its death cannot take the build with it: the build says where, exits non-zero,
    # and publishes nothing.
    project.write("01-a.md", "# A\n\n" + snippet(
        f"import os, signal\nlab.node('{NODE}').sh('true')\n{call}"))
    build = project.build()
    shown = assert_one_error(build, "docs_src/01-a.md:3", DEATHS[call],
                             "the snippet ended the process running its chapter")
    assert "built site/" not in shown
    assert not project.site.exists()
    # Its lab dies with the process that ran the chapter (the kernel's parent-death signal).
    assert wait_until(lambda: not project.agents()), project.agents()


def test_keep_going_past_a_snippet_that_ends_the_interpreter(project: Project) -> None:
    project.write("01-a.md", "# A\n\n" + snippet("import os\nos._exit(0)"))
    project.write("02-b.md", "# B\n\n" + snippet(f"lab.node('{NODE}').sh('echo next-chapter')"))
    build = project.build("--keep-going")
    assert build.returncode == 1, build.messages
    assert "docs_src/01-a.md:3: the snippet ended the process running its chapter" in \
        build.messages
    page = Html(project.page("01-a.md"))
    assert page.has("div", **{"class": "admonition failure"})
    assert "it exited with status 0" in page.text
    assert any("next-chapter" in c for c in Html(project.page("02-b.md")).codes)


# -- prose is text, not code ----------------------------------------------------------------

def payloads(witness: Path) -> dict[str, str]:
    """Ways prose could reach the build machine; each would create ``witness``."""
    touch = f"touch {witness}"
    return {
        "lipsum's globals": f"{{{{ lipsum.__globals__['os'].popen('{touch}').read() }}}}",
        "a value's class": "{{ lab.__class__.__init__.__globals__['os'].popen('"
                           + touch + "').read() }}",
        "a module a snippet imported": f"{{{{ os.popen('{touch}').read() }}}}",
        "a string's format": "{{ '{0.__class__.__init__.__globals__}'.format(lab) }}",
    }


@pytest.mark.parametrize("case", list(payloads(Path("x"))))
def test_prose_cannot_run_code_live_on_replay_or_on_a_prose_only_rebuild(
        project: Project, tmp_path: Path, case: str) -> None:
    witness = tmp_path / "witness"
    good = "# A\n\n" + snippet(f"import os\nlab.node('{NODE}').sh('true')") + "\nok\n"
    project.write("01-a.md", good)
    assert project.build().returncode == 0  # records the transcript
    evil = good.replace("\nok\n", "\n" + payloads(witness)[case] + "\n")
    project.write("01-a.md", evil)
    line = project.line_of("01-a.md", "{{")
    for how in ([], ["--replay"]):  # a prose-only edit: the first is a rebuild from cache
        build = project.build(*how)
        shown = assert_one_error(build, f"docs_src/01-a.md:{line}", "in the text: ")
        assert "SecurityError" in shown or "unsafe" in shown, shown
        assert not witness.exists()
        assert "running live" not in shown  # no lab: the prose is all that changed
