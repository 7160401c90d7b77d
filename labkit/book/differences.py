# Where the replica differs from a real cluster, declared once: what fidelity forgives, pages say.
"""``docs_src/differences.yaml``: every known way the replica differs from a real cluster.

Each entry says *why* in the reader's words (``text``, Chinese, shown in the
"where the replica differs" box of every page the replica printed and the
entry applies to) and, where the difference shows in outputs, *which*
outputs (``outputs``: a chapter and a regular expression on the command).
:mod:`labkit.book.fidelity` forgives exactly those outputs, and nothing else::

    - id: no-iptables
      when: {cni: calico}
      text: 没有 iptables 规则（`cali-FORWARD` 等链）……
      outputs:
        - {chapter: 04-gateway, command: '^iptables '}

``when`` compares with the lab's facts (``cni``, ``encapsulation``, ``bird``,
``tools``: true when the lab lists them, ``user_namespace``); an entry without
``outputs`` is a difference no output of the book shows.  ``text`` may name the
lab's facts as ``{{ calico }}``, ``{{ flannel }}``, ``{{ tools }}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..model.yamlfile import Document, read

FILE = "differences.yaml"
WHEN = ("cni", "encapsulation", "bird", "tools", "user_namespace")


@dataclass(frozen=True)
class Selector:
    chapter: str | None
    """The chapter's file stem (``04-gateway``); None for every chapter."""
    command: re.Pattern[str]

    def matches(self, chapter: str, command: str) -> bool:
        return (self.chapter in (None, Path(chapter).stem)
                and self.command.search(command) is not None)


@dataclass(frozen=True)
class Difference:
    id: str
    text: str
    when: dict[str, Any]
    outputs: tuple[Selector, ...]
    line: int

    def applies(self, info: dict[str, Any]) -> bool:
        facts = {"cni": info.get("cni", "calico"), "encapsulation": info.get("encapsulation"),
                 "bird": bool(info.get("bird")), "tools": bool(info.get("tools")),
                 "user_namespace": info.get("user_namespace")}
        return all(facts[key] == value for key, value in self.when.items())

    def covers(self, chapter: str, command: str) -> bool:
        return any(s.matches(chapter, command) for s in self.outputs)

    def box_line(self, info: dict[str, Any]) -> str:
        """The entry as the page's box says it, with the lab's facts filled in."""
        tools = "、".join(f"{k} {v}" for k, v in (info.get("tools") or {}).items())
        text = _JINJA.from_string(_one_line(self.text)).render(
            calico=info.get("calico", ""), flannel=info.get("flannel", ""), tools=tools)
        return text.strip()


def _one_line(text: str) -> str:
    """The file's lines joined as Chinese is written: no space where a line break falls
    between two Chinese characters, one space where it falls beside a Latin word."""
    joined = ""
    for line in (part.strip() for part in text.splitlines()):
        if joined and line and not _no_space(joined[-1], line[0]):
            joined += " "
        joined += line
    return joined


def _no_space(before: str, after: str) -> bool:
    """Whether a line break between these two characters is no space in Chinese text: both
    are Chinese, or one is a Chinese punctuation mark (、，。：（）…)."""
    def chinese(c: str) -> bool:
        return ord(c) > 0x2E7F

    def punctuation(c: str) -> bool:
        return 0x3000 <= ord(c) <= 0x303F or 0xFF00 <= ord(c) <= 0xFFEF

    return (chinese(before) and chinese(after)) or punctuation(before) or punctuation(after)


_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                            keep_trailing_newline=False)


def box_lines(declared: list[Difference], info: dict[str, Any],
              others: Sequence[dict[str, Any]] = ()) -> tuple[str, ...]:
    """What a page's box says of the replica labs that printed it, one line per difference:
    of the page's lab if it is the replica, else of its other labs that are; nothing for a
    page real clusters printed alone."""
    replicas = [info] if info.get("backend") == "netns" else [
        o for o in others if o.get("backend") == "netns"]
    lines: list[str] = []
    for each in replicas:
        for difference in declared:
            line = difference.box_line(each)
            if difference.applies(each) and line not in lines:
                lines.append(line)
    return tuple(lines)


def load(source: Path) -> list[Difference]:
    """The declared differences of the chapters in ``source`` (none if there is no file)."""
    path = source / FILE
    if not path.exists():
        return []
    doc = read(path)
    if not isinstance(doc.data, list):
        raise doc.error((), "must be a list of differences (- id: ..., text: ...)")
    found: list[Difference] = []
    seen: set[str] = set()
    for index, entry in enumerate(doc.data):
        found.append(_entry(doc, index, entry, seen))
    return found


def _entry(doc: Document, index: int, entry: Any, seen: set[str]) -> Difference:
    if not isinstance(entry, dict):
        raise doc.error((index,), "each difference is a mapping with id and text")
    unknown = set(entry) - {"id", "text", "when", "outputs"}
    if unknown:
        raise doc.error((index, sorted(unknown)[0]), "unknown key: use id, text, when, outputs")
    ident, text = entry.get("id"), entry.get("text")
    if not isinstance(ident, str) or not ident:
        raise doc.error((index, "id"), "needs an id (a short name, like no-iptables)")
    if ident in seen:
        raise doc.error((index, "id"), f"{ident!r} is declared twice")
    seen.add(ident)
    if not isinstance(text, str) or not text.strip():
        raise doc.error((index, "text"), "needs the text the pages show (why it differs)")
    try:
        _JINJA.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise doc.error((index, "text"), f"not a valid template: {exc.message}") from exc
    when = entry.get("when") or {}
    if not isinstance(when, dict) or set(when) - set(WHEN):
        raise doc.error((index, "when"), f"a mapping of {', '.join(WHEN)}")
    selectors = []
    for j, each in enumerate(entry.get("outputs") or []):
        if not isinstance(each, dict) or "command" not in each or set(each) - {"chapter",
                                                                               "command"}:
            raise doc.error((index, "outputs", j),
                            "each is {chapter: NN-name (optional), command: REGEX}")
        try:
            pattern = re.compile(str(each["command"]))
        except re.error as exc:
            raise doc.error((index, "outputs", j, "command"),
                            f"not a regular expression: {exc}") from exc
        chapter = each.get("chapter")
        selectors.append(Selector(str(chapter) if chapter else None, pattern))
    return Difference(ident, text, when, tuple(selectors), doc.line((index,)))
