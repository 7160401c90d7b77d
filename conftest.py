# pytest setup shared by the unit tests and the chapters' snippets (collected by sybil).
"""``--lab netns|kind`` picks the lab; ``--require-lab`` (CI) fails instead of skipping when
no lab can start, so a green run always means the snippets really ran."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import Lab, LabUnavailable, open_lab
from labkit.sybil import NO_LAB, collector

pytest_collect_file = collector(Path(__file__).parent / "docs_src")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lab", default="netns", choices=["netns", "kind"],
                     help="the lab the snippets and lab tests run on (default: netns)")
    parser.addoption("--require-lab", action="store_true",
                     help="fail, instead of skip, when the lab cannot be started (CI)")


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
