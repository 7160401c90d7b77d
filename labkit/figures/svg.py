# Figures for the page: inline SVG drawn at build time, and the Markdown table beside it.
"""A small SVG builder and the Markdown helpers that diagrams and packet walks share.

Every value that reaches the page passes through :func:`html.escape` (in SVG)
or :func:`cell` (in a Markdown table): command output is data and must never
become markup.  Colours are Material's CSS variables, with fallbacks so the
SVG still reads when opened on its own, so the figures follow the light and
dark schemes; the text's accent and muted colours come first from the site's
``--labkit-figure-*`` variables (docs/assets/labkit.css), which keep them
legible on the shaded frames.  There are no element ids: a page may hold
several figures.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence

FONT_SIZE = 12.0
"""Text size in the SVG's user units; a line is :data:`LINE` units tall."""
LINE = 16.0
SCALE_MAX = 1.3
"""On a wide screen a figure grows to at most this many CSS pixels per unit, so its
text stays near body size; on a phone it shrinks with the column (``width: 100%``)."""

# Scoped to the figures' own class: an inline <style> applies to the whole page.
STYLE = """\
.labkit-diagram{font-family:var(--md-text-font-family,sans-serif);font-size:12px}\
.labkit-diagram text{fill:var(--md-default-fg-color,#222);white-space:pre}\
.labkit-diagram .lk-mono{font-family:var(--md-code-font-family,monospace)}\
.labkit-diagram .lk-muted{fill:var(--labkit-figure-muted,var(--md-default-fg-color--light,#666))}\
.labkit-diagram .lk-title{font-weight:bold}\
.labkit-diagram .lk-accent{fill:var(--labkit-figure-accent,var(--md-accent-fg-color,#3f51b5));\
font-weight:bold}\
.labkit-diagram .lk-box{fill:var(--md-default-bg-color,#fff);\
stroke:var(--md-default-fg-color--light,#888);stroke-width:1}\
.labkit-diagram .lk-area{fill:var(--md-default-fg-color--lightest,#f2f2f2);\
stroke:var(--md-default-fg-color--lighter,#bbb);stroke-width:1}\
.labkit-diagram .lk-ghost{fill:none;stroke:var(--md-accent-fg-color,#526cfe);\
stroke-width:1.2;stroke-dasharray:5 3}\
.labkit-diagram .lk-link{fill:none;stroke:var(--md-default-fg-color--light,#888);stroke-width:1.5}\
.labkit-diagram .lk-dashed{fill:none;stroke:var(--md-accent-fg-color,#526cfe);\
stroke-width:1.2;stroke-dasharray:5 3}\
.labkit-diagram .lk-head{fill:var(--md-default-fg-color--light,#888);stroke:none}\
.labkit-diagram .lk-mark{fill:var(--md-accent-fg-color,#526cfe);stroke:none}\
"""

Span = tuple[str, str]
"""A piece of one text line: (text, CSS classes); several make a line of mixed styles."""


def escape(value: object) -> str:
    """Text or an attribute value, safe inside SVG/HTML whatever it contains."""
    return html.escape(str(value), quote=True)


def text_width(text: str, size: float = FONT_SIZE, mono: bool = True) -> float:
    """How wide ``text`` is drawn, generously: wide (CJK) characters take a full em."""
    narrow = 0.62 if mono else 0.6
    return sum(size if unicodedata.east_asian_width(c) in "WF" else size * narrow
               for c in text)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _data(data: dict[str, object] | None) -> str:
    if not data:
        return ""
    for key in data:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise ValueError(f"not a data attribute name: {key!r}")
    return "".join(f' data-{key}="{escape(value)}"' for key, value in data.items())


