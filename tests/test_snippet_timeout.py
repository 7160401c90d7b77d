# A snippet's timeout: it stops the snippet on time, not later, and leaves no timer behind.
from __future__ import annotations

import signal
import time

from labkit import Lab
from labkit.book import snippets
from labkit.book.execute import ChapterRun


def chapter(*codes: tuple[str, str]) -> snippets.Chapter:
    text = "# T\n\n" + "\n".join(f"```python labkit {options}\n{code}\n```\n"
                                 for code, options in codes)
    return snippets.parse(text, "docs_src/99-timeouts.md")


def test_a_deadline_is_kept_not_stretched(lab: Lab) -> None:
    run = ChapterRun(lab)
    [loop] = chapter(("while True:\n    pass", "timeout=2")).snippets
    started = time.monotonic()
    result = run.run(loop)
    elapsed = time.monotonic() - started
    assert result.error is not None and "did not finish within 2s" in str(result.error)
    # Stopped at its deadline: not before, and not half as late again.
    assert 2.0 <= elapsed < 3.0, elapsed


def test_no_timer_is_left_armed_after_a_snippet(lab: Lab) -> None:
    before = signal.getsignal(signal.SIGALRM)
    run = ChapterRun(lab)
    quick, slow = chapter(("x = 1", "timeout=1"), ("import time\ntime.sleep(1.5)\ny = 2",
                                                   "timeout=30")).snippets
    assert run.run(quick).error is None
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
    # The next snippet outlives the first one's second: no leftover alarm stops it.
    result = run.run(slow)
    assert result.error is None, result.error
    assert run.namespace["y"] == 2
