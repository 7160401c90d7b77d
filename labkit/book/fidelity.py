# The replica held to the real cluster: the same snippets' outputs compared, one by one.
"""Compare what the replica printed with what the real cluster printed, output by output.

Both runs are transcripts of the same chapters (the replica's in
``docs_src/transcripts/``, the real cluster's in ``docs_src/transcripts/native/``,
or fresh ones a fidelity run just recorded).  Each snippet's outputs are
paired in order and compared after the chapter's declared normalisers plus
:data:`RANDOM`, the values a real cluster picks at random; nothing else is
masked.  An output that differs is *declared* when an entry of
``differences.yaml`` covers its command (:mod:`.differences`), else it is
*undeclared*: a fault of the replica to fix, or a difference to declare with
its reason.  Snippets only a real cluster runs (``lab=real``) are counted
apart: the replica borrows their outputs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..model.result import Result
from .differences import Difference
from .drift import terminal
from .normalize import normalizer
from .snippets import Chapter, Snippet
from .transcript import SnippetRecord, Transcript

RANDOM = ("mac", "uuid", "time", "ids", "neigh")
"""What two real clusters would print differently too: kernel-random MACs (and link-local
addresses made from them), ``cni-<uuid>`` names, clocks, ICMP and IP ids, neighbour states
that move on a timer."""


@dataclass(frozen=True)
class Compared:
    """One output, printed by both labs."""

    where: str
    """``docs_src/<file>.md:<line>`` of its snippet."""
    command: str
    diff: str
    """Unified diff real → replica of the normalised outputs; empty when identical."""
    declared: Difference | None = None


@dataclass
class Fidelity:
    """The comparison of one or more chapters."""

    outputs: list[Compared] = field(default_factory=list)
    real_only: int = 0
    """Outputs of ``lab=real`` snippets: the replica shows the real cluster's."""
    problems: list[str] = field(default_factory=list)
    """What could not be compared at all (a snippet changed since one recording, a failure)."""

    @property
    def identical(self) -> int:
        return sum(1 for o in self.outputs if not o.diff)

    @property
    def declared(self) -> list[Compared]:
        return [o for o in self.outputs if o.diff and o.declared]

    @property
    def undeclared(self) -> list[Compared]:
        return [o for o in self.outputs if o.diff and not o.declared]

    def add(self, other: Fidelity) -> None:
        self.outputs += other.outputs
        self.real_only += other.real_only
        self.problems += other.problems

    def summary(self) -> str:
        return (f"{self.identical} of {len(self.outputs)} outputs identical "
                f"({len(self.declared)} differ as declared, {len(self.undeclared)} differ "
                f"undeclared; {self.real_only} printed only by the real cluster"
                + (f"; {len(self.problems)} not compared" if self.problems else "") + ")")


def compare(chapter: Chapter, replica: Transcript, real: Transcript,
            declared: list[Difference]) -> Fidelity:
    """Every output of ``chapter`` that both recordings hold, compared."""
    found = Fidelity()
    applies = [d for d in declared if d.applies(replica.inventory.get("info", {}))]
    # A lab the real cluster's build ran on the replica too (front matter `replica`) compares
    # the replica with itself: left out.
    both = replica_labs(real)
    for index, snippet in enumerate(chapter.snippets):
        mine = _record(replica, index, snippet.code)
        theirs = _record(real, index, snippet.code)
        if mine is None or theirs is None:
            stale = replica.path if mine is None else real.path
            found.problems.append(f"{snippet.where}: {stale} recorded this snippet before it "
                                  "changed; record it again")
            continue
        if snippet.real_only:
            found.real_only += len(theirs.results())
            continue
        if mine.error or theirs.error:
            which = "the replica" if mine.error else "the real cluster"
            found.problems.append(f"{snippet.where}: it failed on {which}: "
                                  f"{mine.error or theirs.error}")
            continue
        found.outputs += compare_snippet(chapter, snippet, results_without(mine, both),
                                         results_without(theirs, both), applies)
    return found


def compare_snippet(chapter: Chapter, snippet: Snippet, ours: list[Result],
                    theirs: list[Result], declared: list[Difference]) -> list[Compared]:
    """One snippet's outputs on the replica (``ours``) against the real cluster's, in order."""
    normalize = normalizer({*chapter.normalizers, *snippet.normalizers, *RANDOM})
    compared = []
    for mine, real_one in _pairs(ours, theirs):
        either = mine or real_one
        command = either.command if either is not None else ""
        before = normalize(terminal([real_one] if real_one else []))
        after = normalize(terminal([mine] if mine else []))
        text = "".join(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            fromfile=f"{snippet.where} (real cluster)", tofile=f"{snippet.where} (replica)"))
        cover = next((d for d in declared if d.covers(chapter.path, command)), None)
        compared.append(Compared(snippet.where, command, text, cover if text else None))
    return compared


def replica_labs(real: Transcript) -> set[str]:
    """The chapter's other labs its real-cluster recording ran on the replica (front matter
    ``replica``): comparing their outputs would compare the replica with itself."""
    return {name for name, inventory in real.labs.items()
            if inventory["info"].get("backend") == "netns"}


def results_without(record: SnippetRecord, leave_out: set[str]) -> list[Result]:
    """A recorded snippet's outputs, but those in the other labs named."""
    calls = [c for c in record.calls if c.get("lab") not in leave_out]
    return SnippetRecord(record.line, record.code, calls).results()


def _record(transcript: Transcript, index: int, code: str) -> SnippetRecord | None:
    records = transcript.snippets
    if index < len(records) and records[index].code == code:
        return records[index]
    return None


def _pairs(ours: list[Result], theirs: list[Result],
           ) -> Iterator[tuple[Result | None, Result | None]]:
    for i in range(max(len(ours), len(theirs))):
        yield (ours[i] if i < len(ours) else None, theirs[i] if i < len(theirs) else None)
