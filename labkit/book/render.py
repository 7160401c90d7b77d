# Turns a chapter and its snippets' runs into plain Markdown (mkdocs-material flavoured).
"""The renderer.

Prose is a jinja2 template over the chapter's namespace (so ``{{ pod.ip }}``
always agrees with the output beside it); fenced code in prose is left as
written.  Each snippet becomes its commands' output in ``console`` blocks with
the prompt of the node or pod it ran in, a provenance line, and its Python
source in a second tab.  Command output is data: it is put inside a fence
longer than any backtick run it contains, never templated, never parsed as
Markdown or HTML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.sandbox
import markupsafe

from ..figures import console
from ..figures.markdown import fence, indented, lines
from ..model.errors import SnippetError
from ..model.result import Result
from .excerpt import MAX_LINE_CHARS, MAX_LINES, abridge, excerpt
from .execute import Block, SnippetRun
from .snippets import Chapter

STREAM_NAMES = {"stdout": "标准输出", "stderr": "标准错误"}
LABKIT_META = ("normalize", "fresh_lab", "lab", "labs", "replica")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}<>&|#])")
# What makes a line of prose start a block: a list item, an admonition (!!!), a collapsible
# (???), a tab (===), a rule or setext underline, a fence (~~~). Mid-line the same characters
# are text, so only a value's line starts need them neutralised.
BLOCK_START = re.compile(r"[-+](?=[ \t]|$)|\d+[.)](?=[ \t]|$)|([-!?=~:+])\1\1|[=-]+[ \t]*$")


@dataclass(frozen=True)
class Provenance:
    """Where the outputs of a page came from."""

    info: dict[str, Any]
    """The lab's facts (backend, encapsulation, kernel, versions)."""
    mode: str
    """``live`` (run during this build) or ``replay`` (from a transcript)."""
    recorded: float
    """When the outputs were printed (the live run's time, for a replay too)."""
    others: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The facts of the other labs the page's chapter used, by lab name."""
    borrowed: dict[str, Any] | None = None
    """The facts of the real cluster whose recorded outputs the page shows for the snippets
    only it can run (``lab=real`` on the replica), if any."""
    differs: tuple[str, ...] = ()
    """How the page's lab differs from a real cluster, one line each, for a replica's page
    (from ``docs_src/differences.yaml``: :mod:`labkit.book.differences`)."""

    def stamp(self, started: float | None = None) -> str:
        """What differs from block to block: when it ran, and whether this build ran it."""
        when = f"运行于 {_utc(started or self.recorded)}"
        return f"{when} · {'本次构建实时运行' if self.mode == 'live' else '回放自 transcript'}"

    def describe(self) -> str:
        """The whole provenance, once per page: lab, versions, when, live or replayed."""
        info = self.info
        if info.get("backend") == "netns":
            # The replica runs no Calico (or flanneld): it is built by their rules, and says so.
            parts = ["netns 复刻实验室", f"按 {cni_text(info)} 的规则复刻"]
        else:
            parts = [LAB_NAMES.get(str(info.get("backend")), str(info.get("backend"))),
                     cni_text(info)]
        if info.get("lab", "calico") != "calico":
            parts.insert(1, f"{info['lab']} 实验室")
        parts += [_mode(info), f"Linux {info.get('kernel', '?')}"]
        parts += [f"{name} {info[key]}" for name, key in (
            ("Kubernetes", "kubernetes"), ("containerd", "containerd"), ("runc", "runc"))
            if info.get(key)]
        tools = info.get("tools") or {}
        if tools:  # the programs that printed the outputs, as the build machine has them
            parts.append("输出由 " + "、".join(f"{k} {v}" for k, v in tools.items()) + " 打印")
        for name, other in self.others.items():
            rules = (f"按 {cni_text(other)} 的规则复刻" if other.get("backend") == "netns"
                     else cni_text(other))
            parts.append(f"对照：{name} 实验室（{rules}，"
                         f"{_mode(other)}）")
        parts.append(f"本次构建实时运行（{_utc(self.recorded)}）" if self.mode == "live"
                     else replay_mark(self.recorded))
        return " · ".join(parts)


def _mode(info: dict[str, Any]) -> str:
    """The lab's encapsulation as the page names it (a pool routed by BGP: 不封装)."""
    mode = info.get("encapsulation", "?")
    return "不封装（BGP 路由）" if mode == "None" else f"{mode} 模式"


