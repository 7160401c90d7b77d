# Making Go and C parts: a fresh copy of the wrapper module, its modules downloaded, built.
"""The makers of :class:`~.recipe.GoBuild` and :class:`~.recipe.CBuild` parts.

Every build starts from a fresh copy of the wrapper module in a work folder, so what a
prepare step writes (generated code, a ``replace``) never reaches the committed module,
and ``go mod download`` verifies every module against the committed go.sum.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import PartsError
from .recipe import CBuild, GoBuild
from .run import Log
from .toolchain import find_go, gcc_version, go_environment, go_version


@dataclass
class GoWork:
    """The work folder of one Go build, as a prepare step sees it."""

    dir: Path
    go: Path
    env: dict[str, str]
    log: Log

    def go_run(self, *args: str | Path) -> str:
        """Run ``go ARGS`` in the work folder; return what it printed."""
        return self.log.run([self.go, *args], cwd=self.dir, env=self.env)

    def modules(self) -> dict[str, tuple[str, Path | None]]:
        """Every module of the build list: its path → (version, folder in GOMODCACHE).

        The version is the one built: a ``replace``'s (k/k requires its staging modules
        at v0.0.0, which the wrapper replaces by their published versions).
        """
        found: dict[str, tuple[str, Path | None]] = {}
        decoder = json.JSONDecoder()
        text, at = self.go_run("list", "-m", "-json", "all"), 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                return found
            module, at = decoder.raw_decode(text, at)
            folder = module.get("Dir")
            version = (module.get("Replace") or module).get("Version", "")
            found[module["Path"]] = (version, Path(folder) if folder else None)


def go_toolchain(recipe: GoBuild | CBuild) -> str:
    """What builds ``recipe``, for its key and its ``part.json``."""
    go = go_version(find_go(recipe.go_needed))
    return go if isinstance(recipe, GoBuild) else f"{gcc_version()} (sources by {go})"


def module_files(module: Path) -> dict[str, str]:
    """The wrapper's files as relative path → text, for the key (what the build copies)."""
    return {path.relative_to(module).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(module.rglob("*")) if path.is_file()}


def start(recipe: GoBuild | CBuild, work: Path, log: Log) -> GoWork:
    """Copy the wrapper into ``work`` and download (and verify) its modules."""
    go = find_go(recipe.go_needed)
    shutil.copytree(recipe.module, work, dirs_exist_ok=True)
    env = go_environment(recipe.env if isinstance(recipe, GoBuild) else ())
    gowork = GoWork(dir=work, go=go, env=env, log=log)
    log.write(f"# {go_version(go)}; GOFLAGS={env['GOFLAGS']} GOTOOLCHAIN={env['GOTOOLCHAIN']}")
    gowork.go_run("mod", "download")
    return gowork


def make_go(recipe: GoBuild, work: Path, out: Path, log: Log) -> None:
    """Build ``recipe``'s mains into ``out``, each binary under the name the recipe gives."""
    gowork = start(recipe, work, log)
    if recipe.prepare is not None:
        log.write(f"# prepare: {recipe.prepare.__module__}.{recipe.prepare.__qualname__}")
        recipe.prepare(gowork)
    flags = ["-trimpath", "-ldflags", " ".join(recipe.ldflags)]
    if recipe.tags:
        flags += ["-tags", ",".join(recipe.tags)]
    # One `go build` for all mains shares their compiles; it names each binary after its
    # package's last element, so mains that share one are built one at a time.
    bins = work / ".bin"
    bins.mkdir()
    packages = [package for package, _ in recipe.mains]
    defaults = [go_binary_name(package) for package in packages]
    groups = [packages] if len(set(defaults)) == len(defaults) else [[p] for p in packages]
    for group in groups:
        gowork.go_run("build", *flags, "-o", f"{bins}/", *group)
        for package, binary in recipe.mains:
            built = bins / go_binary_name(package)
            if package in group and built.exists():
                os.replace(built, out / binary)


def module_folder(wrapper: Path, module: str) -> Path:
    """The folder (in GOMODCACHE: read-only) of ``module`` at the version the wrapper
    module's go.mod selects, downloaded if needed and verified against its go.sum:
    ``module_folder(MODULES / "kubernetes", "k8s.io/kubernetes")``."""
    go = find_go("1.22")
    with tempfile.TemporaryDirectory(prefix="labkit-module-") as work:
        for name in ("go.mod", "go.sum"):
            shutil.copyfile(wrapper / name, Path(work, name))
        done = subprocess.run([str(go), "mod", "download", "-json", module], cwd=work,
                              env=go_environment(), capture_output=True, text=True)
    try:
        listed = json.loads(done.stdout)
    except ValueError:
        listed = {}
    if done.returncode != 0 or not listed.get("Dir"):
        why = listed.get("Error") or done.stderr.strip() or f"exit {done.returncode}"
        raise PartsError(f"{module}, as {wrapper.name}'s wrapper module requires it: {why}")
    return Path(listed["Dir"])


def go_binary_name(package: str) -> str:
    """The name ``go build -o DIR/`` gives a main: its last path element, or the one before
    a major-version suffix (``go.etcd.io/etcd/server/v3`` → ``server``)."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def make_c(recipe: CBuild, work: Path, out: Path, log: Log) -> None:
    """Compile ``recipe``'s C file, taken from its verified module, into ``out``."""
    gowork = start(recipe, work, log)
    listed = json.loads(gowork.go_run("list", "-m", "-json", recipe.from_module))
    source = Path(listed["Dir"]) / recipe.file
    log.run(["gcc", *recipe.cflags, "-o", out / recipe.output, source], cwd=work)


def make_writable(tree: Path) -> None:
    """Let the owner write (and so delete) everything under ``tree``: files copied from
    GOMODCACHE keep its read-only modes."""
    for folder, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    tree.chmod(tree.stat().st_mode | stat.S_IWUSR)
