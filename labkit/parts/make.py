# Building the parts: each recipe's key, its folder in the cache, built if missing or damaged.
"""What ``labkit parts build``, ``list``, ``check`` and ``path`` do.

A part's key is the sha256 of everything its build depends on: the recipe's fields, the
wrapper module's files (go.mod and go.sum name and hash every module), the toolchain's
version and the build's flags. A part is built into a temporary folder next to its final
one and renamed into place when complete; an error, a full disk or Ctrl-C removes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import cache, catalog, debian, gobuild
from .errors import BuildFailed, DiskFull, NotBuilt, PartsError, UnknownPart
from .recipe import Assembled, AssembleWork, CBuild, Debian, GoBuild, Recipe
from .run import Log, disk_full

SCHEMA = 1
"""Part of every key: raise it when the way parts are built changes."""


@dataclass(frozen=True)
class Plan:
    """A recipe as it will be built here: its versions, its toolchain and its key."""

    recipe: Recipe
    version: str
    source: str
    toolchain: str
    key: str

    @property
    def folder(self) -> Path:
        return cache.folder(self.recipe.name, self.key[:16])


@dataclass(frozen=True)
class Maker:
    """How one kind of recipe is made: what it is built with and how."""

    describe: Callable[[Recipe], tuple[str, str, str, dict[str, object]]]
    """→ version, source, toolchain, and what else its key depends on."""
    make: Callable[[Recipe, Path, Path, Log], None]
    """(recipe, work folder, output folder, log): fill the output folder."""


def _describe_go(recipe: Recipe) -> tuple[str, str, str, dict[str, object]]:
    assert isinstance(recipe, GoBuild | CBuild)
    return (recipe.version, recipe.source, gobuild.go_toolchain(recipe),
            {"module": gobuild.module_files(recipe.module)})


def _describe_debian(recipe: Recipe) -> tuple[str, str, str, dict[str, object]]:
    assert isinstance(recipe, Debian)
    installed = debian.installed_version(recipe)
    return (recipe.version or debian.upstream(installed),
            recipe.source or f"debian:{recipe.package}={installed}", "dpkg",
            {"installed": installed})


def _make_go(recipe: Recipe, work: Path, out: Path, log: Log) -> None:
    assert isinstance(recipe, GoBuild)
    gobuild.make_go(recipe, work, out, log)


def _make_c(recipe: Recipe, work: Path, out: Path, log: Log) -> None:
    assert isinstance(recipe, CBuild)
    gobuild.make_c(recipe, work, out, log)


def _make_debian(recipe: Recipe, work: Path, out: Path, log: Log) -> None:
    assert isinstance(recipe, Debian)
    debian.make_debian(recipe, out)


def _describe_assembled(recipe: Recipe) -> tuple[str, str, str, dict[str, object]]:
    assert isinstance(recipe, Assembled)
    return (recipe.version, recipe.source, "labkit",
            {"needs": {name: plan(need).key for name, need in _by_name(recipe.needs)},
             "debian": {package: debian.package_version(recipe.name, package)
                        for package in recipe.debian}})


def _make_assembled(recipe: Recipe, work: Path, out: Path, log: Log) -> None:
    assert isinstance(recipe, Assembled)

    def recorded(name: str) -> dict[str, object]:
        if name not in recipe.needs:
            raise PartsError(f"{recipe.name} reads {name}, which its recipe does not need")
        record = cache.read_record(plan(catalog.RECIPES[name]).folder)
        if record is None:
            raise NotBuilt(name)
        return record

    def part(name: str) -> Path:
        recorded(name)
        return path(name)

    recipe.make(AssembleWork(out=out, work=work, log=log, part=part,
                             source=lambda name: str(recorded(name)["source"])))


MAKERS: dict[type[Recipe], Maker] = {
    GoBuild: Maker(_describe_go, _make_go),
    CBuild: Maker(_describe_go, _make_c),
    Debian: Maker(_describe_debian, _make_debian),
    Assembled: Maker(_describe_assembled, _make_assembled),
}
"""One maker per kind of recipe."""


def _by_name(names: Sequence[str]) -> list[tuple[str, Recipe]]:
    """The recipes named, none for none (``recipes(())`` would be all of them)."""
    return [(recipe.name, recipe) for recipe in recipes(names)] if names else []


def recipes(names: Sequence[str] = ()) -> list[Recipe]:
    """The recipes named (all of them, in the catalog's order, if none is)."""
    known = catalog.RECIPES
    for name in names:
        if name not in known:
            raise UnknownPart(name, list(known))
    return [known[name] for name in names] if names else list(known.values())


def with_needs(names: Sequence[str]) -> list[Recipe]:
    """The recipes named and every part they need, in the catalog's order (which builds
    what is needed first)."""
    wanted: set[str] = set()
    todo = [recipe.name for recipe in recipes(names)]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            recipe = catalog.RECIPES[name]
            if isinstance(recipe, Assembled):
                todo.extend(recipe.needs)
    return [recipe for recipe in recipes() if recipe.name in wanted]


def plan(recipe: Recipe) -> Plan:
    """How ``recipe`` will be built here, and under which key."""
    version, source, toolchain, inputs = MAKERS[type(recipe)].describe(recipe)
    fields = {field.name: _plain(getattr(recipe, field.name))
              for field in dataclasses.fields(recipe)}
    described = {"schema": SCHEMA, "kind": type(recipe).__name__, "recipe": fields,
                 "version": version, "source": source, "toolchain": toolchain, **inputs}
    key = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return Plan(recipe, version, source, toolchain, key)


def _plain(value: object) -> object:
    """A recipe field as JSON for the key: a folder by its name only (a checkout elsewhere
    builds the same part; its files are hashed apart), a function (a prepare step) by its
    name and the sha256 of its module's source, so editing the step builds the part again."""
    if isinstance(value, Path):
        return value.name
    if callable(value):
        source = inspect.getsourcefile(value)
        code = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""
        return f"{value.__module__}.{getattr(value, '__qualname__', repr(value))} {code}"
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def path(name: str) -> Path:
    """The folder holding the built part ``name``: ``path("kubernetes") / "kubelet"``.

    Raises :class:`NotBuilt` if ``labkit parts build`` has not built it with today's
    recipe and toolchain (the files are not re-hashed here: ``labkit parts check`` does).
    """
    planned = plan(recipes([name])[0])
    if cache.read_record(planned.folder) is None:
        raise NotBuilt(name)
    return planned.folder


def binary(name: str, file: str) -> Path:
    """One file of a built part: ``binary("kubernetes", "kubelet")``; NotBuilt if the part
    is not built or has no such file."""
    found = path(name) / file
    if not found.is_file():
        raise NotBuilt(name, f"it has no file {file!r}")
    return found


@dataclass(frozen=True)
class Outcome:
    """What ``build`` did with one part."""

    plan: Plan
    built: bool
    """False: it was cached and intact."""
    seconds: float
    damaged: tuple[str, ...] = ()
    """What was wrong with the cached copy it replaced."""


def build(names: Sequence[str] = (), *, progress: Callable[[str], None] = print,
          starting: Callable[[Plan], None] | None = None) -> list[Outcome]:
    """Build every named part (all by default) that is missing or damaged.

    ``progress`` gets one line per part: ``kubernetes v1.23.4  built in 812 s`` or
    ``... cached``; ``starting`` is called before a part is built.
    """
    chosen = with_needs(names)
    outcomes = []
    width = max(len(recipe.name) for recipe in chosen)
    widest = max(len(recipe.version) for recipe in chosen)
    with cache.locked(lambda: progress("waiting for another `labkit parts build` to end")):
        cache.remove_leftovers()
        for recipe in chosen:
            planned = plan(recipe)
            label = f"{recipe.name:<{width}}  {planned.version:<{max(widest, 7)}}"
            record = cache.read_record(planned.folder)
            damaged = tuple(cache.damage(planned.folder, record)) if record else ()
            if record is not None and not damaged:
                outcomes.append(Outcome(planned, built=False, seconds=0.0))
                progress(f"{label}  cached")
                continue
            if damaged:
                progress(f"{label}  damaged ({'; '.join(damaged)}): building it again")
            if starting is not None:
                starting(planned)
            seconds = _make(planned)
            outcomes.append(Outcome(planned, built=True, seconds=seconds, damaged=damaged))
            progress(f"{label}  built in {seconds:.0f} s")
    return outcomes


def _make(planned: Plan) -> float:
    """Build one part into its folder; nothing of it is left if this fails."""
    name = planned.recipe.name
    final = planned.folder
    building = final.with_name(cache.BUILDING + final.name)
    work = cache.root() / ".work" / name
    log = None
    started = time.monotonic()
    try:
        for folder in (building, work):
            cache.remove(folder)
            folder.mkdir(parents=True)
        log = Log(name, cache.log_path(name))
        log.write(f"# {name} {planned.version} from {planned.source}; key {planned.key}")
        MAKERS[type(planned.recipe)].make(planned.recipe, work, building, log)
        files = cache.hash_files(building)
        if not files:
            raise BuildFailed(name, ["(the build)"], 0, ["it made no files"], log.path)
        seconds = time.monotonic() - started
        record = {"name": name, "version": planned.version, "source": planned.source,
                  "toolchain": planned.toolchain, "key": planned.key,
                  "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "seconds": round(seconds, 1),
                  "files": [dataclasses.asdict(file) for file in files]}
        (building / cache.RECORD).write_text(json.dumps(record, indent=2) + "\n",
                                             encoding="utf-8")
        cache.install(building, final)
        log.write(f"# built in {seconds:.1f} s: {final}")
        # One build per part is kept: the one today's recipe and toolchain ask for.
        for other in final.parent.iterdir():
            if other != final and not other.name.startswith("."):
                cache.remove(other)
        return seconds
    except OSError as exc:
        if disk_full(exc):
            raise DiskFull(name, str(exc.filename or cache.root()),
                           log.path if log else None) from exc
        raise
    finally:
        if log is not None:
            log.close()
        cache.remove(building)
        cache.remove(work)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # .work, if no other part's build is in it


@dataclass(frozen=True)
class Listed:
    """One part as ``labkit parts list`` shows it."""

    name: str
    version: str
    source: str
    path: Path | None
    """None: not built (``problem`` says why)."""
    record: dict[str, object]
    problem: str = ""


def listing(names: Sequence[str] = ()) -> list[Listed]:
    """Every part, built or not, with its part.json if built."""
    listed = []
    for recipe in recipes(names):
        try:
            planned = plan(recipe)
        except PartsError as exc:
            listed.append(Listed(recipe.name, recipe.version, recipe.source, None, {},
                                 str(exc)))
            continue
        record = cache.read_record(planned.folder)
        listed.append(Listed(recipe.name, planned.version, planned.source,
                             planned.folder if record else None, record or {},
                             "" if record else "not built"))
    return listed


def check(names: Sequence[str] = ()) -> dict[str, list[str]]:
    """Re-hash every built part against its part.json: part name → what is wrong (an
    empty list: intact). A part not built is ``["not built"]``."""
    found: dict[str, list[str]] = {}
    for recipe in recipes(names):
        try:
            planned = plan(recipe)
        except PartsError as exc:
            found[recipe.name] = [str(exc)]
            continue
        record = cache.read_record(planned.folder)
        found[recipe.name] = (cache.damage(planned.folder, record) if record is not None
                              else ["not built"])
    return found


