# Property tests for the snippet parser and the renderer: whatever a chapter holds and whatever
# commands print, parsing never crashes, and rendered output never becomes a snippet or markup.
from __future__ import annotations

import importlib
import json
import re
from typing import Any

import markdown  # type: ignore[import-untyped]  # no stubs in the dev venv
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from labproject import ROOT, Html

from labkit.book.execute import Block, SnippetRun
from labkit.book.render import MAX_LINES, Provenance, render_chapter
from labkit.book.snippets import Chapter, parse
from labkit.model.errors import SnippetError
from labkit.model.result import Result

PATH = "docs_src/01-generated.md"
PROMPT = "root@calico-ipip-worker2:/#"
PROVENANCE = Provenance({"backend": "netns", "calico": "v3.23.5", "encapsulation": "VXLAN",
                         "kernel": "6.1"}, "live", 0.0)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- what chapters and commands are made of ---------------------------------------------------

# Characters that mean something to Markdown, HTML, jinja2 or a line reader, and a few that
# str.splitlines() breaks at but Markdown does not.
TRICKY = "`~<>/&{}%#*_[]()!=?:-+|\\\"' \t\r\n\x00\x0b\x0c\x1c\x85\u2028\u2029\ufffd"
WORDS = ["```", "~~~", "````", "```python labkit", "~~~python labkit", "</code>", "</pre>",
         "<script>alert(1)</script>", "{{ lab }}", "{% raw %}", "{#", "!!! danger", "=== \"x\"",
         "??? note", "    ", "- ", "1. ", "---", "<!--", "python", "labkit", "hide"]

text_piece = st.one_of(st.text(alphabet=TRICKY, max_size=12), st.sampled_from(WORDS),
                       st.text(max_size=8))
anything = st.lists(text_piece, max_size=12).map("".join)
"""Text with everything a command could print (as decoded text), in tricky combinations."""
decoded_bytes = st.binary(max_size=40).map(lambda b: b.decode("utf-8", errors="replace"))
# Whole lines that would end a code block or start markup if anything let them through.
DANGEROUS_LINES = ["```", "````", "`````", "~~~", "    ```", "```python labkit", "</code></pre>",
                   "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<!--",
                   "[link](https://example.invalid)", "<https://example.invalid>",
                   '!!! danger "x"', '=== "tab"', "<div markdown=\"1\">", "x"]
dangerous = st.lists(st.sampled_from(DANGEROUS_LINES), max_size=6).map("\n".join)
# A line that would close a code block, then markup: the shape of a real breakout attempt.
breakout = st.tuples(anything, st.sampled_from(["```", "````", "~~~", "   ```", "```\r"]),
                     st.sampled_from(DANGEROUS_LINES), anything).map("\n".join)
output = st.one_of(anything, decoded_bytes, dangerous, breakout,
                   st.lists(st.sampled_from(["", "line", "```", "x" * 3]), min_size=MAX_LINES - 2,
                            max_size=MAX_LINES + 5).map("\n".join))


def _prose_line(text: str) -> str:
    # Prose is a jinja2 template; a `{{` there is the author's, tested elsewhere.
    return re.sub(r"[{][{%#]", "{ ", text.replace("\r", "").replace("\n", " "))


prose = st.lists(st.one_of(text_piece, st.just(" ")), max_size=8).map(
    lambda parts: _prose_line("".join(parts)))


@st.composite
def other_fence(draw: st.DrawFn) -> str:
    """A fenced block that is not a snippet, possibly quoting one."""
    char = draw(st.sampled_from("`~"))
    length = draw(st.integers(3, 6))
    info = draw(st.sampled_from(["", "console", "markdown", "text", "python", "yaml"]))
    body = draw(st.lists(st.one_of(prose, st.sampled_from(
        ["```python labkit", "```", "~~~python labkit hide", "``` python labkit"])), max_size=5))
    indent = " " * draw(st.integers(0, 3))
    # A body line of the fence's own kind and length would close it: the author's problem.
    body = [line for line in body if not line.strip().startswith(char * 3)]
    return f"{indent}{char * length}{info}\n" + "".join(f"{b}\n" for b in body) + \
        f"{indent}{char * length}\n"


