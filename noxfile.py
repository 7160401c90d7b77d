# nox sessions: build the site, serve it, test it, lint it, check drift, benchmark, browse.
"""Every session installs labkit into its own fresh virtualenv.

Options after ``--`` are passed on: ``nox -s build -- --lab kind``,
``nox -s build -- --replay``, ``nox -s tests -- --lab kind``.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["build", "tests", "lint"]
nox.options.reuse_existing_virtualenvs = False
# uv creates a venv and installs from its cache in a fraction of pip's time; nox falls back
# to virtualenv (pip) where uv is not installed.
nox.options.default_venv_backend = "uv|virtualenv"


def _wants_kind(session: nox.Session) -> bool:
    args = session.posargs
    return ("kind" in args and "--lab" in args) or "--lab=kind" in args


def _install(session: nox.Session, *extras: str) -> None:
    extras_list = [*extras, *(["kind"] if _wants_kind(session) else [])]
    # pip refuses ".[]": no extras is plain ".".
    spec = f".[{','.join(extras_list)}]" if extras_list else "."
    if session.venv_backend == "uv":
        # From uv's cache alone first: asking the index costs seconds even when the cache
        # holds everything (uv revalidates each page, and an index that answers "modified"
        # makes it download jieba's 19 MB sdist and build it again). Online only if needed.
        try:
            session.install("--offline", "-e", spec, silent=True)
            return
        except nox.command.CommandFailed:
            session.log("uv's cache does not hold everything: installing from the index")
    session.install("-e", spec)


@nox.session
def build(session: nox.Session) -> None:
    """Start the lab, run every chapter's snippets, build site/ (mkdocs --strict)."""
    _install(session, "docs")
    session.run("labkit", "build", *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Serve the site with live reload; unchanged chapters are not re-run."""
    _install(session, "docs")
    session.run("labkit", "build", "--serve", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests, the lab's tests, and every chapter snippet as a test (sybil)."""
    _install(session, "docs", "test")
    # One worker per CPU: much of the suite waits (pings, BIRD's timers, timeouts), and each
    # worker has its own labs. `-- -n 0` runs it in one process.
    session.run("pytest", "-n", "auto", "--dist", "loadfile", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict) and the import-linter contracts (the layers)."""
    _install(session, "docs", "test", "kind")
    session.install("ruff", "mypy", "types-PyYAML", "import-linter")
    session.run("ruff", "check", "labkit", "tests", "docs", "benchmarks",
                "conftest.py", "noxfile.py")
    session.run("mypy")
    session.run("lint-imports")


@nox.session
def parts(session: nox.Session) -> None:
    """Build the real cluster's parts that are missing into the cache (`labkit parts build`)."""
    _install(session)
    session.run("labkit", "parts", "build", *session.posargs)


@nox.session
def check(session: nox.Session) -> None:
    """Run every snippet live and diff its output against the committed transcript."""
    _install(session)
    session.run("labkit", "check", *session.posargs)


@nox.session
def fidelity(session: nox.Session) -> None:
    """Every chapter on the replica and on the native real cluster (as root), every output
    compared: "N of M outputs identical", one diff per undeclared difference.
    ``-- --real recorded`` takes the committed native recordings instead (no root)."""
    _install(session, "docs")
    session.run("labkit", "fidelity", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Print lab and build timings measured side by side in one run."""
    _install(session, "docs")
    session.run("python", "-m", "benchmarks.bench", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """Open the built site in headless Chromium: diagrams, tabs, search, no outside requests."""
    _install(session, "docs", "test")
    session.install("playwright")
    session.run("pytest", "tests/browser", "-p", "no:cacheprovider", *session.posargs,
                env={"LABKIT_BROWSER": "1"})
