# `labkit build` and `labkit check`: the site build around mkdocs, and the drift check.
"""Building ``site/`` safely, and checking the transcripts against a live lab.

The site is built into a private directory and swapped into place with one
atomic rename, so an interrupted build (Ctrl-C, SIGKILL) leaves the last good
``site/`` as it was; this process and mkdocs die with whoever started them, and
the lab's agent dies with them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..book.build import failures_file, forget_early, options_for, start_early
from ..model import scratch
from ..model.errors import LabError, RefusedFolder
from .publish import _clean_stale, publish

QUIET_BANNERS = {
    # Material and the MkDocs 1.x continuations print end-of-life banners on every build.
    "NO_MKDOCS_2_WARNING": "1",
    "DISABLE_MKDOCS_2_WARNING": "true",
}
SITE_MARKER = ".labkit-site"
"""Written into every site labkit builds: the only non-empty folder ``--site`` may replace."""
SOURCES = ("docs", "docs_src", "manifests", ".labkit")
"""The project's own folders, which no site may be, hold or sit in."""


def project_root() -> Path:
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "mkdocs.yml").exists() and (folder / "docs_src").is_dir():
            return folder
    raise LabError("no mkdocs.yml with a docs_src/ beside it here or above; "
                   "run labkit build from the project's folder")


def _die_with_parent() -> None:
    from ..backends.netns import linux

    # AttributeError: a libc without prctl (not Linux), where a replay must still build.
    with contextlib.suppress(OSError, AttributeError):
        linux.die_with_parent(signal.SIGKILL)


def site_folder(root: Path, name: str) -> Path:
    """Where ``--site name`` puts the site, if labkit may replace what is there.

    Like plain mkdocs, labkit refuses the project's folder and its sources; beyond that it
    replaces only a folder that is empty or that it built itself (:data:`SITE_MARKER`).
    Raise :class:`RefusedFolder` (exit 2) otherwise.
    """
    site = (root / name).resolve()
    shown = f"--site {name}"
    if root.resolve().is_relative_to(site):
        raise RefusedFolder(f"{shown}: that is the project's folder (or holds it); "
                            "the site would replace the chapters, manifests and all")
    for source in SOURCES:
        folder = (root / source).resolve()
        if folder.is_relative_to(site) or site.is_relative_to(folder):
            where = "is" if folder == site else "holds" if folder.is_relative_to(site) else \
                "is inside"
            raise RefusedFolder(f"{shown}: that {where} the project's {source}/; "
                                "choose a folder of its own, such as site/")
    if site.exists() and not site.is_dir():
        raise RefusedFolder(f"{shown}: {site} is not a folder; labkit replaces only folders")
    if site.is_dir() and not _built_by_labkit(site) and any(site.iterdir()):
        raise RefusedFolder(
            f"{shown}: {site} holds files that labkit did not put there (it has no "
            f"{SITE_MARKER}); empty it or choose another folder, nothing was changed")
    return site


def _built_by_labkit(folder: Path) -> bool:
    if (folder / SITE_MARKER).is_file():
        return True
    # Sites built before the marker existed: this project's stylesheet beside an index page.
    return (folder / "index.html").is_file() and (folder / "assets" / "labkit.css").is_file()


def build_env(args: argparse.Namespace) -> dict[str, str]:
    mode = "replay" if args.replay else "live" if args.fresh else "auto"
    return dict(os.environ, LABKIT_LAB=args.lab, LABKIT_MODE=mode,
                LABKIT_KEEP_GOING="1" if args.keep_going else "",
                LABKIT_JOBS=str(args.jobs), **QUIET_BANNERS)


def _mkdocs_build(root: Path, site_dir: Path) -> bool:
    """``mkdocs build --strict`` in this process (as its CLI does it): a second interpreter
    importing mkdocs, Material and labkit again would cost more than a cached rebuild."""
    from mkdocs import config, exceptions
    from mkdocs.commands import build

    # mkdocs' own log format ("WARNING -  ..."), as its CLI prints it when not on a terminal.
    log = logging.getLogger("mkdocs")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-8s-  %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    try:
        cfg = config.load_config(config_file=str(root / "mkdocs.yml"), site_dir=str(site_dir),
                                 strict=True)
        cfg.plugins.on_startup(command="build", dirty=False)
        try:
            build.build(cfg)
        finally:
            cfg.plugins.on_shutdown()
    except exceptions.Abort as exc:  # mkdocs has already logged why
        print(f"mkdocs: {exc}", file=sys.stderr)
        return False
    except exceptions.ConfigurationError as exc:
        print(f"mkdocs: {exc}", file=sys.stderr)
        return False
    finally:
        log.removeHandler(handler)
    return True


def build_site(args: argparse.Namespace) -> int:
    """Run mkdocs (whose gen-files script runs the chapters) into a private folder, then publish."""
    _die_with_parent()
    root = project_root()
    site = site_folder(root, args.site)
    env = build_env(args)
    mkdocs = [sys.executable, "-m", "mkdocs"]
    if args.serve:
        return subprocess.call([*mkdocs, "serve"], cwd=root, env=env,
                               preexec_fn=_die_with_parent)
    state = root / ".labkit"
    state.mkdir(exist_ok=True)
    _clean_stale(state)
    private = state / f"site-{os.getpid()}"
    report = failures_file(state)
    report.unlink(missing_ok=True)
    # mkdocs-gen-files' folder and the like go into one of this build's own, which the next
    # build removes if this one is killed before it can (scratch.sweep).
    scratch.sweep()
    own_tmp = scratch.folder("build")
    tempfile.tempdir = str(own_tmp)
    started = time.monotonic()
    os.environ.update(env)  # before Material is imported: it reads NO_MKDOCS_2_WARNING then
    os.chdir(root)
    try:
        # The chapters start now and run while mkdocs loads; its gen-files script collects
        # them (docs/gen_pages.py).
        start_early(options_for(root))
        if not _mkdocs_build(root, private):
            print(f"labkit: the build failed; {args.site}/ is unchanged", file=sys.stderr)
            return 1
        failures = report.read_text(encoding="utf-8").split("\n\0") if report.exists() else []
        report.unlink(missing_ok=True)
        (private / SITE_MARKER).write_text(
            "Built by `labkit build`, which replaces this folder on the next build.\n")
        try:
            site_folder(root, args.site)  # still true? someone may have filled it meanwhile
            publish(private, site)
        except OSError as exc:  # --site names a file, a folder that is not there...
            raise LabError(f"cannot put the site at {args.site}: {exc.strerror}; "
                           "the last site is unchanged") from exc
    finally:
        forget_early()  # chapters mkdocs never asked for (it failed before) stop here
        shutil.rmtree(private, ignore_errors=True)
        tempfile.tempdir = None
        shutil.rmtree(own_tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    if failures:
        # Like `make -k`: every page was built, with error boxes; CI must still see a failure.
        print(f"labkit: built {args.site}/ in {elapsed:.1f}s, but {len(failures)} snippet(s) "
              "failed (--keep-going; their pages show the errors):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure.splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"labkit: built {args.site}/ in {elapsed:.1f}s", file=sys.stderr)
    return 0