LAB_NAMES = {"netns": "netns 复刻实验室", "kind": "kind 集群", "native": "native 真实集群"}


def real_stamp(started: float | None) -> str:
    """How an output the replica borrowed from the real cluster's recording says so (the
    page says once which cluster that was, with its versions: :func:`banner`)."""
    return f"录制于真实集群 {_utc(started) if started else '?'} · 回放自真实集群的录制"


def real_recording(info: dict[str, Any]) -> str:
    """The page's one line on the real cluster its 录制于真实集群 outputs come from."""
    cluster = "、".join([cni_text(info), *(f"{name} {info[key]}" for name, key in (
        ("Kubernetes", "kubernetes"), ("containerd", "containerd"), ("runc", "runc"))
        if info.get(key)), f"Linux {info.get('kernel', '?')}"])
    return ("标注“录制于真实集群”的输出只有真实集群能打印（kubectl、calicoctl 要 API server "
            "和 Calico 的进程），不是本次构建运行的：它们回放自 "
            f"{LAB_NAMES.get(str(info.get('backend')), str(info.get('backend')))}"
            f"（{cluster}）录下的 transcript，那次录制里本章的其余命令也都在它上面运行过。")


def replay_mark(recorded: float) -> str:
    """How a replayed output says so."""
    return f"回放自 transcript（记录于 {_utc(recorded)}）"


def cni_text(info: dict[str, Any]) -> str:
    """The lab's CNI and its version, as the page names them: ``Calico v3.23.5``."""
    if info.get("cni") == "flannel":
        return f"Flannel {info.get('flannel', '?')}"
    return f"Calico {info.get('calico', '?')}"


