# Markdown's own rules for putting a value in a page as itself: lines, fences, table cells.
"""What the renderer, the snippet parser and the figures share about Markdown.

Command output is data: a fence no output can close early, a table cell no value
can break out of, and lines split where Markdown splits them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

# A line ends at \n, \r\n or a lone \r (CommonMark 2.1); str.splitlines() also breaks at
# \x0b, \x0c, \x1c-\x1e, \x85, \u2028 and \u2029, which Markdown shows inside a line.
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lines(text: str) -> list[str]:
    """``text``'s lines as Markdown reads them, each with its line ending."""
    return LINE.findall(text)


def first_lines(text: str, count: int) -> tuple[list[str], int]:
    """The first ``count`` of ``text``'s :func:`lines`, and how many lines it has in all,
    without making a string of every line (an output can have millions)."""
    first = [m.group() for m in itertools.islice(LINE.finditer(text), count)]
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return first, ends + (1 if text and not text.endswith(("\n", "\r")) else 0)


def fence(text: str, language: str, indent: str = "") -> str:
    """A fenced block that no content can close early: longer than any backtick run in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return indented(f"{marks}{language}\n{body}{marks}\n", indent)


def indented(text: str, prefix: str = "    ") -> str:
    """Indent each line as Markdown splits them (see :func:`labkit.figures.markdown.lines`); a line
    of spaces and tabs is blank to Markdown and stays as it is."""
    return "".join(prefix + line if line.strip(" \t\r\n") else line for line in lines(text))


# A value made of these is shown as code; anything else is spelt with character
# references, so no value can open a tag, a code span, emphasis or a new table cell.
PLAIN = re.compile(r"[\w .:/@+\-]*")


def cell(value: object) -> str:
    """One Markdown table cell holding ``value`` as itself."""
    text = "" if value is None else str(value)
    if not text:
        return "—"
    if PLAIN.fullmatch(text) and text.isascii():
        # A value of several words (a route) is a code span a word: the cell may wrap
        # between them on a narrow screen, never inside an address or a MAC.
        return " ".join(f"`{word}`" for word in text.split(" ") if word)
    return "".join(c if c.isalnum() or c == " " else f"&#{ord(c)};" for c in text)


def label(text: str) -> str:
    """A cell of words (Chinese, with values in them): not code, escaped the same way."""
    return "".join(c if c.isalnum() or c in " ，。：、（）→.:/-" else f"&#{ord(c)};" for c in text)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown pipe table; cells must already be made with :func:`cell` or :func:`label`.

    It sits in ``<div class="labkit-table" markdown="1">`` (md_in_html) so the site's CSS
    can keep each value on one line and let the table scroll sideways instead.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return '<div class="labkit-table" markdown="1">\n\n' + "\n".join(lines) + "\n\n</div>"
