# The layout: the public API stays light, and every folder says in one line what it holds.
"""The import-linter contracts (``nox -s lint``) say which folder may import which; these
check what they cannot: what ``import labkit`` costs, and each folder's docstring."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_labkit_needs_neither_jinja2_nor_yaml() -> None:
    # The public API is the lab and its figures: the renderer (jinja2) and the manifests
    # (yaml) load only when a build or a lab needs them.
    code = ("import sys, labkit; "
            "print(sorted(m for m in ('jinja2', 'yaml', 'mkdocs', 'sybil', 'kubernetes') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_every_folder_says_what_it_holds_in_one_line() -> None:
    # labkit/__init__.py is the public API, documented at length; below it, the layers.
    folders = sorted((ROOT / "labkit").glob("*/**/__init__.py"))
    assert len(folders) >= 8
    for init in folders:
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
        assert "\n" not in doc.strip(), f"{init.relative_to(ROOT)}: more than one line"


def test_the_readmes_layout_names_every_folder_and_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line for line in layout.splitlines()
            if line.startswith("| `labkit/")}
    for init in sorted((ROOT / "labkit").glob("*/**/__init__.py")):
        folder = init.parent.relative_to(ROOT).as_posix() + "/"
        assert folder in rows, f"README.md's Layout has no row for {folder}"
        for module in sorted(init.parent.glob("*.py")):
            if module.name != "__init__.py":
                assert f"`{module.name}`" in rows[folder], f"{folder}{module.name} is not in it"
