# The benchmark behind the README's figures: the lab's speed, and what a rebuild costs.
"""``python -m benchmarks.bench`` (``nox -s bench``) measures, side by side in one run:

1. **the lab**: bringing the seed topology up, and down (median of N), and one
   ``sh("ip route")`` through the Lab API against the same command run with
   ``nsenter`` straight into the same namespaces (the holder process of the
   node), as a ratio;
2. **scale**: labs of 10, 100 and 1000 pods on 16 nodes (start-up, the cost of
   each extra pod, the PSS of all the lab's processes), the same pods built by a
   shell loop of bare ``ip`` calls, and, as root where Mininet is installed,
   ``mn --switch lxbr --controller none --topo single,N --test none`` against a
   lab of N pods on one node;
3. **builds**, in a temporary copy of the project: a cold live build (chapters side by
   side), the same with one chapter at a time (``--jobs 1``), whose log gives each
   chapter's own time, against the aim of the slowest chapter plus plain mkdocs plus
   1 s; a rebuild with nothing changed, a rebuild after a prose-only edit, and plain
   ``mkdocs build`` of the very pages the rebuild rendered, with no labkit in it
   at all (the gen-files plugin left out of ``mkdocs.yml``), with the ratios of
   the rebuilds to that plain build;
4. **a fresh clone** of the repository's committed HEAD: ``nox -s build
   --install-only`` and ``nox -s build`` end to end, as a newcomer runs them (uv's cache
   as this machine has it).

Every build is ``python -m labkit.cli build`` as an author runs it (wall clock,
including interpreter start and mkdocs), and so is the plain one (``python -m
mkdocs build``): the ratio is what labkit adds to a site build.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
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

import yaml

from benchmarks import native
from labkit.api.lab import Lab
from labkit.backends import open_lab
from labkit.book.build import ROOT
from labkit.integrations.site import QUIET_BANNERS
from labkit.model import topology

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


def lab_up_down(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to bring the seed topology up, and down again, ``rounds`` times."""
    ups, downs = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        lab = open_lab("netns")
        ups.append(time.perf_counter() - started)
        downs.append(_time(lab.close))
    return ups, downs


def holder_pid(lab: Lab, name: str) -> int:
    """The host pid of the process that holds ``name``'s namespaces (a netns lab's)."""
    agent = getattr(lab.backend, "agent_pid", None)
    if agent is None:
        raise RuntimeError("only a netns lab this process started has holders to find")
    pending: list[int] = [int(agent)]
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
    return ["nsenter", "-t", str(pid), "-U", "-n", "-u", "-m", "-p", "--preserve-credentials",
            *argv]


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


# -- scale -----------------------------------------------------------------------------------

SCALE = ((16, 10), (16, 100), (16, 1000))
"""(nodes, pods) of the labs the start-up rows time: the pod count grows, the nodes do not."""
MININET = (4, 40, 200)


def scale_manifests(where: Path, nodes: int, pods: int) -> Path:
    """A manifests folder for the seed's cluster with ``nodes`` nodes and ``pods`` app pods
    spread over them in turn; each node's first block is a /26 of 10.244.0.0/16 (the
    pool's blockSize), and a node with more pods claims more, as Calico's IPAM does.

    The blocks are laid out in order, not from the nodes' names as Calico does: the
    lab's start-up does the same work either way.
    """
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "manifests" / "calico.yaml", where / "calico.yaml")
    roles = ["control-plane"] + ["worker"] * (nodes - 1)
    names = topology.node_names("calico-ipip", roles)
    # Every node runs the seed's node image (the schema asks each node for one).
    image = yaml.safe_load((ROOT / "manifests" / "kind-cluster.yaml").read_text())["nodes"][0][
        "image"]
    (where / "kind-cluster.yaml").write_text(yaml.safe_dump({
        "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "calico-ipip",
        "networking": {"disableDefaultCNI": True, "podSubnet": "10.244.0.0/16"},
        "nodes": [{"role": role, "image": image} for role in roles],
    }))
    deployment = yaml.safe_load((ROOT / "manifests" / "app-deployment.yaml").read_text())
    deployment["spec"]["replicas"] = pods
    (where / "app-deployment.yaml").write_text(yaml.safe_dump(deployment))
    size = 64
    base = int(ipaddress.ip_address("10.244.0.0"))
    seed = yaml.safe_load((ROOT / "manifests" / "replica.yaml").read_text())
    (where / "replica.yaml").write_text(yaml.safe_dump({
        # The seed's other settings (what stands in for IPIP without the ipip module...).
        **{key: value for key, value in seed.items() if key not in ("nodes", "pods")},
        "nodes": {name: {"ip": f"172.18.{(i + 2) // 256}.{(i + 2) % 256}",
                         "block": f"{ipaddress.ip_address(base + i * size)}/26"}
                  for i, name in enumerate(names)},
        "pods": [{"name": f"app-{i:05d}", "node": names[i % nodes]} for i in range(pods)],
    }, sort_keys=False))
    return where