def _utc(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def escape_markdown(value: Any) -> str:
    """A value dropped into prose shows as itself: no markup, no HTML."""
    if isinstance(value, markupsafe.Markup | ShownUndefined):
        return str(value)  # labkit's own Markdown (a code span, the undefined marker)
    inline = MARKDOWN_SPECIAL.sub(lambda m: html.escape(m.group(1)) if m.group(1) in "<>&"
                                  else "\\" + m.group(1), str(value))
    return _no_block_starts(inline)


def _no_block_starts(text: str) -> str:
    """Neutralise what would start a block at the start of each line of a (multi-line) value.

    The marker becomes a character reference, which Markdown leaves alone and a browser
    shows as the character.  Lines after the first also get their indentation as
    references: after a blank line it would make an indented code block.
    """
    # Markdown reads a lone \r as a line break too.
    pieces = re.split(r"(\r\n|\r|\n)", text)
    for index in range(0, len(pieces), 2):
        line = pieces[index]
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        if index:
            indent = "".join(f"&#{ord(c)};" for c in indent)
        start = BLOCK_START.match(body)
        if start:
            at = len(start.group()) - 1 if body[0].isdigit() else 0  # 1. -> 1&#46;
            body = f"{body[:at]}&#{ord(body[at])};{body[at + 1:]}"
        pieces[index] = indent + body
    return "".join(pieces)


def code_span(value: Any) -> markupsafe.Markup:
    """``{{ x | code }}``: the value as an inline code span, whatever it contains."""
    text = re.sub(r"\r\n|\r|\n", " ", str(value))  # a lone \r ends a line too
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return markupsafe.Markup(f"{ticks}{pad}{text}{pad}{ticks}")


class ShownUndefined(jinja2.Undefined):
    """In a --keep-going build, a value a failed snippet never set shows as a visible marker."""

    def __str__(self) -> str:
        return f"**⚠ {self._undefined_name} 未定义（前面的代码段失败了）**"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    __getitem__ = __getattr__


class ProseSandbox(jinja2.sandbox.SandboxedEnvironment):
    """Prose is text, not code: values, attributes and filters, but no Python internals
    (``lipsum.__globals__``), and no module a snippet imported (``os.popen``)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType) or isinstance(value, types.ModuleType):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def is_safe_callable(self, obj: Any) -> bool:
        return not isinstance(obj, type) and bool(super().is_safe_callable(obj))


def _environment(path: str, sources: dict[str, str], lenient: bool = False) -> jinja2.Environment:
    env = ProseSandbox(
        loader=jinja2.FunctionLoader(lambda name: (sources[name], name, lambda: True)),
        undefined=ShownUndefined if lenient else jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=escape_markdown,
    )
    env.filters["code"] = code_span
    return env


def _prose_pieces(chapter: Chapter) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) over the chapter body: ``prose``, ``literal`` or ``snippet``."""
    spans = sorted([("literal", s, e) for s, e in chapter.literal]
                   + [("snippet", s.start, s.end) for s in chapter.snippets],
                   key=lambda span: span[1])
    position = chapter.body_start
    for kind, start, end in spans:
        if start > position:
            yield "prose", position, start
        yield kind, start, end
        position = end
    if position < len(chapter.text):
        yield "prose", position, len(chapter.text)


def render_prose(chapter: Chapter, start: int, end: int, namespace: dict[str, Any],
                 lenient: bool = False) -> str:
    """Render one stretch of prose as a jinja2 template; errors name the chapter's line."""
    text = chapter.text[start:end]
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    first_line = chapter.text.count("\n", 0, start) + 1
    padded = "\n" * (first_line - 1) + text
    env = _environment(chapter.path, {chapter.path: padded}, lenient)
    try:
        rendered = env.get_template(chapter.path).render(namespace)
    except jinja2.TemplateSyntaxError as exc:
        raise SnippetError(chapter.path, exc.lineno, f"template error: {exc.message}") from exc
    except Exception as exc:
        line = first_line
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == chapter.path:
                line = tb.tb_lineno
            tb = tb.tb_next
        raise SnippetError(chapter.path, line, f"in the text: {type(exc).__name__}: {exc}") \
            from exc
    return rendered[first_line - 1:]


def console_text(results: list[Result]) -> tuple[list[console.Entry], list[str]]:
    """Commands and their output as a terminal shows them, and notes for what was cut.

    The notes are Markdown: each names its command in a code span, which shows any
    command as typed (HTML-escaping it as well would show ``&#x27;`` for a quote).
    """
    shown: list[console.Entry] = []
    notes: list[str] = []
    for result in results:
        # What the transcript keeps of it, live or replayed: the same page either way.
        kept = abridge(result)
        facts = kept.abridged.get("output")
        part = excerpt(kept.output, facts)
        output = list(part.lines)
        if part.count > MAX_LINES:
            notes.append(f"{code_span(result.command)} 的输出共 {part.count} 行，页面只显示前 "
                         f"{MAX_LINES} 行，省略了 {part.count - MAX_LINES} 行。")
        for i in part.wide:
            body = output[i].rstrip("\r\n")
            output[i] = body + "…" + output[i][len(body):]
        if part.wide:
            notes.append(f"{code_span(result.command)} 的输出有 {len(part.wide)} 行长于 "
                         f"{MAX_LINE_CHARS} 个字符，页面上每行只显示前 {MAX_LINE_CHARS} 个，"
                         f"共省略了 {part.left_out} 个字符。")
        if facts is not None:
            notes.append(f"transcript 只保存了 {code_span(result.command)} 的输出在页面上显示的"
                         f"部分，以及完整输出的大小（{facts['bytes']} 字节）和 sha256"
                         f"（`{facts['sha256']}`）。")
        if output and not output[-1].endswith("\n"):
            output[-1] += "\n"
        # A background command stopped by a signal has no exit status worth showing.
        rc = None if result.timed_out else result.rc
        shown.append(console.Entry(result.prompt, result.command, "".join(output),
                                   console.status_line(bool(output), rc)))
        if result.invalid_bytes:
            notes.append(f"{code_span(result.command)} 的输出含 {result.invalid_bytes} 个"
                         "不是 UTF-8 的字节，页面上显示为 �。")
        for stream, lost in result.dropped.items():
            notes.append(f"{code_span(result.command)} 的{STREAM_NAMES.get(stream, stream)}超过了"
                         f"每个流的保留上限：实验室只保留了前 {lost['kept']} 字节，其后的 "
                         f"{lost['dropped']} 字节没有保留，这里和 transcript 里都没有"
                         "（上限由 `sh(..., keep=字节数)` 设定）。")
        if result.timed_out:
            notes.append(f"{code_span(result.command)} 超时，被强行终止。")
    return shown, notes


def _terminal(entries: list[console.Entry], indent: str) -> str:
    """A terminal in a fence that :func:`labkit.figures.console.superfence` turns into HTML."""
    return fence(console.body(entries), console.LANGUAGE, indent)


def _console_blocks(blocks: list[Block], indent: str) -> str:
    """Consecutive commands in one place share one terminal; each background command has its
    own, as it would in a second terminal window."""
    out: list[str] = []
    pending: list[Result] = []

    def flush() -> None:
        if pending:
            text, notes = console_text(pending)
            out.append(_terminal(text, indent) + "\n")
            out.extend(f"{indent}<small>{n}</small>\n\n" for n in notes)
            pending.clear()

    for block in blocks:
        if block.kind == "console" and block.result is not None:
            if pending and pending[-1].target != block.result.target:
                flush()
            pending.append(block.result)
        elif block.kind == "console" and block.background is not None:
            flush()
            bg = block.background
            note = BACKGROUND_NOTE.get(bg.signal or "", BACKGROUND_NOTE["other"])
            out.append(f"{indent}<small>{note.format(signal=bg.signal)}</small>\n\n")
            if bg.result is not None:
                text, notes = console_text([bg.result])
                out.append(_terminal(text, indent) + "\n")
                out.extend(f"{indent}<small>{n}</small>\n\n" for n in notes)
        elif block.kind == "group":
            flush()
            inner = _console_blocks(block.children, "")
            if inner:
                folded = indented(inner, indent + "    ")
                out.append(f'{indent}??? note "{_attr(block.summary)}"\n\n{folded}\n')
    flush()
    return "".join(out)


def _attr(text: str) -> str:
    """Text for a quoted title (admonition, tab): one line, no double quote."""
    return re.sub(r"\r\n|\r|\n", " ", text).replace('"', "'")


def _figures(blocks: list[Block]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        if block.kind == "figure":
            found.append(block.markdown)
        found.extend(_figures(block.children))
    return found


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("labkit.book", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
)
BACKGROUND_NOTE = {
    "INT": "另一个终端，后台运行；其余命令结束后按 Ctrl-C（SIGINT）停止：",
    "": "另一个终端，后台运行，到数后自行退出：",
    "other": "另一个终端，后台运行；其余命令结束后用 SIG{signal} 停止：",
}


def render_snippet(run: SnippetRun, provenance: Provenance) -> str:
    snippet = run.snippet
    # The source is not what a reader searches for: search shows prose and outputs.
    source = fence(snippet.code, '{.python data-search-exclude=""}', "    ")
    label = _attr(f"Python 源码（{snippet.where}）")
    if run.skipped:
        return _TEMPLATES.get_template("skipped.md.j2").render(
            needs=snippet.only_on, backend=html.escape(str(provenance.info.get("backend"))),
            label=label, source=indented(source),
        ) + "\n"
    if snippet.hidden and run.error is None:
        return ""
    parts: list[str] = []
    outputs = _console_blocks(run.blocks, "    ")
    stamp = html.escape(provenance.stamp(run.started) if run.recorded_on is None
                        else real_stamp(run.started))
    prov = f'    <small class="labkit-provenance">{stamp}</small>\n\n'
    if run.error is not None:
        parts.append(f'!!! failure "代码段失败：{_attr(snippet.where)}"\n\n'
                     f"{fence(str(run.error), 'text', '    ')}\n")
    figures = [f"{figure.rstrip()}\n\n" for figure in _figures(run.blocks)]
    # A figure that is a fence is a terminal (`labkit status`); any other is a drawing.
    drawings = [f for f in figures if not f.startswith("```")]
    terminals = [indented(f) for f in figures if f.startswith("```")]
    # A drawing is the content: it comes first, never inside a tab. What the snippet
    # printed (the commands a figure was drawn from, a terminal it showed) and its source
    # are the two tabs every snippet has.
    parts.extend(drawings)
    shown = outputs + "".join(terminals)
    if shown:
        parts.append(f'=== "{"命令与输出" if drawings else "终端"}"\n\n{shown}{prov}')
    elif drawings:
        parts.append(f"{prov.strip()}\n\n")
    parts.append(f'=== "{label}"\n\n{source}\n')
    return "".join(parts)


def banner(provenance: Provenance) -> str:
    """The page's opening lines: where every output came from (said once for the page, each
    block then gives only its time) and a box saying how the replica differs."""
    info = provenance.info
    lab = {"netns": " netns 复刻实验室", "kind": "真实的 kind 集群",
           "native": "真实集群（native：kubeadm、containerd、Calico 运行在 Linux 命名空间里，"
                     "无 Docker）"}.get(
        str(info.get("backend")), f" {info.get('backend')} ")
    title = f"本页输出来自{lab}" + ("（回放自记录）" if provenance.mode == "replay" else "")
    if info.get("backend") == "netns" or provenance.differs:
        title += "：与真实集群的差异见此"
    return _TEMPLATES.get_template("banner.md.j2").render(
        title=_attr(title),
        described=html.escape(provenance.describe()),
        backend=info.get("backend"),
        cni=info.get("cni", "calico"),
        flannel=html.escape(str(info.get("flannel", ""))),
        others=[html.escape(f"{name}（按 {cni_text(o)} 的规则复刻）" if o.get("backend") == "netns"
                            else f"{name}（{cni_text(o)}）")
                for name, o in provenance.others.items()],
        calico=html.escape(str(info.get("calico", ""))),
        differs=list(provenance.differs),
        borrowed=html.escape(real_recording(provenance.borrowed)) if provenance.borrowed else "",
        replica_labs=[html.escape(name) for name, o in provenance.others.items()
                      if o.get("backend") == "netns"],
        replay=provenance.mode == "replay",
    )


def front_matter(chapter: Chapter) -> str:
    import yaml

    meta = {k: v for k, v in chapter.meta.items() if k not in LABKIT_META}
    if not meta:
        return ""
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n"


def render_chapter(chapter: Chapter, runs: list[SnippetRun], namespace: dict[str, Any],
                   provenance: Provenance | None) -> str:
    """The chapter's page as Markdown.

    When a snippet failed (a --keep-going build), values it never set show as a marker
    in the text instead of failing the page a second time.
    """
    lenient = any(run.error for run in runs)
    by_start = {run.snippet.start: run for run in runs}
    parts = [front_matter(chapter)]
    boxed = False  # the last thing on the page is one of labkit's tabs or boxes
    for kind, start, end in _prose_pieces(chapter):
        if kind == "snippet":
            run = by_start.get(start)
            if run is not None and provenance is not None:
                shown = render_snippet(run, provenance)
                parts.append(_blank_line_before(parts) + shown)
                boxed = boxed or bool(shown)
            continue
        if kind == "prose":
            text = render_prose(chapter, start, end, namespace, lenient)
        else:
            text = chapter.text[start:end]
        if boxed:
            parts.append(_close_box(text))
        parts.append(text)
        boxed = boxed and not text.strip(" \t\r\n")
    page = "".join(parts)
    if provenance is not None and runs:
        borrowed = next((r.recorded_on for r in runs if r.recorded_on), None)
        page = after_title(page, banner(dataclasses.replace(provenance, borrowed=borrowed)))
    return page


def render_failed(chapter: Chapter, problem: Exception, title: str,
                  why: str = "") -> tuple[str, list[SnippetError]]:
    """The page of a chapter none of whose outputs could be made (a replay with no usable
    transcript, a snippet that ended or hung its chapter's process), and the error it
    shows at each snippet: the prose, and under the title a box saying why (``why`` starts
    the sentence, ``title`` heads the box)."""
    failed = [SnippetRun(s, error=SnippetError(s.path, s.line, str(problem)))
              for s in chapter.snippets]
    body = render_chapter(chapter, failed, {}, None)
    notice = _TEMPLATES.get_template("failed.md.j2").render(
        title=_attr(title), why=html.escape(why), message=fence(str(problem), "text", "    "))
    return after_title(body, notice), [r.error for r in failed if r.error]


def _close_box(following: str) -> str:
    """What must come between one of labkit's boxes and the author's text after it.

    A tab's or an admonition's content is its indented lines, so the author's next
    indented line (an indented code block, say) would be read as part of the box. A line
    at the margin ends it: an HTML comment, which shows nothing.
    """
    first = next((line for line in lines(following) if line.strip(" \t\r\n")), "")
    return "<!-- -->\n\n" if first[:1] in (" ", "\t") else ""


def _blank_line_before(parts: list[str]) -> str:
    return "" if not parts or parts[-1].endswith("\n\n") or not parts[-1] else "\n"


def after_title(page: str, text: str) -> str:
    """``text`` (a box) right under the page's first heading, closed off from what follows."""
    match = re.search(r"^# .*\n", page, re.M)
    at = match.end() if match else 0
    rest = page[at:]
    return page[:at] + ("\n" if match else "") + text + ("" if match else "\n") + \
        _close_box(rest) + rest
