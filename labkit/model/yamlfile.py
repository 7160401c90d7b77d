# YAML files read strictly: a duplicate key is an error, and every key keeps its line number.
"""Read one YAML document so that a mistake in it can be reported at its line.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word (a
cluster's API server refuses them); :func:`read` refuses them, and keeps the
line of every key and list item so that a later check can name it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ManifestError

Key = str | int
"""One step of a key path: a mapping key, or a list index."""


@dataclass(frozen=True)
class Document:
    """A YAML file's content and where each of its keys is written."""

    path: Path
    data: Any
    lines: dict[tuple[Key, ...], int] = field(default_factory=dict)
    """1-based line of each key path (``("nodes", 0, "role")``); ``()`` is the first line."""

    def line(self, loc: Sequence[Key]) -> int:
        """The line of ``loc``, or of its nearest written parent (a missing key's mapping)."""
        steps = tuple(loc)
        while steps and steps not in self.lines:
            steps = steps[:-1]
        return self.lines.get(steps, 1)

    def error(self, loc: Sequence[Key], problem: str) -> ManifestError:
        """A :class:`ManifestError` at ``loc`` of this file."""
        return ManifestError(str(self.path), self.line(loc), key_path(loc), problem)


def key_path(loc: Sequence[Key]) -> str:
    """``("pods", 2, "name")`` as a reader writes it: ``pods[2].name``."""
    text = ""
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _walk(node: yaml.Node, loc: tuple[Key, ...], path: Path,
          lines: dict[tuple[Key, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ManifestError(
                    str(path), line, key_path((*loc, key)),
                    f"duplicate key (first written on line {seen[key]}); YAML keeps only "
                    "one of them, so say it once")
            seen[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _walk(item, (*loc, index), path, lines)


def read(path: Path) -> Document:
    """``path``'s one YAML document; :class:`ManifestError` at the line if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(str(path), 0, "", "no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ManifestError(str(path), 0, "", f"cannot read it ({reason})") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple[Key, ...], int] = {}
        if node is None:
            return Document(path, None, lines)
        lines[()] = node.start_mark.line + 1
        _walk(node, (), path, lines)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(str(path), mark.line + 1 if mark else 0, "",
                            f"not valid YAML ({problem})") from exc
    finally:
        loader.dispose()
    return Document(path, data, lines)
