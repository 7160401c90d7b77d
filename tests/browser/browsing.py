# What the browser checks share: where the site and Chromium are, the nav's pages, the guard.
"""Kept out of conftest.py so the tests can import it (the repository's root conftest.py
takes the module name ``conftest``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

if TYPE_CHECKING:
    from playwright.sync_api import Request, Route, ViewportSize, WebSocketRoute

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
SCREENSHOTS = ROOT / "screenshots"
"""``screenshots/<desktop|phone>-<light|dark>/<page>.png``, written by every browser run."""
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome-error"})
"""Schemes that never touch the network (an inline image, a blob, the blank page)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-breakpad",
    "--metrics-recording-only",
    # A second wall behind the routes: Chromium itself resolves no other name.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass(frozen=True)
class NavPage:
    """A page of the site as mkdocs.yml's nav lists it."""

    title: str
    source: str
    """The Markdown file under docs/ (generated from docs_src/): ``03-datapath.md``."""

    @property
    def name(self) -> str:
        """``index``, ``03-datapath``: the screenshot's file name and the test id."""
        return self.source.removesuffix(".md")

    @property
    def path(self) -> str:
        """The page's URL path under the site root (directory URLs, as MkDocs writes them)."""
        return "" if self.name == "index" else f"{self.name}/"


def nav_pages() -> list[NavPage]:
    """Every page in mkdocs.yml's nav, in order (sections flattened, outside links left out)."""

    class Loader(yaml.SafeLoader):
        """mkdocs.yml uses MkDocs' own tags (``!ENV``); the nav needs none of them."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = yaml.load(text, Loader=Loader)  # a SafeLoader that drops unknown tags

    def walk(items: list[Any]) -> Iterator[NavPage]:
        for item in items:
            if isinstance(item, str):
                yield NavPage(item, item)
                continue
            for title, value in item.items():
                if isinstance(value, list):
                    yield from walk(value)
                elif not str(value).startswith(("http://", "https://")):
                    yield NavPage(title, str(value))

    return list(walk(config["nav"]))


def is_local(url: str) -> bool:
    """The URL stays on this machine: 127.0.0.1, localhost, or no network at all."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS


class Outside:
    """Every request that tried to leave 127.0.0.1: aborted before it went out, and kept here."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def route(self, route: Route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.urls.append(url)
            route.abort("blockedbyclient")

    def websocket(self, ws: WebSocketRoute) -> None:
        if is_local(ws.url):
            ws.connect_to_server()
        else:
            self.urls.append(ws.url)
            ws.close()

    def request(self, request: Request) -> None:
        """Every request the browser reports, routed or not (a worker's, say)."""
        if not is_local(request.url):
            self.urls.append(request.url)
