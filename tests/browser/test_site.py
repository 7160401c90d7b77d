# The built site in headless Chromium: figures, tabs, search, schemes, and nothing from outside.
"""What a reader of site/ sees, checked page by page in mkdocs.yml's nav order.

Run by ``nox -s browser`` (after ``nox -s build``); screenshots of every page, light and
dark, desktop and phone, land in ``screenshots/`` (see :data:`browsing.SCREENSHOTS`).
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest
from browsing import (
    DESKTOP,
    PHONE,
    ROOT,
    SCREENSHOTS,
    SITE,
    NavPage,
    Outside,
    is_local,
    nav_pages,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PAGES = nav_pages()
SCHEMES = {"light": "default", "dark": "slate"}
"""The reader's word for a scheme, and Material's."""
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
OUTBOUND_LINKS = {
    "docs.tigera.io": "第四章引用的出处：Calico 官方 FAQ",
}
"""Hosts that a page may *link* to (an ``<a href>`` the reader can follow, which loads
nothing by itself), and why; anything a page would load from another host is never allowed."""
MIN_CONTRAST = 4.5
"""WCAG AA for body-size text: the figures' text is 12 to 15.6 CSS pixels."""
SEARCHES = [
    # The title of chapter 04 is the address; chapter 03 is where it is pinged and captured.
    ("169.254.1.1", ["04-gateway", "03-datapath"], "04-gateway/"),
    # 二层交换 only comes up where chapter 03 compares Calico with Flannel's bridge.
    ("交换", ["03-datapath"], "03-datapath/#flannel"),
    # Why one MAC on every cali device is fine: it need not be 唯一 (unique), chapter 04.
    ("唯一", ["04-gateway"], "04-gateway/#2-mac-eeeeeeeeeeee"),
]
NOT_DRAWN = frozenset({"kind", "hops", "direction"})
"""Data attributes that are not values printed in the figure: the figure type, a count
(checked against the hops drawn), a direction (drawn in words: 发出/收到)."""
AROUND = frozenset({"where"})
"""Data attributes of a hop's card that the place around the cards draws (the pod or node)."""
NUMBER = re.compile(r"\d+")


def ids(pages: list[NavPage]) -> list[str]:
    return [p.name for p in pages]


def open_page(page: Page, site: str, nav: NavPage, *, idle: bool = False) -> None:
    """Load a page and its fonts; with ``idle``, also wait until it has stopped requesting."""
    page.goto(site + nav.path, wait_until="networkidle" if idle else "load")
    page.evaluate("document.fonts.ready")


def set_scheme(page: Page, scheme: str) -> None:
    """Switch to Material's ``default`` or ``slate`` the way a reader does: the header toggle."""
    if page.get_attribute("body", "data-md-color-scheme") != scheme:
        page.locator("form[data-md-component=palette] label:not([hidden])").click()
        page.wait_for_function("s => document.body.getAttribute('data-md-color-scheme') === s",
                               arg=scheme)


def background_luminance(page: Page) -> float:
    """The relative luminance (0 black, 1 white) of the page background the reader sees."""
    value: float = page.evaluate("""() => {
        const c = getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g).map(Number);
        const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
    }""")
    return value


# -- the built files ------------------------------------------------------------------------

class References(html.parser.HTMLParser):
    """Every URL a page would load by itself, and every link a reader can follow."""

    LOADS = frozenset({"src", "srcset", "poster", "data", "action", "formaction", "background",
                       "manifest", "ping"})

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in self.LOADS:
                self.loads += [part.split()[0] for part in value.split(",") if part.strip()] \
                    if name == "srcset" else [value]
            elif name == "href":
                (self.links if tag in ("a", "area") else self.loads).append(value)
            elif name == "style":
                self.loads += css_urls(value)
            elif name == "content" and tag == "meta" and "url=" in value.lower():
                self.loads.append(value.split("=", 1)[1].strip())
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.loads += css_urls(data)


