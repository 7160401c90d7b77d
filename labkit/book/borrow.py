# What only a real cluster can print, lent to the replica from the real cluster's recording.
"""The real cluster's recording of a chapter, standing in for it on the replica.

A ``lab=real`` snippet asks what only a real cluster has (``kubectl``,
``calicoctl``, an API server).  On the replica it runs against the answers
the real cluster gave when the chapter was last recorded on it (``nox -s
build -- --lab native``, kept in ``docs_src/transcripts/native/``), exactly
as a replay does: the snippet's code and assertions run again, the page
shows those outputs marked with the real cluster and the time it printed
them.  Nothing is ever invented: a snippet with no recording as it is now is
an error that says how to record it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..api.lab import Lab
from ..api.recording import Replayer
from ..model.errors import TranscriptError
from ..model.labs import DEFAULT
from .execute import StandIn
from .follow import followed
from .snippets import Chapter, Snippet
from .transcript import Store, Transcript

RECORDED_ON = "native"
"""The lab whose recordings the replica borrows: the real cluster this machine runs."""


def recordings(transcripts: Path, lab: str = RECORDED_ON) -> Path:
    """Where a lab's transcripts are: the replica's in ``transcripts/``, each real
    cluster's in a folder named after it (``transcripts/native/``)."""
    return transcripts if lab == "netns" else transcripts / lab


class RealRecording:
    """One chapter's recording on the real cluster, read when a snippet first needs it."""

    def __init__(self, chapter: Chapter, transcripts: Path) -> None:
        self.chapter = chapter
        self.store = Store(recordings(transcripts))
        self._transcript: Transcript | None = None

    def _load(self) -> Transcript:
        transcript = self.transcript()
        if transcript is None:
            raise TranscriptError(
                "only a real cluster can run this snippet, and there is no "
                f"recording of {self.chapter.path} on one "
                f"({self.store.path_for(self.chapter.path)}): {HOW_TO_RECORD}")
        return transcript

    def transcript(self) -> Transcript | None:
        """The recording, None if there is none (TranscriptError if it is damaged)."""
        if self._transcript is None:
            self._transcript = self.store.load(self.chapter.path)
        return self._transcript

    def inventories(self) -> dict[str, dict[str, Any]]:
        """Each lab the real cluster ran for the chapter, by name: what the replica follows."""
        transcript = self.transcript()
        if transcript is None:
            return {}
        every = {transcript.inventory["info"].get("lab", DEFAULT): transcript.inventory,
                 **transcript.labs}
        return {name: inventory for name, inventory in every.items()
                if inventory["info"].get("backend") == RECORDED_ON}

    def manifests(self, manifests: Path, state: Path) -> Path:
        """The labs' manifests the replica runs the chapter from: ``manifests``, with each lab
        the real cluster recorded following what it picked (a copy in ``state``)."""
        inventories = self.inventories()
        if not inventories:
            return manifests
        stem = Path(self.chapter.path).stem
        return followed(manifests, inventories, state / "followed" / stem,
                        f"docs_src/transcripts/{RECORDED_ON}/{stem}.yaml")

    def stand_in_for(self, snippet: Snippet, skip: str | None,
                     ) -> Callable[[], StandIn] | None:
        """What ``snippet`` runs against when this lab cannot run it (``skip``): the real
        cluster's recording for a ``lab=real`` snippet, else nothing (it is skipped)."""
        return self.stand_in(snippet) if skip and snippet.real_only else None

    def stand_in(self, snippet: Snippet) -> Callable[[], StandIn]:
        """What :meth:`labkit.book.execute.ChapterRun.run` runs ``snippet`` against."""
        def make() -> StandIn:
            transcript = self._load()
            index = self.chapter.snippets.index(snippet)
            records = transcript.snippets
            record = records[index] if index < len(records) else None
            if record is None or record.code != snippet.code:
                raise TranscriptError(
                    "only a real cluster can run this snippet, and "
                    f"{transcript.path} recorded it before it changed: {HOW_TO_RECORD}")
            replayer = Replayer(transcript.inventory, self.chapter.path)
            lab = Lab(replayer)
            others = {name: Lab(replayer.beside(inventory, name))
                      for name, inventory in transcript.labs.items()}
            replayer.load(record.calls, snippet.where)

            def done() -> None:
                if replayer.leftover():
                    raise TranscriptError(
                        "the snippet now makes fewer calls than "
                        f"{transcript.path} recorded: {HOW_TO_RECORD}")

            return StandIn(lab, {lab.name: lab, **others}, dict(transcript.inventory["info"]),
                           record.started or transcript.recorded, done)

        return make


HOW_TO_RECORD = ("record the chapter on the real cluster with `nox -s build -- --lab native` "
                 "(as root) and commit docs_src/transcripts/native/")