def lab_processes(lab: Lab) -> list[int]:
    """The pids of a netns lab this process started: its agent and everything under it."""
    process = getattr(lab._backend, "_process", None)
    if process is None:
        raise RuntimeError("only a netns lab this process started has processes to find")
    found, pending = [], [int(process.pid)]
    while pending:
        pid = pending.pop()
        found.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            pending += [int(c) for c in children.read_text().split()]
    return found


def pss_kib(pids: list[int]) -> int:
    """Their proportional set size, summed (KiB): shared pages count once in all."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def settle(limit: float = 20.0) -> None:
    """Wait until the machine is idle again (90% of its CPU time idle over 0.2 s), at most
    ``limit`` seconds.

    A lab's namespaces outlive it: the kernel tears them down later, in a worker of its
    own (cleanup_net), seconds of CPU for a thousand pods.  A start-up timed meanwhile
    would pay for the lab before it, not for itself.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_times()
        time.sleep(0.2)
        if share(before, cpu_times(), IDLE) >= 90:
            break


def scale_up(manifests: Path, rounds: int) -> tuple[list[float], list[float], int]:
    """Seconds to start and to stop the lab of ``manifests`` ``rounds`` times, each start on
    a settled machine (:func:`settle`), and the PSS (KiB) of all its processes once up."""
    ups, downs, pss = [], [], 0
    for _ in range(rounds):
        settle()
        started = time.perf_counter()
        lab = open_lab("netns", manifests=manifests)
        ups.append(time.perf_counter() - started)
        pss = pss_kib(lab_processes(lab))
        started = time.perf_counter()
        lab.close()
        downs.append(time.perf_counter() - started)
    return ups, downs, pss


# What the replica does for one pod, as separate `ip` commands (one process each): its named
# network namespace, the veth pair, the pod's address and routes, the node's route.
IP_LOOP = """
set -e
n={n}; i=0
ip link set lo up
while [ $i -lt $n ]; do
  p=pod$i; ip=10.244.$((i / 250)).$((i % 250 + 2))
  ip netns add $p
  ip link add cali$i type veth peer name eth0 netns $p
  ip -n $p link set lo up
  ip -n $p addr add $ip/32 dev eth0
  ip -n $p link set eth0 up
  ip -n $p route add 169.254.1.1 dev eth0 scope link
  ip -n $p route add default via 169.254.1.1 dev eth0
  ip link set cali$i up
  ip route add $ip/32 dev cali$i scope link
  i=$((i + 1))
done
"""


def ip_loop(pods: int) -> float:
    """Seconds for a shell loop of bare ``ip`` calls to build ``pods`` pods on one node,
    in a user, network and mount namespace of its own (its /run/netns too)."""
    script = ("mount -t tmpfs tmpfs /run && mkdir /run/netns && "
              + IP_LOOP.format(n=pods))
    started = time.perf_counter()
    subprocess.run(["unshare", "--map-root-user", "--net", "--mount", "--propagation",
                    "private", "sh", "-c", script], check=True, capture_output=True)
    return time.perf_counter() - started


MN_DONE = re.compile(r"completed in ([0-9.]+) seconds")


