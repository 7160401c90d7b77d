# Record a backend's calls into a transcript, and replay them without any lab.
"""Backends that wrap others: :class:`Recorder` and :class:`Replayer`.

Both sit between the :class:`~labkit.lab.Lab` front end and a real backend (or
none), so snippet code cannot tell a replay from a live run: the same calls get
the same answers, including the errors.
"""

from __future__ import annotations

from typing import Any

from .backend import Backend, Inventory
from .errors import CommandTimeout, LabError, TranscriptError
from .result import Result


def _error_record(exc: LabError) -> dict[str, Any]:
    if isinstance(exc, CommandTimeout):
        return {"type": "CommandTimeout", "result": exc.result.to_dict(), "timeout": exc.timeout}
    return {"type": "LabError", "message": str(exc)}


def _raise(record: dict[str, Any]) -> None:
    if record["type"] == "CommandTimeout":
        raise CommandTimeout(Result.from_dict(record["result"]), record["timeout"])
    raise LabError(record["message"])


class Recorder:
    """Passes calls to ``backend`` and keeps each call with its answer in ``calls``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.calls: list[dict[str, Any]] = []
        self._inventory: Inventory | None = None

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = self.backend.inventory()
        return self._inventory

    def _call(self, record: dict[str, Any], method: Any, *args: Any) -> Any:
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

    def run(self, target: str, command: str, timeout: float) -> Result:
        record = {"op": "run", "target": target, "command": command, "timeout": timeout}
        result: Result = self._call(record, self.backend.run, target, command, timeout)
        return result

    def start(self, target: str, command: str, ready: str | None, timeout: float) -> str:
        record = {"op": "start", "target": target, "command": command, "ready": ready,
                  "timeout": timeout}
        handle: str = self._call(record, self.backend.start, target, command, ready, timeout)
        return handle

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        record = {"op": "stop", "handle": handle, "signal": signal, "timeout": timeout}
        result: Result = self._call(record, self.backend.stop, handle, signal, timeout)
        return result

    def close(self) -> None:
        self.backend.close()


class Replayer:
    """Answers calls from a transcript, checking each is the call that was recorded."""

    name = "replay"
    replays = True
    """Nothing runs: :meth:`labkit.lab.Lab.pause` need not wait."""

    def __init__(self, inventory: Inventory, where: str) -> None:
        self._inventory = inventory
        self.where = where
        self._calls: list[dict[str, Any]] = []

    def load(self, calls: list[dict[str, Any]], where: str) -> None:
        """Queue the recorded calls of the next snippet (``where`` is its file:line)."""
        self._calls = list(calls)
        self.where = where

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
        if record["op"] != op or recorded != expected:
            raise TranscriptError(
                f"{self.where}: the snippet now calls {op} {expected}, but the transcript "
                f"recorded {record['op']} {recorded}; rebuild with a lab to record it"
            )
        if "error" in record:
            _raise(record["error"])
        return record

    def run(self, target: str, command: str, timeout: float) -> Result:
        record = self._next("run", target=target, command=command)
        return Result.from_dict(record["result"])

    def start(self, target: str, command: str, ready: str | None, timeout: float) -> str:
        return str(self._next("start", target=target, command=command)["handle"])

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        return Result.from_dict(self._next("stop", handle=handle)["result"])

    def close(self) -> None:
        pass