code_line = st.one_of(
    st.sampled_from(["x = 1", "lab.node('n').sh('ip route')", "s = '```'", "# ~~~",
                     "t = '</code><script>'", "u = '{{ lab }}'", "````python labkit", ""]),
    prose)


@st.composite
def labkit_snippet(draw: st.DrawFn) -> str:
    char = draw(st.sampled_from("``~"))
    length = draw(st.integers(3, 5))
    options = draw(st.sampled_from(["", "hide", "timeout=5", "lab=real", "lab=netns",
                                    "normalize=mac", "hide timeout=1.5"]))
    lines = draw(st.lists(code_line, max_size=5))
    lines = [line for line in lines if not line.strip().startswith(char * 3)]
    indent = " " * draw(st.integers(0, 3))
    return (f"{indent}{char * length}python labkit {options}\n"
            + "".join(f"{indent}{line}\n" for line in lines) + f"{indent}{char * length}\n")


chapter_text = st.lists(st.one_of(prose, other_fence(), labkit_snippet(), st.just("")),
                        max_size=10).map(lambda blocks: "# Generated\n\n" + "\n".join(blocks))


@st.composite
def runs_for(draw: st.DrawFn, chapter: Chapter) -> list[SnippetRun]:
    """A fabricated run for every snippet: commands that printed anything, some failures."""
    runs = []
    for snippet in chapter.snippets:
        run = SnippetRun(snippet, started=0.0)
        if snippet.only_on == "real":
            run.skipped = "needs a real cluster"
        for _ in range(draw(st.integers(0, 3))):
            result = Result(command=draw(anything) or "true", target="n", prompt=PROMPT,
                            stdout="", stderr="", output=draw(output), rc=0, started=0.0,
                            duration=0.0, invalid_bytes=draw(st.integers(0, 2)))
            block = Block("console", result=result)
            if draw(st.booleans()):
                block = Block("group", summary=draw(anything), children=[block])
            run.blocks.append(block)
        if draw(st.integers(0, 4)) == 0:
            run.error = SnippetError(snippet.path, snippet.line, draw(anything))
        runs.append(run)
    return runs


# -- reading fences the way Markdown does --------------------------------------------------

def lines_of(text: str) -> list[str]:
    """Lines as Markdown ends them: \\n, \\r\\n or a lone \\r (not \\x85, \\u2028...)."""
    return re.split(r"\r\n|\r|\n", text)


FENCE_LINE = re.compile(r"^( *)(`{3,}|~{3,})(.*)$")
# A tab, a collapsible or an admonition: its content is the lines indented 4 more.
CONTAINER = re.compile(r'^ *(?:===|\?\?\?\+?|!!!)[ +]')


def fences(page: str) -> list[tuple[str, str]]:
    """(info, body) of every fenced block, in the containers (tabs, admonitions) that
    Markdown nests them in: the body with the block's own indentation taken off each line.

    Indented 4 or more beyond its container, a fence-like line is an indented code block's
    text, not a fence (CommonMark 4.4, 4.5).
    """
    found = []
    lines = lines_of(page)
    containers = [0]  # where the content of each open container starts
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        if line.strip(" \t"):
            while len(containers) > 1 and indent < containers[-1]:
                containers.pop()
        relative = indent - containers[-1]
        if line.strip(" \t") and relative <= 3 and CONTAINER.match(line):
            containers.append(indent + 4)
            i += 1
            continue
        opening = FENCE_LINE.match(line)
        if (opening is None or relative > 3
                or (opening[2][0] == "`" and "`" in opening[3])):
            i += 1
            continue
        marks = opening[2]
        body = []
        i += 1
        while i < len(lines):
            line = lines[i]
            stripped = line.lstrip(" ")
            if (len(line) - len(stripped) < containers[-1] + 4 and stripped.startswith(marks)
                    and not stripped.strip(" \t").strip(marks[0])):
                break
            body.append(line[min(indent, len(line) - len(stripped)):])
            i += 1
        found.append((opening[3].strip(), "\n".join(body)))
        i += 1
    return found


