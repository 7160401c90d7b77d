# Throwaway copies of the project for end-to-end `labkit build` runs, and what tests check
# around one: the built pages, the lab's processes, the host's network.
"""A :class:`Project` is a folder with this project's ``mkdocs.yml``, ``docs/`` and
``manifests/`` and chapters a test writes; :meth:`Project.build` runs
``python -m labkit.cli build`` there as a user would.  Every process such a build
starts carries the project's token in its environment, so a test can find (and count)
exactly its own lab agents while other builds run on the same machine.
"""

from __future__ import annotations

import contextlib
import html.parser
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "LABKIT_TEST_PROJECT"
AGENT = b"labkit.backends.netns.agent"
# Lines of a build's stderr that are mkdocs' and jieba's progress, not labkit's messages.
NOISE = re.compile(r"^(INFO|DEBUG)\b|^(Building prefix dict|Loading model|Prefix dict has)")


@dataclass
class Build:
    """What one `labkit build` printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> str:
        """stderr without mkdocs' INFO lines and jieba's progress: what the author reads."""
        return "\n".join(line for line in self.stderr.splitlines() if not NOISE.search(line))


def skeleton(where: Path) -> None:
    """This project's mkdocs.yml, docs/ and manifests/ in ``where``, and an empty docs_src/."""
    where.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    # The real nav lists the real chapters, and `watch` names labkit/ beside mkdocs.yml;
    # mkdocs --strict would refuse both here. Without a nav, mkdocs lists what exists.
    config = re.sub(r"\nnav:\n(?:[ \t-].*\n?)*", "\n", config)
    config = re.sub(r"\nwatch:\n(?:[ \t]+-.*\n)*", "\n", config)
    (where / "mkdocs.yml").write_text(config, encoding="utf-8")
    shutil.copytree(ROOT / "docs", where / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "manifests", where / "manifests")
    (where / "docs_src").mkdir()


class Project:
    """A temporary copy of the project whose chapters a test writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = uuid.uuid4().hex

    @classmethod
    def create(cls, where: Path, chapters: dict[str, str] | None = None) -> Project:
        skeleton(where)
        project = cls(where)
        for name, text in (chapters or {}).items():
            project.write(name, text)
        return project

    # -- chapters -------------------------------------------------------------------------

    def write(self, name: str, text: str) -> Path:
        """Write ``docs_src/<name>`` (dedented, without the leading newline of a literal)."""
        path = self.root / "docs_src" / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def line_of(self, name: str, needle: str) -> int:
        """The 1-based line of the first line of ``docs_src/<name>`` containing ``needle``."""
        text = (self.root / "docs_src" / name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} is not in docs_src/{name}")

    # -- building -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return dict(os.environ, **{TOKEN: self.token}, PYTHONPATH=str(ROOT))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "labkit.cli", "build", *args]

    def build(self, *args: str, timeout: float = 300) -> Build:
        done = subprocess.run(self.command(*args), cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        return Build(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """Start a build and return at once (its own session unless told otherwise)."""
        popen.setdefault("start_new_session", True)
        return subprocess.Popen(self.command(*args), cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen)

    # -- what it built --------------------------------------------------------------------

    @property
    def site(self) -> Path:
        return self.root / "site"

    def page(self, chapter: str) -> str:
        """The built HTML of ``docs_src/<chapter>``."""
        return (self.site / Path(chapter).stem / "index.html").read_text(encoding="utf-8")

    @property
    def transcripts(self) -> Path:
        return self.root / "docs_src" / "transcripts"

    def transcript(self, chapter: str) -> Path:
        return self.transcripts / (Path(chapter).stem + ".yaml")

    def agents(self) -> set[int]:
        return agents(self.token)

    def processes(self) -> set[int]:
        return processes(self.token)


# -- processes and the host -----------------------------------------------------------------

def _environ(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def agents(token: str) -> set[int]:
    """Pids of the lab agent processes (outer agent, the lab's PID 1, its holders) that a
    build carrying ``token`` started, wherever they were reparented to."""
    found = set()
    marker = f"{TOKEN}={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if AGENT in cmdline and marker in _environ(entry.name).split(b"\0"):
            found.add(int(entry.name))
    return found


def processes(token: str) -> set[int]:
    """Pids of every process a build carrying ``token`` started (mkdocs, the agents...),
    however its parents died."""
    marker = f"{TOKEN}={token}".encode()
    return {int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and marker in _environ(entry.name).split(b"\0")}


def processes_running(needle: bytes) -> set[int]:
    """Pids whose command line contains ``needle`` (a unique argument a test chose)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def host_network() -> dict[str, Any]:
    """What a lab must never change on the host: its links, routes and named namespaces."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True)
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None
    return {
        # Names, not ifindex or state: those may change for reasons of their own.
        "links": sorted(line.split(":")[1].strip() for line in links.stdout.splitlines()),
        "routes": routes.stdout,
        "run_netns": netns,
    }


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def kill_group(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal a build's whole process group, as a terminal does (Ctrl-C) or as OOM might."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# -- reading built HTML -------------------------------------------------------------------

class Html(html.parser.HTMLParser):
    """The parts of a page that say whether output stayed data: code text, scripts, markup."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.codes: list[str] = []
        self.scripts: list[str] = []
        self.handlers: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        """Every piece of text a reader can see (not in a script or a style)."""
        self.prose_texts: list[str] = []
        """The same, outside code elements: the page's own text."""
        self._code: list[str] | None = None
        self._depth = 0
        self._script: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        if tag in ("script", "style"):
            self._script = []
        if tag == "code":
            if self._code is None:
                self._code = []
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._script is not None:
            if tag == "script":
                self.scripts.append("".join(self._script))
            self._script = None
        if tag == "code" and self._code is not None:
            self._depth -= 1
            if self._depth == 0:
                self.codes.append("".join(self._code))
                self._code = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)
            return
        self.texts.append(data)
        if self._code is not None:
            self._code.append(data)
        else:
            self.prose_texts.append(data)

    @property
    def text(self) -> str:
        """The visible text with runs of whitespace as one space, as a browser shows prose."""
        return " ".join("".join(self.texts).split())

    @property
    def prose(self) -> str:
        """Like :attr:`text`, without what is inside code elements."""
        return " ".join("".join(self.prose_texts).split())

    def has(self, tag: str, **attrs: str) -> bool:
        """Whether an element ``tag`` has these attribute values (a substring of each)."""
        return any(t == tag and all(v in (a.get(k) or "") for k, v in attrs.items())
                   for t, a in self.tags)
