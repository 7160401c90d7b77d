# mkdocs-gen-files script: asks labkit for the chapters' pages and hands them to mkdocs.
"""Thin on purpose: labkit.book.build renders plain Markdown; this only files it into the site."""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files
from mkdocs.exceptions import PluginError

from labkit import LabError
from labkit.book.build import build, options_for

# The project is where this mkdocs.yml is, not where labkit is installed: a copy of the
# project (or labkit installed from PyPI) builds its own chapters (`labkit build` has
# started them already, in this process: build() collects them).
root = Path(mkdocs_gen_files.config.config_file_path).resolve().parent

try:
    pages = build(options_for(root))
except LabError as exc:
    # A BuildError ends `mkdocs build` with this message and no traceback.
    raise PluginError(str(exc)) from None

for page in pages:
    with mkdocs_gen_files.open(page.name, "w", encoding="utf-8") as handle:
        handle.write(page.markdown)
    mkdocs_gen_files.set_edit_path(page.name, page.source)
