# The errors labkit raises: one small tree, so callers catch LabError and print it.
"""labkit's error tree.

Every error a user can cause or meet (no lab, a missing tool, a command that
failed, a snippet that failed at a line) is a :class:`LabError` whose ``str()``
is a complete, one-paragraph message meant to be printed as is, without a
traceback.  Errors from the kernel, subprocesses or the Kubernetes client are
chained with ``raise ... from`` so a developer can still see the cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import Result


class LabError(Exception):
    """Base of everything labkit raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable whatever the subclass's __init__ takes: a chapter's child process hands
        # its errors to the build this way.
        return (_restore, (type(self), str(self), dict(self.__dict__)))


def _restore(kind: type[LabError], message: str, state: dict[str, object]) -> LabError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class LabUnavailable(LabError):
    """A lab cannot be started or reached here (no namespaces, no Docker, no lab up).

    ``hint`` says what to do about it (a package to install, ``--replay``).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ToolMissing(LabUnavailable):
    """A command labkit needs (or a snippet ran) is not installed."""

    def __init__(self, tool: str, package: str | None, where: str = "this machine") -> None:
        self.tool = tool
        self.package = package
        hint = f"install the Debian/Ubuntu package `{package}` (apt-get install {package})"
        super().__init__(f"`{tool}` is not installed on {where}", hint=hint if package else "")


class ManifestError(LabError):
    """A manifest is missing, malformed, or asks for what a cluster would refuse.

    Its message is one line: the file as it was read, the line, the key path and the
    problem (``/x/manifests/replica.yaml:9: `pods[1].node`: ...``).
    """

    def __init__(self, file: str, line: int, key: str, problem: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: `{key}`: {problem}" if key else f"{where}: {problem}")


class LabBuildFailed(LabError):
    """The machine can run a lab, but building this one failed: a bug in the replica or its
    manifests, never a reason to skip (unlike :class:`LabUnavailable`)."""


class LabDamaged(LabError):
    """A node or pod of the lab is gone (the process holding its namespaces died): the lab
    can no longer show what a cluster would, and must be started again."""


class RefusedFolder(LabError):
    """A folder labkit was asked to replace that it did not create (``--site docs``);
    the command exits 2 and the folder is left as it was."""


class UnknownTarget(LabError):
    """A node or pod name that the lab does not have; the message lists the ones it has."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no node or pod named {name!r}; this lab has: {', '.join(known)}")


class CommandFailed(LabError):
    """A command exited with a status the caller did not expect."""

    def __init__(self, result: Result, expected: str = "0") -> None:
        self.result = result
        stderr = result.stderr.strip() or "(nothing on stderr)"
        super().__init__(
            f"`{result.command}` on {result.target} exited with {result.rc} "
            f"(expected {expected})\n  stderr: {stderr}"
        )


class CommandTimeout(CommandFailed):
    """A command ran longer than its timeout and was killed."""

    def __init__(self, result: Result, timeout: float) -> None:
        self.timeout = timeout
        LabError.__init__(
            self,
            f"`{result.command}` on {result.target} did not finish within {timeout:g}s "
            f"and was killed\n  output so far: {result.output.strip()[-300:] or '(none)'}",
        )
        self.result = result


class SnippetError(LabError):
    """A snippet in a chapter is malformed or failed; names ``docs_src/<file>.md:<line>``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.reason = message
        super().__init__(f"{path}:{line}: {message}")


class TranscriptError(LabError):
    """A transcript is missing, corrupt, or no longer matches its chapter."""