def css_urls(css: str) -> list[str]:
    """The targets of ``url(...)`` and ``@import "..."`` in a style sheet."""
    found = re.findall(r"""url\(\s*['"]?([^'")\s]+)""", css)
    found += re.findall(r"""@import\s+['"]([^'"]+)""", css)
    return found


def outside_host(url: str) -> str | None:
    """The host a URL would reach if it is not this machine (a ``//host`` URL counts)."""
    if url.startswith(("data:", "#", "blob:")):
        return None
    parts = urlsplit(url)
    if parts.hostname is None or is_local(url):
        return None
    return parts.hostname


def built(*suffixes: str) -> Iterator[Path]:
    return (path for path in sorted(SITE.rglob("*")) if path.suffix in suffixes)


def test_built_site_loads_nothing_from_another_host() -> None:
    """No HTML attribute, inline style, style sheet or script names another host to load."""
    if not (SITE / "index.html").is_file():
        pytest.skip("no built site (run `nox -s build` first)")
    found = []
    for path in built(".html"):
        refs = References()
        refs.feed(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(SITE)}: {url}" for url in refs.loads if outside_host(url)]
    for path in built(".css"):
        found += [f"{path.relative_to(SITE)}: {url}"
                  for url in css_urls(path.read_text(encoding="utf-8")) if outside_host(url)]
    for path in built(".js"):
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(SITE)}: {url}" for url in re.findall(
            r"""\b(?:src|href)\s*[=:]\s*['"`]((?:https?:)?//[^'"`]+)""", text)]
    assert found == []


def test_no_page_makes_material_fetch_from_another_host() -> None:
    """Material's script fetches Mermaid from unpkg.com when a page has a ``mermaid`` block,
    and the repository's stars from its host's API when the header shows the repository."""
    if not (SITE / "index.html").is_file():
        pytest.skip("no built site (run `nox -s build` first)")
    triggers = {"a mermaid diagram (Material loads Mermaid from unpkg.com)": 'class="mermaid',
                "the repository widget (Material asks api.github.com for its facts)":
                    'data-md-component="source"'}
    found = [f"{path.relative_to(SITE)}: {what}" for path in built(".html")
             for what, marker in triggers.items() if marker in path.read_text(encoding="utf-8")]
    assert found == []


def test_links_to_other_hosts_are_only_the_known_ones() -> None:
    """A page may link out (the reader decides to follow it) only to a host listed, with its
    reason, in OUTBOUND_LINKS; a new one is a decision to make there, not an accident."""
    if not (SITE / "index.html").is_file():
        pytest.skip("no built site (run `nox -s build` first)")
    unknown = []
    for path in built(".html"):
        refs = References()
        refs.feed(path.read_text(encoding="utf-8"))
        unknown += [f"{path.relative_to(SITE)}: {url}" for url in refs.links
                    if (host := outside_host(url)) and host not in OUTBOUND_LINKS]
    assert unknown == []


# -- loading pages ------------------------------------------------------------------------

def test_the_guard_blocks_and_records_a_request_to_another_host(
        page: Page, site: str, outside: Outside) -> None:
    """The wall the other tests rely on: a page's request to another host never leaves."""
    open_page(page, site, PAGES[0])
    before = len(outside.urls)
    targets = ["http://192.0.2.1/labkit-guard", "https://labkit-guard.invalid/x.js"]
    results = page.evaluate("""urls => Promise.all(urls.map(u =>
        fetch(u, {mode: 'no-cors'}).then(() => 'loaded', () => 'blocked')))""", targets)
    seen = outside.urls[before:]
    del outside.urls[before:]  # expected here; any other request still fails the test
    assert results == ["blocked", "blocked"]
    assert set(targets) <= set(seen)


