# `labkit parts build|list|check|path`: the commands, as labkit.cli calls them.
"""Each command takes argparse's namespace and returns the exit status; errors are
:class:`~.errors.PartsError`, which ``labkit`` prints as one ``labkit: ...`` line."""

from __future__ import annotations

import argparse
import json
import sys

from . import make as parts
from .cache import log_path
from .make import Plan


def run(args: argparse.Namespace) -> int:
    """``labkit parts ACTION``."""
    action = {"build": _build, "list": _list, "check": _check, "path": _path}[args.action]
    return action(args)


def _build(args: argparse.Namespace) -> int:
    tty = sys.stdout.isatty()

    def starting(planned: Plan) -> None:
        # On a terminal, say what is being built (it can take a quarter of an hour) on the
        # line its result will overwrite; in a log, the result line is enough.
        if tty:
            print(f"{planned.recipe.name} {planned.version}  building "
                  f"(log: {log_path(planned.recipe.name)})", end="\r", flush=True)

    def progress(line: str) -> None:
        print(f"\x1b[K{line}" if tty else line, flush=True)

    parts.build(args.names, progress=progress, starting=starting)
    return 0


def _list(args: argparse.Namespace) -> int:
    listed = parts.listing(args.names)
    if args.json:
        print(json.dumps([{"name": part.name, "version": part.version, "source": part.source,
                           "path": str(part.path) if part.path else None,
                           "built": part.path is not None,
                           **({"problem": part.problem} if part.problem else {}),
                           **{key: part.record[key] for key in
                              ("toolchain", "key", "built_at", "seconds", "files")
                              if key in part.record}}
                          for part in listed], indent=2))
        return 0
    for part in listed:
        where = str(part.path) if part.path else f"({part.problem})"
        print(f"{part.name}  {part.version}  {part.source}  {where}")
        files = part.record.get("files")
        for file in files if isinstance(files, list) else []:
            print(f"  {file['path']}  sha256:{file['sha256']}  {file['size']} bytes")
    return 0


def _check(args: argparse.Namespace) -> int:
    status = 0
    for name, problems in parts.check(args.names).items():
        if problems:
            status = 1
            for problem in problems:
                print(f"{name}: {problem}")
        else:
            print(f"{name}: ok")
    if status:
        print("labkit: `labkit parts build` builds again what is damaged or missing",
              file=sys.stderr)
    return status


def _path(args: argparse.Namespace) -> int:
    print(parts.path(args.name))
    return 0
