# The site as a reader uses it (issue 17): terminals, copy, provenance, layout, the words.
"""What a reader meets on each page, in Chromium and in the built files.

Expected values are written down here from what the issue and FIDELITY.md say a reader
should see, never computed with labkit's own functions.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from browsing import DESKTOP, PHONE, SITE, NavPage, nav_pages

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PAGES = nav_pages()
CHAPTERS = [p for p in PAGES if p.name != "index"]
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
ZWSP = "\u200b"
"""jieba's word breaks in the search index."""

# Every command of a terminal, with what follows it: its output and its status line.
TERMINALS_JS = """() => [...document.querySelectorAll('.md-content .labkit-console')].map(block => {
    const commands = [];
    for (const node of block.querySelector('code').childNodes) {
        const cls = node.nodeType === 1 ? node.className : '';
        if (cls === 'gp') commands.push({prompt: node.textContent, text: '', output: '',
                                         status: ''});
        else if (!commands.length) continue;
        else if (cls === 'go') commands.at(-1).output += node.textContent;
        else if (cls === 'labkit-status') commands.at(-1).status += node.textContent;
        else if (cls === 'labkit-command') commands.at(-1).text += node.textContent;
    }
    return {commands, lines: block.innerText.split('\\n'),
            elements: [...block.querySelectorAll('code *')].map(e => e.className)};
})"""


def open_page(page: Page, site: str, nav: NavPage) -> None:
    page.goto(site + nav.path, wait_until="load")
    page.evaluate("document.fonts.ready")


