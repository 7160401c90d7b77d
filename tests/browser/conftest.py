# Browser check fixtures: the built site on 127.0.0.1, a Chromium that reaches no other host.
"""The site in ``site/`` (``nox -s build``) is served from a thread on 127.0.0.1 and opened
in Debian's Chromium (``/usr/bin/chromium``, or ``LABKIT_CHROMIUM``) through Playwright;
no browser is downloaded.

The browser is kept on the machine three ways: every request (and WebSocket) whose host
is not 127.0.0.1 or localhost is aborted by a route and recorded; Chromium's resolver
fails every other host name; background networking, component updates, sync and QUIC
are switched off.  A test fails if anything was recorded while it ran.
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from browsing import CHROMIUM, CHROMIUM_ARGS, DESKTOP, SITE, Outside

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The built site's root URL on 127.0.0.1 (a free port)."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site: {SITE / 'index.html'} is missing (run `nox -s build` first)")
    handler = functools.partial(_Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def outside() -> Outside:
    return Outside()


@pytest.fixture(scope="session")
def browser(site: str, outside: Outside) -> Iterator[BrowserContext]:
    """Headless Chromium with a fresh profile, routed so that nothing leaves 127.0.0.1."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                    "LABKIT_CHROMIUM to its path)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with tempfile.TemporaryDirectory(prefix="labkit-chromium-") as profile, \
            sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport=DESKTOP, locale="zh-CN", service_workers="block",
        )
        context.route("**/*", outside.route)
        context.route_web_socket("**/*", outside.websocket)
        context.on("request", outside.request)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext, outside: Outside) -> Iterator[Page]:
    """A new tab at the desktop size; the test fails if any request tried to leave."""
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    before = len(outside.urls)
    try:
        yield tab
    finally:
        tab.close()
    escaped = list(dict.fromkeys(outside.urls[before:]))
    if escaped:
        pytest.fail("requests to other hosts (blocked): " + ", ".join(escaped), pytrace=False)