def canonical(text: str) -> str:
    """Text as Markdown reads it: lines ended by \\n, a line of only spaces (or tabs) empty
    wherever it is, and no line endings at the end."""
    return "\n".join("" if not line.strip(" \t") else line
                     for line in lines_of(text)).rstrip("\n")


def shown_output(result: Result) -> str:
    """What the page's terminal must show for ``result``: the prompt, then the output."""
    kept = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", result.output)[:MAX_LINES]
    output = "".join(kept)
    if output and not output.endswith(("\n", "\r")):
        output += "\n"
    return f"{PROMPT} {result.command}\n{output}"


def terminal_text(info: str, body: str) -> str:
    """A ``labkit-console`` fence's body (a JSON list a line: prompt, command, output, status)
    as the terminal's text; any other fence's body as it is."""
    if info.strip() != "labkit-console":
        return body
    text = ""
    for line in body.splitlines():
        if line.strip():
            prompt, command, output, _status = json.loads(line)
            text += f"{prompt} {command}\n{output}"
    return text


def render(chapter: Chapter, runs: list[SnippetRun]) -> str:
    return render_chapter(chapter, runs, {}, PROVENANCE)


# -- the properties -------------------------------------------------------------------------

@SETTINGS
@given(st.one_of(chapter_text, anything))
def test_parsing_anything_gives_snippets_or_one_clear_error(text: str) -> None:
    try:
        chapter = parse(text, PATH)
    except SnippetError as exc:
        assert exc.path == PATH and 1 <= exc.line <= len(lines_of(text))
        return
    for snippet in chapter.snippets:
        span = text[snippet.start:snippet.end]
        assert span.lstrip(" ")[:3] in ("```", "~~~")
        # The code is the fence's body, less the fence's own indentation.
        assert all(line in span for line in snippet.code.splitlines())


@SETTINGS
@given(st.data())
def test_rendered_output_is_never_a_snippet_and_always_whole_in_a_fence(data: Any) -> None:
    text = data.draw(chapter_text)
    try:
        chapter = parse(text, PATH)
    except SnippetError:
        assume(False)
    runs = data.draw(runs_for(chapter))
    page = render(chapter, runs)

    again = parse(page, PATH)
    assert again.snippets == (), "rendered output turned into a snippet"

    bodies = [canonical(terminal_text(info, body)) for info, body in fences(page)]
    for run in runs:
        if run.snippet.hidden and not run.error:
            continue  # setup code: neither its source nor its output is shown
        if not run.snippet.hidden:
            # The snippet's source is on the page, whole, in a fence of its own.
            code = canonical(run.snippet.code)
            assert any(body == code for body in bodies), run.snippet.code
        if run.skipped:
            continue
        for result in run.results():
            shown = canonical(shown_output(result))
            assert any(shown in body for body in bodies), (result.command, result.output)
        if run.error:
            assert any(canonical(str(run.error)) in body for body in bodies)


# -- and in HTML, what a reader's browser gets ----------------------------------------------

class _Permissive(yaml.SafeLoader):
    pass


_Permissive.add_multi_constructor("!", lambda loader, suffix, node: None)


