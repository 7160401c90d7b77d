# run, start and stop of the Backend protocol, for backends whose commands are Exec jobs.
"""What a command's life means is the same in the kind and native labs: past its timeout it
is killed and :class:`~labkit.model.errors.CommandTimeout` raised; a background command
that dies before printing what it was waited for is an error saying so; stopped with a
signal, it was stopped, and only waited for, it took too long.  Only how a job starts and
how a signal reaches it differ (a second ``docker exec`` or exec stream in kind, the process
group on the host in the native lab): :class:`JobBackend` keeps the rest in one place.
"""

from __future__ import annotations

from ...model.errors import CommandTimeout, LabError
from ...model.output import DEFAULT_KEEP
from ...model.result import Result
from . import commands
from .commands import Exec

KILL_WAIT = commands.KILL_GRACE
"""After a kill, how long to wait for the exit status before dropping the command."""


class JobBackend:
    """``run``, ``start`` and ``stop`` over :class:`Exec` jobs; a subclass says how a job is
    launched (:meth:`_launch`), signalled and ended (:meth:`_end`), and keeps the background
    jobs in ``_jobs``."""

    _jobs: dict[str, Exec]

    def _launch(self, target: str, command: str, keep: int = DEFAULT_KEEP) -> Exec:
        raise NotImplementedError

    def _end(self, job: Exec, name: str, wait: float = KILL_WAIT) -> None:
        """Send SIG``name`` (``KILL``, ``INT``...) unless the job is done, then wait for it."""
        raise NotImplementedError

    def _signal(self, job: Exec, name: str) -> None:
        raise NotImplementedError

    def _forget(self, job: Exec) -> None:
        """The job is over: drop what the subclass keeps for it."""

    def run(self, target: str, command: str, timeout: float,
            keep: int = DEFAULT_KEEP) -> Result:
        job = self._launch(target, command, keep)
        if not job.wait(timeout):
            job.timed_out = True
            self._end(job, "KILL")
            raise CommandTimeout(job.result(), timeout)
        self._forget(job)
        if job.error is not None:
            raise job.error
        return job.result()

    def start(self, target: str, command: str, ready: str | None, timeout: float,
              keep: int = DEFAULT_KEEP) -> str:
        job = self._launch(target, command, keep)
        if ready and not job.wait_for(ready, timeout):
            if not job.done:
                job.timed_out = True
                self._end(job, "KILL")
                raise CommandTimeout(job.result(), timeout)
            if job.error is not None:
                raise job.error
            result = job.result()
            raise LabError(f"`{command}` on {target} exited with {result.rc} before printing "
                           f"{ready!r}\n  output: {result.output.strip() or '(none)'}")
        self._jobs[job.id] = job
        return job.id

    def stop(self, handle: str, signal: str, timeout: float) -> Result:
        name = commands.signal_name(signal) if signal else ""
        job = self._jobs.pop(handle, None)
        if job is None:
            raise LabError(f"no background command with handle {handle!r} (already stopped?)")
        if name and not job.done:
            self._signal(job, name)
        if not job.wait(timeout):
            # As in the netns lab: killed after a signal's grace, it was stopped; still running
            # when it was only waited for, it took too long (Background.wait raises for that).
            job.timed_out = not name
            self._end(job, "KILL")
        self._forget(job)
        if job.error is not None and job.rc is None and not job.printed:
            raise job.error
        return job.result()
