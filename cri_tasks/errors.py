"""One error base for everything the user can cause, with the evidence attached.

Adapters (Invoke, Nox, the ``cri`` program) turn a :class:`CriError` into a clean exit with its
message; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# The records here are NamedTuples rather than frozen dataclasses: every task imports this module,
# and a frozen dataclass costs about 0.7 ms to create at import time.


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the choice closest to a mistyped ``word``, or ``""``."""
    import difflib  # only on the error path

    options = list(choices)
    by_lower = {c.lower(): c for c in options}
    if word.lower() in by_lower:
        return f' (did you mean "{by_lower[word.lower()]}"?)'
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


class Location(NamedTuple):
    """A place in a file, 1-based like editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Problem(NamedTuple):
    """One finding about a zerops.yml: an error or a warning."""

    message: str
    path: str = ""
    location: Location | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field_ = f"{self.path}: " if self.path else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}{tag}{field_}{self.message}"


class CriError(Exception):
    """An expected failure: bad input, a failed command, an unreachable engine.

    ``status`` is the Zerops-style status word shown to the user (``PREPARING_RUNTIME_FAILED``…).
    """

    status: str = "FAILED"

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ConfigError(CriError):
    """A zerops.yml (or a setting) that cannot be used; carries every problem found."""

    status = "INVALID_CONFIG"

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class EngineError(CriError):
    """The Docker engine or one of its tools failed outside the user's commands."""

    status = "ENGINE_FAILED"

    def __init__(self, message: str, *, command: Sequence[str] = (), output: str = "") -> None:
        self.command = tuple(command)
        self.output = output
        super().__init__(message)


@dataclass
class CommandFailure:
    """Evidence of a user command (prepare/build/init) that exited non-zero."""

    setup: str
    phase: str  # "run.prepareCommands", "build.buildCommands", ...
    index: int | None
    command: str
    location: Location | None
    exit_code: int | None
    tail: list[str] = field(default_factory=list)
    log_path: str | None = None


class StepFailed(CriError):
    """A prepare, build or deploy step failed; the message names the command and the log."""

    def __init__(self, failure: CommandFailure, *, status: str, headline: str | None = None) -> None:
        self.failure = failure
        super().__init__(_describe(failure, status, headline), status=status)


def _describe(f: CommandFailure, status: str, headline: str | None) -> str:
    where = ""
    if f.location is not None:
        where = f"{f.location.file}:{f.location.line}: "
    index = f"[{f.index}]" if f.index is not None else ""
    code = f"failed with exit code {f.exit_code}" if f.exit_code is not None else "failed"
    lines = [headline or f"[{f.setup}] {status}: {where}{f.phase}{index} {code}"]
    command = f.command.rstrip("\n")
    if "\n" in command:
        lines.append("  command: |")
        lines.extend(f"    {line}" for line in command.splitlines())
    else:
        lines.append(f"  command: {command}")
    if f.tail:
        lines.append("  last lines of its output:")
        lines.extend(f"    {line}" for line in f.tail)
    if f.log_path:
        lines.append(f"  full log: {f.log_path}")
    return "\n".join(lines)
