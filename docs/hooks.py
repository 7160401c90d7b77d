# MkDocs hooks: edit links only where the site knows its repository.
"""`LABKIT_REPO_URL` (e.g. https://github.com/you/labkit) turns on "edit this page" links
to `docs_src/`; without it there are none, and the site links to no outside host at all."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


def on_config(config: Any) -> Any:
    # The search plugin segments Chinese with jieba, which logs its dictionary loading and
    # caches it in /tmp/jieba.cache by default: a file another user's build may own. Keep
    # the cache in this checkout's private state instead.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    import jieba

    state = Path(config.config_file_path).parent / ".labkit"
    state.mkdir(exist_ok=True)
    jieba.dt.tmp_dir = str(state)
    if config.repo_url:
        # MkDocs fills in edit/master/docs/ for GitHub; the chapters are docs_src/ on main.
        config.edit_uri = "edit/main/"
    return config