def _python_name(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """``!!python/name:labkit.figures.console.superfence``: the object, as MkDocs loads it."""
    module, _, name = suffix.rpartition(".")
    return getattr(importlib.import_module(module), name)


_Permissive.add_multi_constructor("tag:yaml.org,2002:python/name:", _python_name)


def site_markdown() -> markdown.Markdown:
    """A Markdown converter with the site's own extensions and their settings."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Permissive)
    names, settings_ = [], {}
    for entry in config["markdown_extensions"]:
        name, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        if name == "pymdownx.snippets":
            continue  # reads files; nothing here asks for one
        names.append(name)
        settings_[name] = options or {}
    return markdown.Markdown(extensions=names, extension_configs=settings_)


# What Markdown and its extensions produce for labkit's blocks; a tag outside this set
# could only have come from the content.
SAFE_TAGS = {"a", "code", "details", "div", "h1", "input", "label", "p", "pre", "small",
             "span", "summary", "ul", "li", "em", "strong", "hr", "h2", "h3", "br", "table",
             "thead", "tbody", "tr", "th", "td", "blockquote", "ol", "h4", "h5", "h6"}


@pytest.fixture(scope="module")
def converter() -> markdown.Markdown:
    return site_markdown()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(outputs=st.lists(output, min_size=1, max_size=3), commands=st.lists(anything, max_size=3))
def test_no_output_becomes_html(converter: markdown.Markdown, outputs: list[str],
                                commands: list[str]) -> None:
    chapter = parse("# Page\n\nSome text.\n\n```python labkit\nrun()\n```\n\nThe end.\n", PATH)
    run = SnippetRun(chapter.snippets[0], started=0.0)
    for index, text in enumerate(outputs):
        command = commands[index] if index < len(commands) else "cat out"
        run.blocks.append(Block("console", result=Result(
            command=command or "true", target="n", prompt=PROMPT, stdout=text, stderr="",
            output=text, rc=0, started=0.0, duration=0.0, invalid_bytes=1)))
    converter.reset()
    page = Html(converter.convert(render(chapter, [run])))
    assert {tag for tag, _ in page.tags} <= SAFE_TAGS, page.tags
    assert not page.scripts and not page.handlers
    links = [attrs for tag, attrs in page.tags if tag == "a"]
    assert all((a.get("href") or "").startswith("#") for a in links), links  # permalinks only
    assert "The end." in page.prose  # nothing swallowed the rest of the page


def test_the_converter_has_the_sites_extensions(converter: markdown.Markdown) -> None:
    # Otherwise the property above would prove nothing about the site.
    converter.reset()
    page = Html(converter.convert('!!! note "n"\n\n    x\n\n=== "T"\n\n    ```console\n'
                                  '    $ true\n    ```\n'))
    assert page.has("div", **{"class": "admonition note"})
    assert page.has("div", **{"class": "tabbed-set"})
    assert page.has("div", **{"class": "highlight"})


# Values quoted in the prose: Markdown-escaped, never markup.
PROSE_VALUE = st.lists(st.one_of(
    st.sampled_from([*DANGEROUS_LINES, "- item", "1. one", "# h", "> q", "---", "  ", "\t",
                                       "* x", "_y_", "**z**", "&amp;", "|a|b|", "{: .c}",
                                       "\\\\", "\\n\\n    code", "+ p", "~~~~", "???+ note"]),
    st.text(alphabet="`~<>/&{}%#*_[]()!=?:-+|\\\"' \n", max_size=10)), max_size=8).map(
        lambda parts: "".join(parts).replace("\\n", "\n"))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=PROSE_VALUE)
def test_a_value_quoted_in_the_prose_is_text(converter: markdown.Markdown, value: str) -> None:
    chapter = parse("# Page\n\nBefore {{ value }} after.\n\nThe end.\n", PATH)
    page_md = render_chapter(chapter, [], {"value": value}, None)
    converter.reset()
    page = Html(converter.convert(page_md))
    assert {tag for tag, _ in page.tags} <= {"h1", "a", "p", "br"}, page.tags
    assert not page.scripts and not page.handlers
    assert ("Before " + " ".join(value.split()) + " after.").replace("  ", " ") in \
        page.prose.replace("  ", " ")
    assert page.prose.endswith("The end.")


def test_the_authors_indented_text_after_a_box_stays_out_of_it(
        converter: markdown.Markdown) -> None:
    # Found by the property above: the author's indented code block right after the title
    # (where the page's banner goes) or after a snippet (its tabs) became part of the box.
    chapter = parse("# Page\n\n    indented-by-author\n\n```python labkit\nrun()\n```\n\n"
                    "    also-indented\n\nThe end.\n", PATH)
    run = SnippetRun(chapter.snippets[0], started=0.0)
    run.blocks.append(Block("console", result=Result(
        command="true", target="n", prompt=PROMPT, stdout="", stderr="", output="",
        rc=0, started=0.0, duration=0.0)))
    converter.reset()
    page = Html(converter.convert(render(chapter, [run])))
    # Each is its own indented code block, as on a page without labkit's boxes.
    assert "indented-by-author\n" in page.codes
    assert "also-indented\n" in page.codes