def terminals(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(TERMINALS_JS)
    return found


def text_of(page: Page) -> str:
    """The article's visible text with runs of whitespace as one space."""
    return " ".join(page.locator("article").inner_text().split())


# -- console blocks ------------------------------------------------------------------------

def test_copy_copies_the_commands_one_per_line(page: Page, site: str) -> None:
    """Material's copy button on a terminal puts the commands on the clipboard, one per
    line, without prompts or output: what a reader pastes into a shell."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    checked = 0
    for nav in CHAPTERS:
        open_page(page, site, nav)
        blocks = page.locator(".md-content .labkit-console")
        for index, block in enumerate(terminals(page)):
            shown = blocks.nth(index)
            if not shown.is_visible():
                continue  # in a closed box or another tab: the reader cannot press it
            shown.hover()
            shown.locator("button.md-code__button[data-md-type=copy]").click()
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == "\n".join(c["text"] for c in block["commands"]), nav.name
            assert "root@" not in copied and "\n\n" not in copied
            # The first command as the reader sees it, right after its prompt.
            assert block["lines"][0] == block["commands"][0]["prompt"] + copied.split("\n")[0]
            checked += 1
    assert checked >= 15


def test_copy_of_the_grep_that_finds_nothing(page: Page, site: str) -> None:
    """The issue's own example: chapter 三's `ip addr | grep 169.254.1.1` copies as that."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_page(page, site, next(p for p in PAGES if p.name == "03-datapath"))
    block = page.locator(".md-content .labkit-console", has_text="grep 169.254.1.1").first
    block.scroll_into_view_if_needed()
    block.hover()
    block.locator("button.md-code__button[data-md-type=copy]").click()
    assert page.evaluate("navigator.clipboard.readText()") == "ip addr | grep 169.254.1.1"
    # On the node a real scheduler gave the chapter's two pods (the seed's was worker2).
    first, second = block.inner_text().splitlines()[:2]
    assert re.fullmatch(r"root@calico-ipip-(worker2?|control-plane):/# ip addr \| grep "
                        r"169\.254\.1\.1", first), first
    assert second == "（无输出，退出码 1）"


@pytest.mark.parametrize("nav", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_terminals_are_plain_text_with_muted_prompts(page: Page, site: str,
                                                     nav: NavPage) -> None:
    """No colour inside a command (the highlighter made the `3` of `-c 3` and the `169` of
    169.254.1.1 stand out): commands and output in the text colour, prompts muted."""
    open_page(page, site, nav)
    blocks = terminals(page)
    if not blocks:
        pytest.skip(f"{nav.name} shows no terminal")
    allowed = {"gp", "go", "labkit-command", "labkit-status"}
    assert {cls for b in blocks for cls in b["elements"]} <= allowed
    colours = page.evaluate("""() => [...document.querySelectorAll('.labkit-console code')]
        .map(code => ({code: getComputedStyle(code).color,
                       ...Object.fromEntries(['gp', 'go', 'labkit-command', 'labkit-status']
                         .map(c => [c, [...code.querySelectorAll('.' + c)]
                                    .map(e => getComputedStyle(e).color)]))}))""")
    for block in colours:
        assert set(block["labkit-command"]) <= {block["code"]}
        assert set(block["go"]) <= {block["code"]}
        assert block["code"] not in set(block["gp"]) | set(block["labkit-status"])


@pytest.mark.parametrize("nav", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_a_command_that_prints_nothing_or_fails_says_so(page: Page, site: str,
                                                        nav: NavPage) -> None:
    """Under a command with no output a muted （无输出…） line; a failing one shows its status."""
    open_page(page, site, nav)
    for block in terminals(page):
        for command in block["commands"]:
            if not command["output"]:
                assert re.fullmatch(r"（无输出(，退出码 \d+)?）", command["status"]), command
            else:
                assert re.fullmatch(r"(（退出码 [1-9]\d*）)?", command["status"]), command


@pytest.mark.parametrize("nav", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_full_provenance_once_per_page_and_only_the_time_per_block(
        page: Page, site: str, nav: NavPage) -> None:
    open_page(page, site, nav)
    if not terminals(page):
        pytest.skip(f"{nav.name} shows no terminal")
    full = page.locator(".labkit-page-provenance:not(.labkit-other-labs)").all_inner_texts()
    assert len(full) == 1, full
    # A chapter that compares two labs names the other once too, by the rules it follows.
    others = page.locator(".labkit-other-labs").all_inner_texts()
    assert all(re.search(r"按 (Calico|Flannel) v\S+ 的规则复刻", o) for o in others), others
    # Lab, the rules it follows (the replica runs no Calico), mode, kernel, live or replayed.
    assert re.search(r"netns 复刻实验室 · (\S+ 实验室 · )?按 (Calico v3\.23\.5|Flannel v\S+) "
                     r"的规则复刻 · \S+ 模式 · Linux \S+ · .*(本次构建实时运行|回放自 transcript)",
                     full[0]), full[0]
    per_block = page.locator(".labkit-provenance:not(.labkit-page-provenance)").all_inner_texts()
    assert per_block
    for line in per_block:
        assert re.fullmatch(r"(运行于 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · "
                            r"(本次构建实时运行|回放自 transcript)|录制于真实集群 \d{4}-\d\d-\d\d "
                            r"\d\d:\d\d:\d\d UTC · 回放自真实集群的录制)", line.strip()), line
    # Outputs only a real cluster prints: the page names that cluster once, with its versions.
    real = page.locator(".labkit-real-recording").all_inner_texts()
    borrowed = [line for line in per_block if line.startswith("录制于真实集群")]
    assert len(real) == (1 if borrowed else 0), real
    if borrowed:
        assert re.search(r"回放自 native 真实集群（Calico v3\.23\.2、Kubernetes v1\.23\.4、"
                         r"containerd \S+、runc \S+、Linux \S+）", real[0]), real[0]
    # "Calico v3.23.5" with nothing before it would read as if Calico ran here.
    provenance = " ".join(full + others + per_block + [page.locator("article details.abstract")
                                                       .first.inner_text()])
    assert re.findall(r"(?<!按 )Calico v3\.23\.5", provenance) == []


# -- layout --------------------------------------------------------------------------------

@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("nav", PAGES, ids=[p.name for p in PAGES])
def test_nothing_a_reader_needs_scrolls_sideways(page: Page, site: str, nav: NavPage,
                                                 viewport: str) -> None:
    """Visible tables fit their column, terminals wrap their long lines."""
    page.set_viewport_size(VIEWPORTS[viewport])
    open_page(page, site, nav)
    # Material puts a table in a scrolling wrapper: the wrapper is what would scroll.
    wide = page.evaluate("""() => [...document.querySelectorAll(
            '.md-content .md-typeset__scrollwrap, .md-content table,'
            + '.md-content .labkit-console pre > code')]
        .filter(e => e.checkVisibility() && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.innerText.slice(0, 60))""")
    assert wide == []


def test_the_per_hop_tables_are_folded_under_their_figure(page: Page, site: str) -> None:
    """Chapter 四: each walk's figure is what shows; its ten-column table is in a closed box."""
    open_page(page, site, next(p for p in PAGES if p.name == "04-gateway"))
    walks = page.locator(".labkit-figure.labkit-walk")
    assert walks.count() == 2
    for index in range(walks.count()):
        folded = walks.nth(index).locator("xpath=following-sibling::*[1]")
        assert folded.evaluate("e => e.tagName") == "DETAILS"
        assert folded.get_attribute("open") is None
        assert folded.locator("table").count() >= 1
        assert not folded.locator("table").first.is_visible()


def test_proxy_arp_is_on_screen_on_a_phone(page: Page, site: str) -> None:
    """The value the prose of 四 talks about is on screen, not past the right edge."""
    page.set_viewport_size(PHONE)
    open_page(page, site, next(p for p in PAGES if p.name == "04-gateway"))
    block = page.locator(".labkit-console", has_text="proxy_arp = 1").first
    block.scroll_into_view_if_needed()
    right = block.evaluate("""b => {
        const code = b.querySelector('code'); const walker = document.createTreeWalker(code, 4);
        let node; while ((node = walker.nextNode())) {
            const at = node.textContent.indexOf('proxy_arp = 1');
            if (at >= 0) { const r = document.createRange(); r.setStart(node, at);
                           r.setEnd(node, at + 13); return r.getBoundingClientRect().right; }
        } return null; }""")
    assert right is not None and right <= PHONE["width"]


def test_a_diagram_is_legible_on_a_phone_after_a_tap(page: Page, site: str) -> None:
    """On a 390 px phone the node diagram's 12-unit text is drawn at about 10 px; a tap shows
    the figure full size (at least 12 px), another tap brings the page back."""
    page.set_viewport_size(PHONE)
    open_page(page, site, next(p for p in PAGES if p.name == "01-same-node"))
    figure = page.locator(".labkit-figure").first
    svg = figure.locator("svg.labkit-diagram")
    size = "s => s.getBoundingClientRect().width / s.viewBox.baseVal.width * 12"
    svg.scroll_into_view_if_needed()
    assert svg.evaluate(size) < 12  # why the tap is needed at all
    assert figure.locator(".labkit-zoom-hint").is_visible()
    svg.click()
    assert svg.evaluate(size) >= 12
    box = figure.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"] + 1  # it scrolls inside
    svg.click()
    assert svg.evaluate(size) < 12


@pytest.mark.parametrize("nav", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_snippet_has_its_tabs_and_no_figure_is_in_one(page: Page, site: str,
                                                            nav: NavPage) -> None:
    """A figure stands on the page, never in the 「终端」 tab; a snippet's source is always a
    tab (the `labkit status` block kept it in a box under the output)."""
    open_page(page, site, nav)
    assert page.locator(".tabbed-set svg.labkit-diagram").count() == 0
    boxed = page.locator("article details > summary", has_text="Python 源码").count()
    assert boxed == 0  # a snippet's source is a tab, never folded in a box
    for labels in page.locator(".tabbed-labels").all():
        names = labels.locator("label").all_inner_texts()
        # A snippet that ran nothing and drew nothing has only its source to show.
        assert (len(names) == 2 and names[0] in ("终端", "命令与输出")) or len(names) == 1, names
        assert names[-1].startswith("Python 源码（docs_src/")


def test_labkit_status_is_a_terminal_in_a_tab(page: Page, site: str) -> None:
    open_page(page, site, next(p for p in PAGES if p.name == "02-setup"))
    block = page.locator(".tabbed-set .labkit-console", has_text="labkit status").first
    assert block.inner_text().startswith("$ labkit status\n")
    labels = block.locator("xpath=ancestor::div[contains(@class,'tabbed-set')][1]") \
        .locator(".tabbed-labels label").all_inner_texts()
    assert labels[0] == "终端" and labels[1].startswith("Python 源码")


# -- words ---------------------------------------------------------------------------------

WORDS = {
    # (the page, what it must say, what it must no longer say)
    "01-same-node": (["inet 那一行也没有 brd", "brd ff:ff:ff:ff:ff:ff 是以太网的广播 MAC"],
                     ["输出里也没有 brd"]),
    "03-datapath": (["ttl=63 是 回应", "natOutgoing", "docker 主机", "代理 ARP"],
                    ["在那里被默默丢弃"]),
    "04-gateway": (["代理 ARP", "多了一次转发，一共两次"], ["多了两次转发"]),
}


@pytest.mark.parametrize("name", WORDS)
def test_the_words_the_issue_corrected(page: Page, site: str, name: str) -> None:
    open_page(page, site, next(p for p in PAGES if p.name == name))
    text = text_of(page)
    must, must_not = WORDS[name]
    assert [w for w in must if w not in text] == []
    assert [w for w in must_not if w in text] == []


@pytest.mark.parametrize("nav", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_the_banner_spaces_the_lab_name(page: Page, site: str, nav: NavPage) -> None:
    open_page(page, site, nav)
    text = text_of(page)
    assert "来自netns" not in text
    if terminals(page):
        assert "本页输出来自 netns 复刻实验室" in text


def test_the_deployment_shown_has_no_english_comment(page: Page, site: str) -> None:
    open_page(page, site, next(p for p in PAGES if p.name == "03-datapath"))
    shown = page.locator("article pre > code", has_text="kind: Deployment").first
    lines = shown.inner_text().splitlines()
    assert lines[0] == "apiVersion: apps/v1"
    assert [line for line in lines if line.lstrip().startswith("#")] == []


def test_one_spelling_of_pod_in_the_site_name_and_titles(page: Page, site: str) -> None:
    for nav in PAGES:
        open_page(page, site, nav)
        titles = [page.title(), page.locator("article h1").first.inner_text(),
                  *page.locator(".md-nav--primary .md-nav__link").all_inner_texts()]
        assert [t for t in titles if re.search(r"\bPod\b", t)] == [], nav.name
    assert "pod 通信" in page.title()


def test_the_404_page_is_in_chinese(page: Page, site: str) -> None:
    # What a server that knows MkDocs (GitHub Pages, nginx's error_page) shows for a bad URL.
    page.goto(site + "404.html", wait_until="load")
    assert "找不到这个页面" in page.locator("article h1").inner_text()
    assert "Not found" not in page.locator("article").inner_text()
    assert page.locator("html").get_attribute("lang") == "zh"


def test_the_home_page_says_what_the_original_is(page: Page, site: str) -> None:
    open_page(page, site, PAGES[0])
    text = text_of(page)
    for words in ("原文是一篇中文技术博客文章", "同一节点上两个 pod 之间的包怎么走", "kind",
                  "终端截图", "这本手册和原文的关系", "章节与原文一一对应"):
        assert words in text, words


@pytest.mark.parametrize(("name", "command", "header"), [
    ("02-setup", "kubectl get nodes -o wide", "STATUS   ROLES"),
    ("02-setup", "calicoctl get ippool -o wide", "CIDR            NAT    IPIPMODE"),
    ("03-datapath", "kubectl get pods -o wide", "READY   STATUS    RESTARTS"),
])
def test_the_seeds_kubectl_and_calicoctl_outputs_are_on_the_page(
        page: Page, site: str, name: str, command: str, header: str) -> None:
    """A default build (the replica) shows what the real cluster printed for them, marked
    as recorded there, and never a notice in place of an output."""
    open_page(page, site, next(p for p in PAGES if p.name == name))
    terminal = page.locator("article .tabbed-block pre", has_text=command).first
    assert header in terminal.inner_text()
    stamps = page.locator("article .labkit-provenance", has_text="录制于真实集群").count()
    assert stamps >= 1 and page.locator("article .labkit-real-recording").count() == 1
    assert page.locator("article .admonition.info", has_text="本次构建没有运行它").count() == 0


# -- search --------------------------------------------------------------------------------

def search_docs() -> list[dict[str, str]]:
    path = SITE / "search" / "search_index.json"
    if not path.is_file():
        pytest.skip(f"no built site: {path} is missing")
    docs: list[dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))["docs"]
    return [{**d, "text": d["text"].replace(ZWSP, ""), "title": d["title"].replace(ZWSP, "")}
            for d in docs]


def test_search_excerpts_are_prose_and_outputs() -> None:
    """No figure's inner words, no Python source, no tab labels run together."""
    docs = search_docs()
    text = "\n".join(d["text"] for d in docs)
    assert "终端Python" not in text and "Python 源码（" not in text
    assert "assert " not in text and "lab.node(" not in text
    # Words only a figure draws (the gateway box of the node diagram).
    assert "无人拥有" not in text
    # What stays: the outputs (a sysctl of 四) and the prose.
    four = "\n".join(d["text"] for d in docs if d["location"].startswith("04-gateway/"))
    assert ".proxy_arp = 1" in four and "代理 ARP" in four


def test_search_finds_proxy_arp_by_its_usual_name(page: Page, site: str) -> None:
    open_page(page, site, PAGES[0])
    box = page.locator("input.md-search__input")
    box.click()
    box.fill("代理")
    box.press("End")
    results = page.locator(".md-search-result__list > .md-search-result__item")
    results.first.wait_for()
    found = results.evaluate_all("items => items.map(li => li.querySelector('a').href)")
    assert any("/04-gateway/" in href for href in found), found
