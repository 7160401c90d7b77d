# MkDocs hooks: edit links only where the site knows its repository.
"""`LABKIT_REPO_URL` (e.g. https://github.com/you/labkit) turns on "edit this page" links
to `docs_src/`; without it there are none, and the site links to no outside host at all."""

from __future__ import annotations

import logging
from typing import Any


def on_config(config: Any) -> Any:
    # The search plugin segments Chinese with jieba, which logs its dictionary loading.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    if config.repo_url:
        # MkDocs fills in edit/master/docs/ for GitHub; the chapters are docs_src/ on main.
        config.edit_uri = "edit/main/"
    return config
