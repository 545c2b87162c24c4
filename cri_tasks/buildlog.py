"""Reading BuildKit's plain progress output: which step runs, which one failed and why.

Pure text processing, the one reader of a build's log (:mod:`cri_tasks.buildx` feeds it). The
failure wording differs between BuildKit releases (``executor failed running [...]: exit code:
3``, ``process "..." did not complete successfully: exit code: 1``, ``failed to build: failed to
solve: ...``), so parsing is loose: the vertex that printed ``ERROR``, its ``[stage k/n]``
header and ``exit code: N``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ``#9 [build 3/7] RUN ...``; the stage is absent for a Dockerfile of one unnamed stage, the step
# number is padded to the width of the total (``[ 2/12]``), a multi-platform build puts the
# platform before the stage
_HEADER = re.compile(r"^#(\d+) \[(?:([^\]]*?)\s+)?\s*(\d+)/(\d+)\] (.*)$")
_OUTPUT = re.compile(r"^#(\d+) (\d+\.\d+) (.*)$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_EXIT = re.compile(r"exit code: (\d+)")


@dataclass(frozen=True)
class Header:
    """A step header: vertex ``#9`` is step 3 of 7 of stage ``build``, running ``instruction``."""

    vertex: str
    stage: str  # "" when BuildKit shows none (a Dockerfile of one unnamed stage)
    step: int
    total: int
    instruction: str  # as BuildKit shows it (continuation lines joined)


def header(line: str) -> Header | None:
    """The step header on ``line``, or None for any other line of the log."""
    match = _HEADER.match(line)
    if match is None:
        return None
    vertex, prefix, step, total, instruction = match.groups()
    words = (prefix or "").split()
    return Header(vertex, words[-1] if words else "", int(step), int(total), instruction)


@dataclass
class Tracker:
    """Follows one build's log: each vertex's step header and output, and the vertex that failed."""

    headers: dict[str, Header] = field(default_factory=dict)
    output: dict[str, list[str]] = field(default_factory=dict)
    failed_vertex: str | None = None
    error: str | None = None
    _error_open: bool = False

    def feed(self, line: str) -> Header | None:
        """Consume one log line; returns the step's header when a step starts (BuildKit shows a
        vertex's header again when its output resumes after another's: that is not a new step)."""
        if self._error_open:
            # An error message continues on the next lines when the command had newlines.
            if line.startswith(("#", "------", "ERROR:")) or not line:
                self._error_open = False
            else:
                self.error = f"{self.error}\n{line}"
                return None
        step = header(line)
        if step is not None:
            if step.vertex not in self.headers:
                self.headers[step.vertex] = step
                return step
            return None
        output = _OUTPUT.match(line)
        if output:
            self.output.setdefault(output.group(1), []).append(output.group(3))
            return None
        error = _ERROR.match(line)
        if error and self.failed_vertex is None:
            self.failed_vertex, self.error = error.group(1), error.group(2)
            self._error_open = True
        elif self.error is None and line.startswith("ERROR:"):
            self.error = line[len("ERROR:") :].strip()
        return None

    @property
    def failed_step(self) -> Header | None:
        """The header of the step that failed; None when the failure is no step's (a frontend
        error, a missing base image, the engine)."""
        if self.failed_vertex is None:
            return None
        return self.headers.get(self.failed_vertex)

    @property
    def exit_code(self) -> int | None:
        found = _EXIT.findall(self.error or "")
        return int(found[-1]) if found else None

    def tail(self, lines: int = 20) -> list[str]:
        """The last output lines of the vertex that failed."""
        if self.failed_vertex is None:
            return []
        return self.output.get(self.failed_vertex, [])[-lines:]
