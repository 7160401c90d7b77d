# pytest setup shared by the unit tests and the chapters' snippets (collected by sybil).
"""``--lab netns|kind`` picks the lab; ``--require-lab`` (CI) fails instead of skipping when
no lab can start, so a green run always means the snippets really ran; ``--require-parts``
(CI, after ``labkit parts build``) does the same for tests of the real cluster's parts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import Lab, LabUnavailable, open_lab
from labkit.integrations.site import QUIET_BANNERS
from labkit.integrations.sybil import NO_LAB, UNCOMPARED, collector

NOT_BUILT = "labkit parts build has not run here"
"""What every test of a real part says when it skips (tests/test_parts.py)."""

# Whatever a test starts (mkdocs in-process or a `labkit` process) keeps the MkDocs 1.x
# end-of-life banners out of its output, as `labkit build` does.
os.environ.update(QUIET_BANNERS)

pytest_collect_file = collector(Path(__file__).parent / "docs_src")
# The browser checks need a built site and Chromium: `nox -s browser` runs them on purpose.
collect_ignore = [] if os.environ.get("LABKIT_BROWSER") else ["tests/browser"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lab", default="netns", choices=["netns", "kind", "native"],
                     help="the lab the snippets and lab tests run on (default: netns)")
    parser.addoption("--require-lab", action="store_true",
                     help="fail, instead of skip, when the lab cannot be started (CI)")
    parser.addoption("--require-parts", action="store_true",
                     help="fail, instead of skip, when a part is not built (CI)")


def pytest_configure(config: pytest.Config) -> None:
    # A chapter's snippets run in order in one namespace, so pytest-xdist must give each file
    # to one worker: `load` or `worksteal` would hand a later snippet to a worker that never
    # ran the earlier ones, and it would skip. Plain `-n N` means `load`: make it `loadfile`.
    workers, dist = config.getoption("numprocesses", None), config.getoption("dist", "no")
    if workers and dist == "load":
        config.option.dist = "loadfile"
    elif workers and dist not in ("loadfile", "loadscope", "no"):
        raise pytest.UsageError(f"--dist {dist}: a chapter's snippets depend on each other in "
                                "order; use --dist loadfile (as `nox -s tests` does)")


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """One lab for the whole run; chapters with `fresh_lab: true` get their own."""
    try:
        shared = open_lab(request.config.getoption("--lab"))
    except LabUnavailable as exc:
        if request.config.getoption("--require-lab"):
            pytest.fail(f"{NO_LAB}: {exc.one_line()}", pytrace=False)
        pytest.skip(f"{NO_LAB}: {exc.one_line()}")
    with shared:
        yield shared


SKIPPED_SNIPPETS: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With --require-lab, a test skipped because no lab can run here fails instead: every
    lab-dependent skip says so with the same words (``NO_LAB``), wherever it happens."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    for option, phrase in (("--require-lab", NO_LAB), ("--require-parts", NOT_BUILT)):
        if item.config.getoption(option) and phrase in reason:
            report.outcome = "failed"
            report.longrepr = f"{option}: {reason.removeprefix('Skipped: ')}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    reason = str(report.longrepr)
    if report.skipped and "::line:" in report.nodeid and " needs the " not in reason \
            and UNCOMPARED not in reason:
        SKIPPED_SNIPPETS.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With --require-lab, a snippet skipped for any reason but needing another lab fails the
    run: CI must not be green because the snippets quietly did not run."""
    if session.config.getoption("--require-lab") and SKIPPED_SNIPPETS:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.getoption("--require-lab") and SKIPPED_SNIPPETS:
        terminalreporter.write_line(
            f"--require-lab: {len(SKIPPED_SNIPPETS)} snippet test(s) were skipped: "
            + ", ".join(SKIPPED_SNIPPETS), red=True)