@pytest.mark.parametrize("nav", PAGES, ids=ids(PAGES))
def test_page_loads_only_from_localhost(page: Page, site: str, outside: Outside,
                                        nav: NavPage) -> None:
    """Loading a page (its search index too) and scrolling through it asks no other host."""
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    before = len(outside.urls)
    open_page(page, site, nav, idle=True)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    assert outside.urls[before:] == []
    # It did load the site's own style, script and search index from 127.0.0.1.
    names = {urlsplit(url).path.rsplit("/", 1)[-1] for url in loaded}
    assert {"labkit.css", "search_index.json"} <= names
    assert any(name.startswith("bundle.") for name in names)


# -- figures --------------------------------------------------------------------------------

FIGURES_JS = """() => [...document.querySelectorAll('svg.labkit-diagram')].map(svg => {
    const textOf = el => [...el.querySelectorAll('text')].map(t => t.textContent).join('\\n');
    const view = svg.viewBox.baseVal;
    const rects = [...svg.querySelectorAll('rect')];
    const outside = [];
    for (const text of svg.querySelectorAll('text')) {
        const b = text.getBBox();
        // The innermost box drawn under the text's start, if any: the text must end inside it.
        const boxes = rects.filter(r => (r.compareDocumentPosition(text) & 4) && (() => {
            const x = r.x.baseVal.value, y = r.y.baseVal.value;
            return b.x + 1 >= x && b.x + 1 <= x + r.width.baseVal.value
                && b.y + b.height / 2 >= y && b.y + b.height / 2 <= y + r.height.baseVal.value;
        })());
        const box = boxes.length ? boxes[boxes.length - 1] : null;
        const right = box ? box.x.baseVal.value + box.width.baseVal.value : view.width;
        if (b.x < -0.5 || b.x + b.width > right + 0.5) {
            outside.push(`${text.textContent} (ends at ${b.x + b.width | 0}, edge ${right | 0})`);
        }
    }
    return {
        label: svg.getAttribute('aria-label'),
        text: textOf(svg),
        hops: svg.querySelectorAll('g.lk-hop').length,
        outside,
        data: [svg, ...svg.querySelectorAll('*')].filter(el => Object.keys(el.dataset).length)
            .map(el => ({
                where: el === svg ? 'svg' : `${el.tagName}.${el.getAttribute('class')}`,
                data: {...el.dataset},
                text: el.tagName === 'rect' ? null : textOf(el),
                around: el.parentElement.closest('g, svg') ? textOf(el.parentElement.closest(
                    'g, svg')) : null,
            })),
    };
})"""
OUTPUTS_JS = """() => [...document.querySelectorAll('.md-content pre')]
    .filter(pre => pre.querySelector('.gp'))
    .flatMap(pre => [...pre.querySelectorAll('.go, .gp')].map(line => line.textContent))
    .join('\\n')"""
"""What the commands on the page printed, and the prompts saying which pod or node ran them
(the lines of terminal blocks; never the commands themselves or the Python source)."""


def figure_pages() -> list[NavPage]:
    """The pages whose built HTML has a figure (the browser checks each one it shows)."""
    if not (SITE / "index.html").is_file():
        return PAGES
    return [p for p in PAGES
            if 'class="labkit-diagram"' in (SITE / p.path / "index.html").read_text("utf-8")]


FIGURE_PAGES = figure_pages()