class Drawing:
    """An SVG under construction; :meth:`svg` returns it as one block with no blank lines."""

    def __init__(self, width: float, *, title: str, kind: str,
                 data: dict[str, object] | None = None) -> None:
        self.width = width
        self.title = title
        self.kind = kind
        self.data = data or {}
        self.parts: list[str] = []
        self.bottom = 0.0
        """The lowest y drawn so far: the height of the viewBox when done."""

    def _reach(self, y: float) -> None:
        self.bottom = max(self.bottom, y)

    def mark(self) -> int:
        """Where the next element goes; pass it to :meth:`rect` as ``at`` to draw a box under
        what was drawn since, once its size is known."""
        return len(self.parts)

    def rect(self, x: float, y: float, w: float, h: float, cls: str, *, rx: float = 4,
             data: dict[str, object] | None = None, at: int | None = None) -> None:
        self._reach(y + h)
        self.parts.insert(
            len(self.parts) if at is None else at,
            f'<rect x="{_number(x)}" y="{_number(y)}" width="{_number(w)}" '
            f'height="{_number(h)}" rx="{_number(rx)}" class="{escape(cls)}"{_data(data)}/>',
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str = "lk-link") -> None:
        self._reach(max(y1, y2))
        self.parts.append(
            f'<line x1="{_number(x1)}" y1="{_number(y1)}" x2="{_number(x2)}" '
            f'y2="{_number(y2)}" class="{escape(cls)}"/>'
        )

    def path(self, points: Sequence[tuple[float, float]], cls: str = "lk-link") -> None:
        self._reach(max(y for _, y in points))
        d = " ".join(f"{'M' if i == 0 else 'L'}{_number(x)} {_number(y)}"
                     for i, (x, y) in enumerate(points))
        self.parts.append(f'<path d="{d}" class="{escape(cls)}"/>')

    def arrow_head(self, x: float, y: float, direction: str, cls: str = "lk-head",
                   size: float = 5) -> None:
        """A small filled triangle whose tip is at (x, y), pointing up/down/left/right."""
        dx, dy = {"down": (0, 1), "up": (0, -1), "right": (1, 0), "left": (-1, 0)}[direction]
        back_x, back_y = x - dx * size * 1.6, y - dy * size * 1.6
        px, py = -dy * size, dx * size
        points = [(x, y), (back_x + px, back_y + py), (back_x - px, back_y - py)]
        self._reach(max(p[1] for p in points))
        self.parts.append(
            '<polygon points="' + " ".join(f"{_number(a)},{_number(b)}" for a, b in points)
            + f'" class="{escape(cls)}"/>'
        )

    def text(self, x: float, y: float, spans: str | Iterable[Span], cls: str = "", *,
             anchor: str = "start", data: dict[str, object] | None = None) -> None:
        """One line of text with its baseline at ``y``; ``spans`` mixes styles in the line."""
        self._reach(y + 4)
        pieces = [(spans, "")] if isinstance(spans, str) else list(spans)
        body = "".join(
            f'<tspan class="{escape(c)}">{escape(t)}</tspan>' if c else escape(t)
            for t, c in pieces
        )
        klass = f' class="{escape(cls)}"' if cls else ""
        anchor_attr = f' text-anchor="{anchor}"' if anchor != "start" else ""
        self.parts.append(f'<text x="{_number(x)}" y="{_number(y)}"{klass}{anchor_attr}'
                          f'{_data(data)}>{body}</text>')

    def open_group(self, cls: str, data: dict[str, object] | None = None) -> None:
        self.parts.append(f'<g class="{escape(cls)}"{_data(data)}>')

    def close_group(self) -> None:
        self.parts.append("</g>")

    def svg(self, margin: float = 12) -> str:
        height = self.bottom + margin
        data = {"kind": self.kind, **self.data}
        return "\n".join([
            f'<svg xmlns="http://www.w3.org/2000/svg" class="labkit-diagram" '
            f'viewBox="0 0 {_number(self.width)} {_number(height)}" width="100%" '
            f'style="max-width:{_number(self.width * SCALE_MAX)}px;height:auto" '
            # Its words are the figure's, not the page's: search shows prose and outputs.
            f'role="img" aria-label="{escape(self.title)}" data-search-exclude{_data(data)}>',
            f"<title>{escape(self.title)}</title>",
            f"<style>{STYLE}</style>",
            *self.parts,
            "</svg>",
        ])


def figure(svgs: Sequence[str], caption: str, kind: str) -> str:
    """The raw HTML block for the page: the SVGs and a caption, with no blank line inside
    (Python-Markdown would end the block there)."""
    body = "\n".join(svgs)
    return (f'<div class="labkit-figure labkit-{escape(kind)}">\n{body}\n'
            f'<p class="labkit-caption"><small>{escape(caption)}</small></p>\n'
            '<p class="labkit-zoom-hint"><small>轻触图可放大，再轻触一次还原。</small></p>\n</div>')
