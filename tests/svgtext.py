# What an inline SVG figure draws: the text a reader sees, for the figure tests.
from __future__ import annotations

import html.parser


class Visible(html.parser.HTMLParser):
    """The text of each SVG <text> element, and every element name, of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.tags: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "text":
            self._depth += 1
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.texts[-1] += data


def visible(fragment: str) -> Visible:
    parser = Visible()
    parser.feed(fragment)
    return parser
