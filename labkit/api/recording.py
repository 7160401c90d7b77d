# Record a backend's calls into a transcript, and replay them without any lab.
"""Backends that wrap others: :class:`Recorder` and :class:`Replayer`.

Both sit between the :class:`~labkit.api.lab.Lab` front end and a real backend (or
none), so snippet code cannot tell a replay from a live run: the same calls get
the same answers, including the errors.
"""

from __future__ import annotations

from typing import Any

from ..model.errors import CommandTimeout, LabError, TranscriptError
from ..model.output import DEFAULT_KEEP
from ..model.result import Result
from .backend import Backend, Inventory


def _error_record(exc: LabError) -> dict[str, Any]:
    if isinstance(exc, CommandTimeout):
        return {"type": "CommandTimeout", "result": exc.result.to_dict(), "timeout": exc.timeout}
    return {"type": "LabError", "message": str(exc)}


def _raise(record: dict[str, Any]) -> None:
    if record["type"] == "CommandTimeout":
        raise CommandTimeout(Result.from_dict(record["result"]), record["timeout"])
    raise LabError(record["message"])


def _keep(record: dict[str, Any], keep: int) -> tuple[int, ...]:
    """Record a ``keep`` other than the default, and pass it on (the default is not: a
    backend that predates ``keep`` answers as before)."""
    if keep == DEFAULT_KEEP:
        return ()
    record["keep"] = keep
    return (keep,)


def _which(lab: str | None) -> str:
    return "the chapter's own lab" if lab is None else f"the {lab} lab"


class Recorder:
    """Passes calls to ``backend`` and keeps each call with its answer in ``calls``.

    A chapter that uses more than one lab has a recorder per lab sharing one ``calls``
    list, so the calls stay in the order they were made; ``lab`` names the lab on each
    call of a lab other than the chapter's own.
    """

    def __init__(self, backend: Backend, lab: str | None = None) -> None:
        self.backend = backend
        self.name = backend.name
        self.lab = lab
        self.calls: list[dict[str, Any]] = []
        self._inventory: Inventory | None = None

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = self.backend.inventory()
        return self._inventory

    def _call(self, record: dict[str, Any], method: Any, *args: Any) -> Any:
        if self.lab is not None:
            record["lab"] = self.lab
        self.calls.append(record)
        try:
            answer = method(*args)
        except LabError as exc:
            record["error"] = _error_record(exc)
            raise
        if isinstance(answer, Result):
            record["result"] = answer.to_dict()
        else:
            record["handle"] = answer
        return answer

    def run(self, target: str, command: str, timeout: float,
            keep: int = DEFAULT_KEEP) -> Result:
        record: dict[str, Any] = {"op": "run", "target": target, "command": command,
                                  "timeout": timeout}
        more = _keep(record, keep)
        result: Result = self._call(record, self.backend.run, target, command, timeout, *more)
        return result

    def start(self, target: str, command: str, ready: str | None, timeout: float,
              keep: int = DEFAULT_KEEP) -> str:
        record: dict[str, Any] = {"op": "start", "target": target, "command": command,
                                  "ready": ready, "timeout": timeout}
        more = _keep(record, keep)
        handle: str = self._call(record, self.backend.start, target, command, ready, timeout,
                                 *more)
        return handle

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        record = {"op": "stop", "handle": handle, "signal": signal, "timeout": timeout}
        result: Result = self._call(record, self.backend.stop, handle, signal, timeout)
        return result

    def close(self) -> None:
        self.backend.close()


class Queue:
    """The recorded calls of the snippet being replayed, shared by the replayers of its labs."""

    def __init__(self, where: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self.where = where


class Replayer:
    """Answers calls from a transcript, checking each is the call that was recorded.

    ``lab`` is None for the chapter's own lab, else the name its calls were recorded
    under; the replayers of one chapter share a :class:`Queue`.
    """

    name = "replay"
    replays = True
    """Nothing runs: :meth:`labkit.api.lab.Lab.pause` need not wait."""

    def __init__(self, inventory: Inventory, where: str, *, lab: str | None = None,
                 queue: Queue | None = None) -> None:
        self._inventory = inventory
        self.lab = lab
        self._queue = queue or Queue(where)

    def beside(self, inventory: Inventory, lab: str) -> Replayer:
        """A replayer for another lab of the same chapter (``lab``), answering from the same
        recorded calls, in the order they were made."""
        return Replayer(inventory, self.where, lab=lab, queue=self._queue)

    @property
    def where(self) -> str:
        return self._queue.where

    @property
    def _calls(self) -> list[dict[str, Any]]:
        return self._queue.calls

    def load(self, calls: list[dict[str, Any]], where: str) -> None:
        """Queue the recorded calls of the next snippet (``where`` is its file:line)."""
        self._queue.calls = list(calls)
        self._queue.where = where

    def leftover(self) -> list[dict[str, Any]]:
        return self._calls

    def inventory(self) -> Inventory:
        return self._inventory

    def _next(self, op: str, **expected: Any) -> dict[str, Any]:
        if not self._calls:
            raise TranscriptError(
                f"{self.where}: the snippet now makes a call the transcript does not have "
                f"({op} {expected.get('command', expected.get('handle', ''))!r}); "
                "rebuild with a lab to record it"
            )
        record = self._calls.pop(0)
        recorded = {k: record.get(k) for k in expected}
        if record.get("lab") != self.lab:
            raise TranscriptError(
                f"{self.where}: the snippet now calls {op} on {_which(self.lab)}, but the "
                f"transcript recorded a call on {_which(record.get('lab'))}; rebuild with a "
                "lab to record it"
            )
        if record["op"] != op or recorded != expected:
            raise TranscriptError(
                f"{self.where}: the snippet now calls {op} {expected}, but the transcript "
                f"recorded {record['op']} {recorded}; rebuild with a lab to record it"
            )
        if "error" in record:
            _raise(record["error"])
        return record

    def run(self, target: str, command: str, timeout: float,
            keep: int = DEFAULT_KEEP) -> Result:
        record = self._next("run", target=target, command=command)
        return Result.from_dict(record["result"])

    def start(self, target: str, command: str, ready: str | None, timeout: float,
              keep: int = DEFAULT_KEEP) -> str:
        return str(self._next("start", target=target, command=command)["handle"])

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        return Result.from_dict(self._next("stop", handle=handle)["result"])

    def close(self) -> None:
        pass
