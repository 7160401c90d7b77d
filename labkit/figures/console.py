# A terminal on the page: the fence labkit writes for it and the HTML the site makes of it.
"""Console blocks.

The renderer writes each terminal as a ``labkit-console`` fence whose body is JSON (one
entry per command: prompt, command, output lines, a status line), so nothing in an output
can be mistaken for a prompt.  :func:`superfence` is registered with ``pymdownx.superfences``
(``mkdocs.yml``) and turns the fence into the block a reader sees: prompts muted,
commands and output as plain text (no lexer, so nothing inside a command is coloured),
a muted status line under a command that printed nothing or failed, and a ``data-copy``
attribute that makes Material's copy button copy the commands alone, one per line.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

LANGUAGE = "labkit-console"
"""The fence's info string."""


@dataclass(frozen=True)
class Entry:
    """One command as the terminal shows it."""

    prompt: str
    command: str
    output: str
    """What it printed (already cut to what the page shows), ending in a newline if any."""
    status: str = ""
    """A muted line after the output, ``（无输出，退出码 1）``; empty if there is nothing to say."""


def status_line(printed: bool, rc: int | None) -> str:
    """What a terminal does not show but a reader needs: no output, a non-zero exit status."""
    failed = rc is not None and rc != 0
    if not printed:
        return f"（无输出，退出码 {rc}）" if failed else "（无输出）"
    return f"（退出码 {rc}）" if failed else ""


def body(entries: list[Entry]) -> str:
    """The fence's body: JSON, one entry per line (ASCII only, so no line break inside)."""
    return "".join(json.dumps([e.prompt, e.command, e.output, e.status]) + "\n"
                   for e in entries)


def parse(source: str) -> list[Entry]:
    """The entries of a fence body written by :func:`body`."""
    entries = []
    for number, line in enumerate(source.splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompt, command, output, status = json.loads(line)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{LANGUAGE} fence, line {number}: not a console entry: "
                             f"{line[:80]!r}") from exc
        entries.append(Entry(str(prompt), str(command), str(output), str(status)))
    return entries


def html_block(entries: list[Entry]) -> str:
    """The terminal as HTML: every piece of text escaped, the copy text in ``data-copy``."""
    parts = []
    for entry in entries:
        parts.append(f'<span class="gp">{html.escape(entry.prompt)} </span>'
                     f'<span class="labkit-command">{html.escape(entry.command)}</span>\n')
        if entry.output:
            parts.append(f'<span class="go">{html.escape(entry.output)}</span>')
        if entry.status:
            parts.append(f'<span class="labkit-status">{html.escape(entry.status)}</span>\n')
    copy = html.escape("\n".join(e.command for e in entries), quote=True).replace("\n", "&#10;")
    return (f'<div class="highlight labkit-console" data-copy="{copy}"><pre><code>'
            + "".join(parts) + "</code></pre></div>")


def superfence(source: str, language: str, css_class: str, options: dict[str, Any], md: Any,
               **kwargs: Any) -> str:
    """``pymdownx.superfences`` custom fence formatter for :data:`LANGUAGE`."""
    return html_block(parse(source))
