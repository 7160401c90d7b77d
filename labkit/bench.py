# The benchmark behind the README's figures: the lab's speed, and what a rebuild costs.
"""``python -m labkit.bench`` (``nox -s bench``) measures, side by side in one run:

1. **the lab**: bringing the seed topology up and down (median of N), and one
   ``sh("ip route")`` through the Lab API against the same command run with
   ``nsenter`` straight into the same namespaces (the holder process of the
   node), as a ratio;
2. **builds**, in a temporary copy of the project: a cold live build, a rebuild
   with nothing changed, a rebuild after a prose-only edit, and plain
   ``mkdocs build`` of the very pages the rebuild rendered, with no labkit in it
   at all (the gen-files plugin left out of ``mkdocs.yml``), with the ratios of
   the rebuilds to that plain build.

Every build is ``python -m labkit.cli build`` as an author runs it (wall clock,
including interpreter start and mkdocs), and so is the plain one (``python -m
mkdocs build``): the ratio is what labkit adds to a site build.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .build import ROOT
from .lab import Lab, open_lab

QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
NODE = "calico-ipip-worker2"
COMMAND = "ip route"
# What a prose-only edit adds: a sentence, outside every snippet, in the longest chapter.
PROSE_CHAPTER = "03-datapath.md"
PROSE_ANCHOR = "\n## 2. 登录节点 calico-ipip-worker2\n"
PROSE_EDIT = "（基准测试加的一句话：只改了正文。）\n"


# -- the lab ---------------------------------------------------------------------------------

def _median(values: list[float]) -> float:
    return statistics.median(values)


def _time(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def lab_up_down(rounds: int) -> list[float]:
    """Seconds to bring the seed topology up and down again, ``rounds`` times."""
    return [_time(lambda: open_lab("netns").close()) for _ in range(rounds)]


def holder_pid(lab: Lab, name: str) -> int:
    """The host pid of the process that holds ``name``'s namespaces (a netns lab's)."""
    process = getattr(lab._backend, "_process", None)
    if process is None:
        raise RuntimeError("only a netns lab this process started has holders to find")
    pending: list[int] = [int(process.pid)]
    found: list[int] = []
    while pending:  # the agent -> the lab's PID 1 -> one holder per node and pod
        pid = pending.pop()
        found.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        pending += [int(c) for c in children.read_text().split()] if children.exists() else []
    for pid in found[2:]:
        hostname = subprocess.run(_nsenter(pid, ["hostname"]), capture_output=True, text=True)
        if hostname.returncode == 0 and hostname.stdout.strip() == name:
            return pid
    raise RuntimeError(f"no holder process for {name} among {found}")


def _nsenter(pid: int, argv: list[str]) -> list[str]:
    # The user namespace first (it owns the others), keeping our uid as the agent does.
    return ["nsenter", "-t", str(pid), "-U", "-n", "-u", "-m", "--preserve-credentials", *argv]


def sh_against_nsenter(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per ``sh("ip route")`` on a node, through labkit and through nsenter."""
    with open_lab("netns") as lab:
        node = lab.node(NODE)
        pid = holder_pid(lab, NODE)
        direct = _nsenter(pid, ["/bin/sh", "-c", COMMAND])
        through_labkit = node.sh(COMMAND).stdout
        by_hand = subprocess.run(direct, capture_output=True, text=True, check=True).stdout
        if through_labkit != by_hand:
            raise RuntimeError(f"labkit and nsenter disagree:\n{through_labkit}\n{by_hand}")
        labkit_times, nsenter_times = [], []
        for _ in range(rounds):  # interleaved, so both meet the same machine
            labkit_times.append(_time(lambda: node.sh(COMMAND)))
            nsenter_times.append(_time(lambda: subprocess.run(direct, capture_output=True,
                                                              check=True)))
    return labkit_times, nsenter_times


# -- builds ----------------------------------------------------------------------------------