def data_values(figure: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(element, attribute, one value, the text that should show it).

    That text is the element's own (a group's, a card's) or, for a box with no text of its
    own and for :data:`AROUND`, the text of the group it sits in.
    """
    for element in figure["data"]:
        for key, value in element["data"].items():
            attribute = re.sub(r"[A-Z]", lambda m: "-" + m[0].lower(), key)
            if attribute in NOT_DRAWN:
                continue
            text = element["around"] if element["text"] is None or attribute in AROUND \
                else element["text"]
            for token in value.split():
                yield element["where"], attribute, token, text or figure["text"]


@pytest.mark.parametrize("nav", FIGURE_PAGES, ids=ids(FIGURE_PAGES))
def test_figures_are_drawn_and_show_their_values(page: Page, site: str, nav: NavPage) -> None:
    """Each figure is on screen when scrolled to, and draws every value its data holds."""
    open_page(page, site, nav)
    figures = page.locator("svg.labkit-diagram")
    if figures.count() == 0:
        pytest.fail(f"{nav.source}: the built HTML has a figure but the page shows none")
    for index in range(figures.count()):
        shown = figures.nth(index)
        shown.scroll_into_view_if_needed()
        box = shown.bounding_box()
        assert shown.is_visible() and box is not None
        assert box["width"] > 100 and box["height"] > 100, box
        assert box["y"] < DESKTOP["height"] and box["y"] + box["height"] > 0, "not in view"
    report: list[dict[str, Any]] = page.evaluate(FIGURES_JS)
    for figure in report:
        missing = [f"{where} data-{key}={value!r}" for where, key, value, text
                   in data_values(figure) if value.casefold() not in text.casefold()]
        assert missing == [], figure["label"]
        hops = next((d["data"].get("hops") for d in figure["data"] if d["where"] == "svg"), None)
        if hops is not None:
            assert figure["hops"] == int(hops), figure["label"]


@pytest.mark.parametrize("nav", FIGURE_PAGES, ids=ids(FIGURE_PAGES))
def test_figures_show_what_the_commands_printed(page: Page, site: str, nav: NavPage) -> None:
    """The addresses, MACs, devices, pods and nodes in a figure are in the output printed on
    the same page (the names in its prompts): the figure and the terminal blocks beside it
    come from the same run."""
    open_page(page, site, nav)
    printed = page.evaluate(OUTPUTS_JS).casefold()
    assert printed, f"{nav.source}: a figure but no command output on the page"
    report: list[dict[str, Any]] = page.evaluate(FIGURES_JS)
    missing = sorted({f"{key}={value}" for figure in report
                      for _, key, value, _ in data_values(figure)
                      if not NUMBER.fullmatch(value)
                      and value.split("/")[0].casefold() not in printed})
    assert missing == []


@pytest.mark.parametrize("nav", FIGURE_PAGES, ids=ids(FIGURE_PAGES))
def test_figure_text_stays_inside_its_box(page: Page, site: str, nav: NavPage) -> None:
    """No label runs past the box it is drawn in, or past the figure's edge (with the
    fonts the browser really uses, not the estimate the layout was made with)."""
    open_page(page, site, nav)
    report: list[dict[str, Any]] = page.evaluate(FIGURES_JS)
    assert {f["label"]: f["outside"] for f in report if f["outside"]} == {}


CONTRAST_JS = """svg => {
    const canvas = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
    const rgba = css => {
        if (!css || css === 'none') return [0, 0, 0, 0];
        canvas.clearRect(0, 0, 1, 1);
        canvas.fillStyle = '#000';
        canvas.fillStyle = css;
        canvas.fillRect(0, 0, 1, 1);
        return [...canvas.getImageData(0, 0, 1, 1).data].map(v => v / 255);
    };
    const paint = (el, prop) => {
        const style = getComputedStyle(el), c = rgba(style[prop]);
        c[3] *= Number(style[prop === 'fill' ? 'fillOpacity' : 'opacity'] || 1);
        return c;
    };
    const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]))
        .concat([1]);
    const lum = c => c.slice(0, 3).map(v => v <= 0.03928 ? v / 12.92
        : Math.pow((v + 0.055) / 1.055, 2.4)).reduce((s, v, i) => s + v * [0.2126, 0.7152,
        0.0722][i], 0);
    let page = [0, 0, 0, 0];
    for (let el = svg; el && page[3] === 0; el = el.parentElement) {
        page = rgba(getComputedStyle(el).backgroundColor);
    }
    page = over(page, [1, 1, 1, 1]);
    const rects = [...svg.querySelectorAll('rect')];
    const worst = {};
    for (const text of svg.querySelectorAll('text')) {
        const b = text.getBBox(), x = b.x + 1, y = b.y + b.height / 2;
        let under = page;
        for (const r of rects) {
            const rx = r.x.baseVal.value, ry = r.y.baseVal.value;
            if ((r.compareDocumentPosition(text) & 4) && x >= rx && y >= ry
                && x <= rx + r.width.baseVal.value && y <= ry + r.height.baseVal.value) {
                under = over(paint(r, 'fill'), under);
            }
        }
        for (const part of [text, ...text.querySelectorAll('tspan')]) {
            const own = [...part.childNodes].filter(n => n.nodeType === 3).map(n => n.data)
                .join('').trim();
            if (!own) continue;
            const [hi, lo] = [lum(over(paint(part, 'fill'), under)), lum(under)]
                .sort((a, b) => b - a);
            const ratio = (hi + 0.05) / (lo + 0.05);
            const kind = part.getAttribute('class') || text.getAttribute('class') || 'plain';
            if (!(kind in worst) || ratio < worst[kind].ratio) worst[kind] = {ratio, text: own};
        }
    }
    return worst;
}"""


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("nav", FIGURE_PAGES, ids=ids(FIGURE_PAGES))
def test_figure_text_reads_in_both_schemes(page: Page, site: str, nav: NavPage,
                                           scheme: str) -> None:
    """Every kind of text in a figure (values, highlighted values, muted labels) stands out
    from what it is drawn on, in the light and the dark scheme alike."""
    open_page(page, site, nav)
    set_scheme(page, SCHEMES[scheme])
    figures = page.locator("svg.labkit-diagram")
    faint = {}
    for index in range(figures.count()):
        for kind, worst in figures.nth(index).evaluate(CONTRAST_JS).items():
            if worst["ratio"] < MIN_CONTRAST:
                faint[kind] = f"{worst['ratio']:.2f}:1 ({worst['text']!r})"
    assert faint == {}


# -- content tabs ---------------------------------------------------------------------------

def snippet_source(where: str) -> str:
    """The code of the snippet whose fence opens at ``docs_src/NN-x.md:LINE``."""
    match = re.fullmatch(r"(docs_src/[^:]+):(\d+)", where)
    assert match, where
    lines = (ROOT / match[1]).read_text(encoding="utf-8").splitlines()
    start = int(match[2])
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("nav", PAGES, ids=ids(PAGES))
def test_content_tabs_switch_between_output_and_source(page: Page, site: str,
                                                       nav: NavPage) -> None:
    """Clicking 「Python 源码」 shows the snippet as it stands in docs_src/ and hides the
    terminal; clicking 「终端」 brings the terminal back."""
    open_page(page, site, nav)
    sets = page.locator(".md-content .tabbed-set")
    if sets.count() == 0:
        pytest.skip(f"{nav.source} has no snippet with output (no tabs)")
    for index in range(sets.count()):
        tabs = sets.nth(index)
        labels = tabs.locator(":scope > .tabbed-labels > label").all()
        panels = tabs.locator(":scope > .tabbed-content > .tabbed-block").all()
        if len(labels) == 1:  # a snippet that ran nothing: its source is all it shows
            assert re.fullmatch(r"Python 源码（(.+)）", labels[0].inner_text())
            assert panels[0].is_visible()
            continue
        terminal, source = labels
        terminal_panel, source_panel = panels
        # 「命令与输出」 under a figure: the commands it was drawn from.
        assert terminal.inner_text() in ("终端", "命令与输出")
        assert terminal_panel.is_visible() and not source_panel.is_visible()
        where = re.fullmatch(r"Python 源码（(.+)）", source.inner_text())
        assert where, source.inner_text()
        source.click()
        assert source_panel.is_visible() and not terminal_panel.is_visible()
        assert source_panel.locator("code").inner_text().rstrip("\n") == \
            snippet_source(where[1]), where[1]
        terminal.click()
        assert terminal_panel.is_visible() and not source_panel.is_visible()


# -- search ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "pages", "best"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_search_finds_the_chapter(page: Page, site: str, query: str, pages: list[str],
                                  best: str) -> None:
    """Typing in Material's search box lists first the chapters that discuss the term; the
    best match in the first one opens that section with the term highlighted."""
    open_page(page, site, PAGES[0])
    box = page.locator("input.md-search__input")
    box.click()
    box.fill(query)
    box.press("End")  # the key-up Material's search listens for, as after typing
    results = page.locator(".md-search-result__list > .md-search-result__item")
    results.first.wait_for()
    found = [urlsplit(href).path.strip("/") for href in results.evaluate_all(
        "items => items.map(li => li.querySelector('a').href)")]
    # The chapter that is about the term comes first; the others listed follow in that order
    # (a later chapter that also discusses it, 六 for 169.254.1.1, may come in between).
    assert found[0] == pages[0] and [p for p in found if p in pages] == pages, found
    links = results.first.locator("a.md-search-result__link")
    scores = [float(score) for score in links.evaluate_all(
        "links => links.map(a => a.querySelector('article').dataset.mdScore)")]
    link = links.nth(scores.index(max(scores)))
    link.click()
    page.wait_for_load_state("networkidle")
    url = urlsplit(page.url)
    assert url.path + (f"#{url.fragment}" if url.fragment else "") == "/" + best
    assert unquote(url.query) == f"h={query}"
    assert page.locator(".md-content mark", has_text=query).count() > 0


# -- schemes and screenshots ----------------------------------------------------------------

def test_dark_system_preference_opens_the_dark_scheme(page: Page, site: str) -> None:
    """A reader whose system is dark, on a first visit, gets the dark scheme."""
    page.goto(site + "sitemap.xml")
    page.evaluate("localStorage.clear()")  # no choice remembered from another test
    page.emulate_media(color_scheme="dark")
    open_page(page, site, PAGES[0])
    assert page.get_attribute("body", "data-md-color-scheme") == "slate"
    assert background_luminance(page) < 0.05
    page.evaluate("localStorage.clear()")


def test_the_toggle_switches_scheme_and_it_is_kept(page: Page, site: str) -> None:
    """The header's button turns the page dark; the next page stays dark; it turns back."""
    open_page(page, site, PAGES[0])
    set_scheme(page, "default")
    assert background_luminance(page) > 0.9
    page.get_by_title("切换到深色").click()
    assert page.get_attribute("body", "data-md-color-scheme") == "slate"
    assert background_luminance(page) < 0.05
    open_page(page, site, PAGES[-1])
    assert page.get_attribute("body", "data-md-color-scheme") == "slate"
    page.get_by_title("切换到浅色").click()
    assert page.get_attribute("body", "data-md-color-scheme") == "default"
    assert background_luminance(page) > 0.9


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("nav", PAGES, ids=ids(PAGES))
def test_screenshot(page: Page, site: str, nav: NavPage, viewport: str, scheme: str) -> None:
    """screenshots/<viewport>-<scheme>/<page>.png, full page; the scheme really applied, no
    figure wider than its column, nothing wider than the screen, no table value broken."""
    page.set_viewport_size(VIEWPORTS[viewport])
    open_page(page, site, nav)
    set_scheme(page, SCHEMES[scheme])
    # Taken first, so a page that fails a check below can be looked at.
    folder = SCREENSHOTS / f"{viewport}-{scheme}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{nav.name}.png"
    page.screenshot(path=target, full_page=True)
    assert target.stat().st_size > 10_000
    luminance = background_luminance(page)
    assert luminance < 0.05 if scheme == "dark" else luminance > 0.9
    wide = page.evaluate("""() => [...document.querySelectorAll('svg.labkit-diagram')]
        .filter(svg => svg.getBoundingClientRect().width > svg.parentElement.clientWidth + 0.5)
        .map(svg => svg.getAttribute('aria-label'))""")
    assert wide == [], "figures wider than their column"
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    split = page.evaluate("""() => [...document.querySelectorAll('.md-typeset td code')]
        .filter(code => code.getClientRects().length > 1).map(code => code.textContent)""")
    assert split == [], "values in tables broken over two lines"