def mininet(hosts: int) -> float:
    """Mininet's own figure for building and stopping ``single,hosts`` on a Linux bridge,
    run in a network and mount namespace of its own so that nothing of it reaches the
    machine's network."""
    settle()  # as for labkit's labs: not while the kernel still tears down the last one
    done = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private",
         "mn", "--switch", "lxbr", "--controller", "none", "--topo", f"single,{hosts}",
         "--test", "none"], capture_output=True, text=True, timeout=600)
    found = MN_DONE.search(done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"mn single,{hosts} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return float(found[1])


def mininet_missing() -> str:
    """Why the Mininet rows cannot run here, or ``""``."""
    if shutil.which("mn") is None or shutil.which("brctl") is None:
        return ("Mininet is not installed: sudo apt-get install mininet bridge-utils "
                "(then run the bench as root)")
    if os.geteuid() != 0:
        return "Mininet runs as root only: run the bench as root for those rows"
    return ""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_times() -> list[int]:
    """The machine's CPU time so far, by kind (``/proc/stat``: user, nice, system, idle,
    iowait, irq, softirq, steal), in clock ticks."""
    return [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


IDLE, STEAL = 3, 7
"""Where idle time and steal are in :func:`cpu_times`."""


def share(before: list[int], after: list[int], kind: int) -> float:
    """The share (%) of the CPU time between two :func:`cpu_times` that was of ``kind``."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return 100 * spent[kind] / max(1, sum(spent))


def stolen(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor gave other machines meanwhile (steal), in %:
    on a shared virtual machine it slows every figure down, whatever labkit does."""
    return share(before, after, STEAL)


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
        "from labkit.book.build import Options, build\n"
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
                          capture_output=True, text=True, env=dict(os.environ, **QUIET_BANNERS))
    if done.returncode != 0:
        raise RuntimeError(f"plain mkdocs build failed:\n{done.stderr[-3000:]}")


def labkit_build(root: Path, *args: str) -> tuple[float, str]:
    """Run ``labkit build`` in ``root``; return its wall time and labkit's log lines."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "labkit.cli", "build", *args], cwd=root,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root), **QUIET_BANNERS))
    elapsed = time.perf_counter() - started
    log = "\n".join(line for line in done.stderr.splitlines() if line.startswith("labkit"))
    if done.returncode != 0:
        raise RuntimeError(f"labkit build {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return elapsed, log


def _expect(log: str, how: str, what: str) -> None:
    ran = [line for line in log.splitlines() if ": running live" in line]
    if how == "cached" and ran:
        raise RuntimeError(f"{what}: chapters ran live, the cache did not hold:\n{log}")


CHAPTER_TIME = re.compile(r"^labkit: (\S+\.md): ran \d+ snippets live \(([\d.]+)s\)$", re.M)


def chapter_times(log: str) -> dict[str, float]:
    """Each chapter's live run (lab up, snippets, page, transcript, lab down) in a build's log."""
    return {name: float(seconds) for name, seconds in CHAPTER_TIME.findall(log)}


def cold_build(root: Path, *args: str) -> tuple[float, str]:
    """A cold live build of ``root``: no transcripts, no ``.labkit/``, no site."""
    for folder in (root / ".labkit", root / "docs_src" / "transcripts", root / "site"):
        shutil.rmtree(folder, ignore_errors=True)
    elapsed, log = labkit_build(root, *args)
    if "running live" not in log:
        raise RuntimeError(f"the cold build did not run live:\n{log}")
    return elapsed, log


def builds(rounds: int, cold_rounds: int = 3,
           keep: Path | None = None) -> dict[str, list[float]]:
    """Seconds for each kind of build, in one temporary copy of the project."""
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        root = copy_project(Path(keep or tmp) / "project")
        figures: dict[str, list[float]] = {"cold": [], "one at a time": [], "slowest": [],
                                           "unchanged": [], "prose": [], "plain": []}
        for _ in range(cold_rounds):  # interleaved, so both meet the same machine
            elapsed, log = cold_build(root, "--jobs", "1")
            figures["one at a time"].append(elapsed)
            figures["slowest"].append(max(chapter_times(log).values()))
            elapsed, log = cold_build(root)
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
            # Its last site stays: mkdocs cleans it first, as labkit's rebuild replaces its own.
            figures["plain"].append(_time(lambda: _mkdocs(root, plain / "mkdocs.yml",
                                                          plain / "site")))
    return figures


def fresh_clone() -> tuple[float, float, float]:
    """Seconds for ``nox -s build --install-only`` and ``nox -s build`` in two fresh clones
    of HEAD, and what the build printed as its own time."""
    nox = shutil.which("nox")
    if nox is None:
        raise RuntimeError("nox is not on PATH: install it as the README says")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    with tempfile.TemporaryDirectory(prefix="labkit-clone-") as tmp:
        seconds = []
        for name, args in (("install", ["--install-only"]), ("build", [])):
            clone = Path(tmp) / name
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            started = time.perf_counter()
            done = subprocess.run([nox, "-s", "build", *args], cwd=clone, env=env,
                                  capture_output=True, text=True)
            seconds.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(f"nox -s build {' '.join(args)} failed in a fresh clone:\n"
                                   f"{(done.stdout + done.stderr)[-3000:]}")
        built = re.search(r"labkit: built site/ in ([\d.]+)s", done.stderr + done.stdout)
    return seconds[0], seconds[1], float(built.group(1)) if built else float("nan")


# -- the report ------------------------------------------------------------------------------

def _row(label: str, values: list[float], unit: float = 1.0, suffix: str = "s") -> str:
    med = _median(values) * unit
    spread = f"(min {min(values) * unit:.3g}, max {max(values) * unit:.3g}, n={len(values)})"
    return f"  {label:<46} {med:8.3f} {suffix}  {spread}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab-rounds", type=int, default=10,
                        help="lab up/down cycles (default 10)")
    parser.add_argument("--sh-rounds", type=int, default=200,
                        help="`ip route` runs each way (default 200)")
    parser.add_argument("--build-rounds", type=int, default=9,
                        help="rebuilds of each kind (default 9)")
    parser.add_argument("--scale-rounds", type=int, default=3,
                        help="start-ups of each scaled lab and Mininet run (default 3)")
    parser.add_argument("--skip-lab", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--cold-rounds", type=int, default=3,
                        help="cold builds of each kind, side by side and one at a time "
                             "(default 3)")
    parser.add_argument("--skip-builds", action="store_true")
    parser.add_argument("--skip-clone", action="store_true",
                        help="leave out the fresh clone's nox -s build")
    parser.add_argument("--native-rounds", type=int, default=1,
                        help="native lab start-ups, a real cluster each (default 1)")
    parser.add_argument("--skip-native", action="store_true",
                        help="leave out the native lab (the real cluster; root only)")
    args = parser.parse_args(argv)
    started = part = cpu_times()
    print(f"labkit bench on {os.uname().nodename} (Linux {os.uname().release}, "
          f"{os.cpu_count()} CPUs, uid {os.getuid()}); load average {load_average()}")

    def steal_so_far() -> None:  # per part: the host's load comes and goes
        nonlocal part
        now = cpu_times()
        print(f"  {'(CPU time stolen by the hypervisor meanwhile)':<46} {stolen(part, now):7.1f} %")
        part = now

    if not args.skip_lab:
        up, down = lab_up_down(args.lab_rounds)
        through, direct = sh_against_nsenter(args.sh_rounds)
        ratio = _median(through) / _median(direct)
        seed = topology.load()
        print(f"the lab (the seed topology: {len(seed.nodes)} nodes, {len(seed.pods)} pods):")
        print(_row("seed topology up (aim < 0.25 s)", up))
        print(_row("seed topology up + down (aim < 0.5 s)",
                   [a + b for a, b in zip(up, down, strict=True)]))
        print(_row(f'sh("{COMMAND}") through labkit', through, 1000, "ms"))
        print(_row(f"nsenter -t PID -U -n -u -m -p ... {COMMAND}", direct, 1000, "ms"))
        print(f"  {'ratio labkit / nsenter (aim <= 1.3)':<46} {ratio:8.2f}")
        steal_so_far()
    if not args.skip_scale:
        scale(args.scale_rounds)
        steal_so_far()
    if not args.skip_native:
        why = native.unavailable()
        if why:
            print(f"native lab rows skipped: {why}")
        else:
            native.rounds(args.native_rounds, print, pss_kib)
            steal_so_far()
    if not args.skip_builds:
        figures = builds(args.build_rounds, args.cold_rounds)
        plain = _median(figures["plain"])
        print("builds (labkit build, wall clock; ratios to plain mkdocs build):")
        for key, label in (("cold", "cold live build, chapters side by side"),
                           ("one at a time", "cold live build, --jobs 1 (one at a time)"),
                           ("slowest", "  its slowest chapter's live run"),
                           ("unchanged", "rebuild, nothing changed (aim <= 1.2x)"),
                           ("prose", "rebuild after a prose-only edit (aim <= 1.1x)"),
                           ("plain", "plain mkdocs build of the same pages")):
            print(f"{_row(label, figures[key])}  {_median(figures[key]) / plain:5.2f}x")
        aim = _median(figures["slowest"]) + plain + 1
        cold = _median(figures["cold"])
        print(f"  {'aim: cold <= slowest chapter + plain + 1 s':<46} {aim:8.3f} s  "
              f"cold build {cold:.3f} s: {'met' if cold <= aim else 'NOT met'}")
        steal_so_far()
    if not args.skip_clone:
        install, whole, live = fresh_clone()
        print("a fresh clone of HEAD (git clone, then nox as a newcomer runs it):")
        print(f"  {'nox -s build --install-only':<46} {install:8.3f} s")
        print(f"  {'nox -s build (aim < 20 s)':<46} {whole:8.3f} s  "
              f"(labkit build itself {live:.1f} s)")
        steal_so_far()
    print(f"load average at the end: {load_average()}; CPU time stolen by the hypervisor "
          f"during the run: {stolen(started, cpu_times()):.1f}%")
    return 0


def scale(rounds: int) -> None:
    """The start-up rows: growing labs, a loop of bare ip calls, and Mininet."""
    with tempfile.TemporaryDirectory(prefix="labkit-scale-") as tmp:
        print("start-up by pod count (labkit up, median; all processes' PSS once up):")
        ups: dict[int, float] = {}
        pss: dict[int, int] = {}
        for nodes, pods in SCALE:
            up, down, pss[pods] = scale_up(scale_manifests(Path(tmp) / f"s{pods}", nodes, pods),
                                           rounds)
            ups[pods] = _median(up)
            print(_row(f"{nodes} nodes, {pods} pods: up", up)
                  + f"  down {_median(down):.3f} s, PSS {pss[pods] / 1024:.1f} MiB")
        small, mid, big = (p for _, p in SCALE)
        per_pod = (ups[big] - ups[mid]) / (big - mid)
        print(f"  {'cost per extra pod, 100 -> 1000 pods':<46} {per_pod * 1000:8.2f} ms")
        print(f"  {'cost per extra pod, 10 -> 100 pods':<46} "
              f"{(ups[mid] - ups[small]) / (mid - small) * 1000:8.2f} ms")
        print(f"  {'PSS per pod at 1000 pods (aim < 1 MiB)':<46} {pss[big] / big:8.0f} KiB"
              f"  (marginal, 10 -> 1000: {(pss[big] - pss[small]) / (big - small):.0f} KiB)")
        loop = [ip_loop(mid) for _ in range(rounds)]
        print(_row(f"a shell loop of bare `ip` calls, {mid} pods", loop)
              + f"  labkit / loop {ups[mid] / _median(loop):.2f}")
        missing = mininet_missing()
        if missing:
            print(f"Mininet rows skipped: {missing}")
            return
        print("Mininet `mn --switch lxbr --controller none --topo single,N --test none` "
              "(its own 'completed in') against labkit with N pods on one node, up + down:")
        for hosts in MININET:
            # One node holds all N pods (in as many /26 blocks as they fill).
            manifests = scale_manifests(Path(tmp) / f"mn{hosts}", 1, hosts)
            ours, theirs = [], []
            for _ in range(rounds):  # interleaved, so both meet the same machine
                up, down, _ = scale_up(manifests, 1)
                ours.append(up[0] + down[0])
                theirs.append(mininet(hosts))
            print(_row(f"N = {hosts}: labkit", ours) + f"  Mininet {_median(theirs):.3f} s"
                  f"  labkit/Mininet {_median(ours) / _median(theirs):.2f}"
                  + ("  (aim <= 0.25)" if hosts == MININET[-1] else ""))


if __name__ == "__main__":
    sys.exit(main())
