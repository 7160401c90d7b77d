# MkDocs hooks: edit links only where the site knows its repository; tab labels not indexed.
"""`LABKIT_REPO_URL` (e.g. https://github.com/you/labkit) turns on "edit this page" links
to `docs_src/`; without it there are none, and the site links to no outside host at all.

Search shows prose and outputs: the figures and the Python sources carry
``data-search-exclude`` from labkit; the tabs' labels (they would run together as
"终端Python 源码…" in every excerpt) and the folded source of a kind-only notice get it
here."""

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
    # Load its dictionary now (seconds, the first time: it builds the cache): in `labkit
    # build` the chapters are running meanwhile in processes of their own, and the pages
    # are rendered only when they are done.
    jieba.initialize()
    if config.repo_url:
        # MkDocs fills in edit/master/docs/ for GitHub; the chapters are docs_src/ on main.
        config.edit_uri = "edit/main/"
    return config


def on_page_content(html: str, **kwargs: Any) -> str:
    for opening in ('<div class="tabbed-labels"', '<details class="abstract labkit-source"'):
        html = html.replace(opening + ">", opening + " data-search-exclude>")
    return html