def copy_project(where: Path) -> Path:
    """A copy of the project to build in: chapters, manifests, site config, and labkit itself
    (the builds import this copy, so an edit to the checkout meanwhile cannot reach them)."""
    where.mkdir(parents=True)
    for name in ("mkdocs.yml", "docs", "docs_src", "manifests", "labkit"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, where / name, ignore=shutil.ignore_patterns(
                "__pycache__", "transcripts"))
        else:
            shutil.copy(source, where / name)
    return where


def plain_config(root: Path, docs: str) -> str:
    """The project's mkdocs.yml with ``docs_dir`` moved and the gen-files plugin left out."""
    config = (root / "mkdocs.yml").read_text(encoding="utf-8")
    plain, count = re.subn(r"\n  - gen-files:\n(?:      .*\n)+", "\n", config)
    if count != 1:
        raise RuntimeError("cannot find the gen-files plugin in mkdocs.yml to leave it out")
    # `watch` only serves `mkdocs serve`, and names folders beside the real mkdocs.yml.
    plain = re.sub(r"\nwatch:\n(?:[ \t]+-.*\n)*", "\n", plain)
    return re.sub(r"^docs_dir: .*$", f"docs_dir: {docs}", plain, count=1, flags=re.M)


def plain_site(root: Path, pages: dict[str, str], where: Path) -> Path:
    """Build ``pages`` (file name -> Markdown) with plain mkdocs; return the site folder."""
    docs = where / "docs"
    shutil.copytree(root / "docs", docs, ignore=shutil.ignore_patterns("__pycache__"))
    for name, markdown in pages.items():
        (docs / name).write_text(markdown, encoding="utf-8")
    config = where / "mkdocs.yml"
    config.write_text(plain_config(root, str(docs)), encoding="utf-8")
    site = where / "site"
    _mkdocs(root, config, site)
    return site


