# One cluster through each chapter: a pod's MAC, netns and veth agree wherever its page prints them.
"""A reader follows one cluster through a chapter (issue 17): the pod that shows MAC X in one
terminal shows MAC X in every other of that page, and its address, veth and netns agree
wherever they are printed. Each chapter is its own run of the seed's setup (the real cluster
brings one up per chapter, and the replica follows that chapter's recording), so names and
MACs are the same within a page, not from one page to the next.
Read from what the terminals print, page by page: a pod's own
``eth0`` (``ip addr``/``ip link``, text or ``-j``), the node's ``cali`` lines with their
``link-netns``, the node's neighbour entries, and the walks' figures (drawn from captures).

The veth of a pod is Calico's name for it, written down here from FIDELITY.md:
``"cali" + sha1("<namespace>.<pod>")[:11]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest
from browsing import nav_pages

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PAGES = [p for p in nav_pages() if p.name != "index"]
PROMPT = re.compile(r"root@(\S+):/# $")
NODE = re.compile(r"(calico-ipip|kind)-(control-plane|worker\d*)$")
MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
POD_ETH0 = re.compile(rf"^\d+: eth0@if\d+: [^\n]*\n\s+link/ether ({MAC}) ", re.M)
NODE_CALI = re.compile(rf"^\d+: (cali[0-9a-f]{{11}})@if\d+: [^\n]*\n\s+link/ether {MAC} "
                       rf"brd {MAC} link-netns (\S+)", re.M)
NEIGH = re.compile(rf"^(\d+\.\d+\.\d+\.\d+) dev (cali[0-9a-f]{{11}}) lladdr ({MAC})", re.M)
POD_INET = re.compile(r"^\s+inet (\d+\.\d+\.\d+\.\d+)/32 scope global eth0", re.M)
ROUTE = re.compile(r"^(\d+\.\d+\.\d+\.\d+) dev (cali[0-9a-f]{11}) scope link", re.M)

COMMANDS_JS = """() => [...document.querySelectorAll('.md-content .labkit-console code')]
    .flatMap(code => {
        const out = [];
        for (const node of code.childNodes) {
            const cls = node.nodeType === 1 ? node.className : '';
            if (cls === 'gp') out.push({prompt: node.textContent, output: ''});
            else if (cls === 'go' && out.length) out.at(-1).output += node.textContent;
        }
        return out;
    })"""


# A walk's card for a pod's eth0: the frame it sent is from its MAC, the one it got is to it.
HOPS_JS = """() => [...document.querySelectorAll('svg.labkit-diagram g.lk-hop')]
    .filter(g => g.dataset.interface === 'eth0')
    .map(g => [g.dataset.where,
               g.dataset.direction === 'out' ? g.dataset.srcMac : g.dataset.dstMac])"""


def veth_of(pod: str, namespace: str = "default") -> str:
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def facts(commands: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """What this page's terminals say: pod -> MAC, veth -> netns, veth -> the MAC behind it."""
    found: dict[str, dict[str, str]] = {"pod MAC": {}, "pod IP": {}, "IP veth": {},
                                        "veth netns": {}, "veth neighbour": {}}
    for command in commands:
        where = PROMPT.search(command["prompt"])
        if where is None:
            continue
        output = command["output"]
        if NODE.match(where[1]):
            found["veth netns"].update(dict(NODE_CALI.findall(output)))
            found["veth neighbour"].update({veth: mac for _, veth, mac in NEIGH.findall(output)})
            found["IP veth"].update(dict(ROUTE.findall(output)))
            found["IP veth"].update({ip: veth for ip, veth, _ in NEIGH.findall(output)})
            continue
        for ip in POD_INET.findall(output):
            found["pod IP"][where[1]] = ip
        macs = set(POD_ETH0.findall(output)) | set(_json_eth0(output))
        if macs:
            assert len(macs) == 1, (where[1], macs)  # one eth0 in one pod
            found["pod MAC"][where[1]] = macs.pop()
    return found


def _json_eth0(output: str) -> list[str]:
    try:
        devices: Any = json.loads(output)
    except ValueError:
        return []
    if not isinstance(devices, list):
        return []
    return [d["address"] for d in devices
            if isinstance(d, dict) and d.get("ifname") == "eth0" and "address" in d]


def test_every_pod_is_the_same_pod_wherever_its_page_prints_it(page: Page, site: str) -> None:
    # kind of fact -> (page, key) -> value -> the pages that printed it
    seen: dict[str, dict[tuple[str, str], dict[str, set[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set)))
    for nav in PAGES:
        page.goto(site + nav.path, wait_until="load")
        if not page.locator(".labkit-page-provenance", has_text="Calico").count():
            continue  # another cluster's chapter (Flannel's) has pods of its own
        for kind, values in facts(page.evaluate(COMMANDS_JS)).items():
            for key, value in values.items():
                seen[kind][(nav.name, key)][value].add(nav.name)
        for pod, mac in page.evaluate(HOPS_JS):
            if not NODE.match(pod):
                seen["pod MAC"][(nav.name, pod)][mac].add(nav.name)
    # A pod's MAC, as the pod prints it and as its node's neighbour table holds it.
    for (name, pod), macs in seen["pod MAC"].items():
        for mac, pages in seen["veth neighbour"].get((name, veth_of(pod)), {}).items():
            macs[mac] |= pages
    # An address is not a pod: chapter 二 shows three labs whose pods sit differently (a
    # pod's MAC, netns and veth follow the pod, its address follows the lab's IPAM).
    differ = {f"{kind} {key}": {v: sorted(p) for v, p in values.items()}
              for kind, keys in seen.items() if kind not in ("pod IP", "IP veth")
              for key, values in keys.items() if len(values) > 1}
    assert differ == {}
    # Not a check that cannot fail: the facts are found at all, on several pages (only
    # chapter 三 prints the netns names, in `ip addr` on the node).
    assert len({name for name, _ in seen["pod MAC"]}) >= 3
    assert seen["IP veth"]
    assert any((name, veth_of(pod)) in seen["veth netns"] for name, pod in seen["pod IP"])