def rendered_pages(root: Path) -> dict[str, str]:
    """The pages a build of the copy at ``root`` renders now (with the copy's labkit)."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from labkit.build import Options, build\n"
        "root = Path.cwd()\n"
        "pages = build(Options(source=root / 'docs_src', state=root / '.labkit',\n"
        "                      manifests=root / 'manifests', log=lambda _: None))\n"
        "if any(p.how == 'live' for p in pages):\n"
        "    sys.exit('the pages for the plain build would have run live')\n"
        "json.dump({p.name: p.markdown for p in pages}, sys.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(root)))
    if done.returncode != 0:
        raise RuntimeError(f"cannot render the pages for the plain build:\n{done.stderr}")
    pages: dict[str, str] = json.loads(done.stdout)
    return pages


def _mkdocs(root: Path, config: Path, site: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-f", str(config), "-d", str(site)], cwd=root,
                          capture_output=True, text=True, env=dict(os.environ, **QUIET))
    if done.returncode != 0:
        raise RuntimeError(f"plain mkdocs build failed:\n{done.stderr[-3000:]}")


def labkit_build(root: Path, *args: str) -> tuple[float, str]:
    """Run ``labkit build`` in ``root``; return its wall time and labkit's log lines."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "build", *args], cwd=root,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root), **QUIET))
    elapsed = time.perf_counter() - started
    log = "\n".join(line for line in done.stderr.splitlines() if line.startswith("labkit"))
    if done.returncode != 0:
        raise RuntimeError(f"labkit build {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return elapsed, log


def _expect(log: str, how: str, what: str) -> None:
    ran = [line for line in log.splitlines() if ": running live" in line]
    if how == "cached" and ran:
        raise RuntimeError(f"{what}: chapters ran live, the cache did not hold:\n{log}")


def builds(rounds: int, keep: Path | None = None) -> dict[str, list[float]]:
    """Seconds for each kind of build, in one temporary copy of the project."""
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        root = copy_project(Path(keep or tmp) / "project")
        figures: dict[str, list[float]] = {"cold": [], "unchanged": [], "prose": [], "plain": []}
        elapsed, log = labkit_build(root)
        if "running live" not in log:
            raise RuntimeError(f"the cold build did not run live:\n{log}")
        figures["cold"].append(elapsed)
        chapter = root / "docs_src" / PROSE_CHAPTER
        original = chapter.read_text(encoding="utf-8")
        if PROSE_ANCHOR not in original:
            raise RuntimeError(f"{PROSE_CHAPTER} no longer has {PROSE_ANCHOR.strip()!r}")
        # Plain mkdocs gets the very pages labkit renders here, with no labkit in the build.
        plain = root.parent / "plain"
        plain_site(root, rendered_pages(root), plain)  # once, to warm what the rebuilds had
        labkit_build(root)  # and one untimed rebuild: the first one after a fresh venv pays
        # for what the OS has not cached yet, which is no part of what a rebuild costs
        for round_ in range(rounds):  # interleaved, so all three meet the same machine
            elapsed, log = labkit_build(root)
            _expect(log, "cached", "the rebuild with nothing changed")
            figures["unchanged"].append(elapsed)
            edit = PROSE_EDIT.replace("。", f"第 {round_ + 1} 次。")
            chapter.write_text(original.replace(PROSE_ANCHOR, f"\n{edit}{PROSE_ANCHOR}"),
                               encoding="utf-8")
            elapsed, log = labkit_build(root)
            _expect(log, "cached", "the rebuild after a prose-only edit")
            html = (root / "site" / Path(PROSE_CHAPTER).stem / "index.html").read_text("utf-8")
            if edit.strip() not in html:
                raise RuntimeError("the prose edit is not on the rebuilt page")
            figures["prose"].append(elapsed)
            shutil.rmtree(plain / "site", ignore_errors=True)
            figures["plain"].append(_time(lambda: _mkdocs(root, plain / "mkdocs.yml",
                                                          plain / "site")))
    return figures


# -- the report ------------------------------------------------------------------------------

def _row(label: str, values: list[float], unit: float = 1.0, suffix: str = "s") -> str:
    med = _median(values) * unit
    spread = f"(min {min(values) * unit:.3g}, max {max(values) * unit:.3g}, n={len(values)})"
    return f"  {label:<46} {med:8.3f} {suffix}  {spread}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab-rounds", type=int, default=10,
                        help="lab up/down cycles (default 10)")
    parser.add_argument("--sh-rounds", type=int, default=200,
                        help="`ip route` runs each way (default 200)")
    parser.add_argument("--build-rounds", type=int, default=5,
                        help="rebuilds of each kind (default 3)")
    parser.add_argument("--skip-lab", action="store_true")
    parser.add_argument("--skip-builds", action="store_true")
    args = parser.parse_args(argv)
    print(f"labkit bench on {os.uname().nodename} (Linux {os.uname().release}, "
          f"{os.cpu_count()} CPUs, uid {os.getuid()})")
    if not args.skip_lab:
        up = lab_up_down(args.lab_rounds)
        through, direct = sh_against_nsenter(args.sh_rounds)
        ratio = _median(through) / _median(direct)
        print("the lab:")
        print(_row("seed topology up + down (aim < 1 s)", up))
        print(_row(f'sh("{COMMAND}") through labkit', through, 1000, "ms"))
        print(_row(f"nsenter -t PID -U -n -u -m ... {COMMAND}", direct, 1000, "ms"))
        print(f"  {'ratio labkit / nsenter (aim <= 1.3)':<46} {ratio:8.2f}")
    if not args.skip_builds:
        figures = builds(args.build_rounds)
        plain = _median(figures["plain"])
        print("builds (labkit build, wall clock; ratios to plain mkdocs build):")
        for key, label in (("cold", "cold live build"),
                           ("unchanged", "rebuild, nothing changed (aim <= 1.2x)"),
                           ("prose", "rebuild after a prose-only edit (aim <= 1.2x)"),
                           ("plain", "plain mkdocs build of the same pages")):
            print(f"{_row(label, figures[key])}  {_median(figures[key]) / plain:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
