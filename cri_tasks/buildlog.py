"""Reading BuildKit's plain progress output: which step runs, which one failed and why.

Pure text processing, shared by prepare and build. The failure wording differs between BuildKit
releases (``executor failed running [...]: exit code: 3``, ``process "..." did not complete
successfully: exit code: 1``, ``failed to build: failed to solve: ...``), so parsing is loose:
the vertex that printed ``ERROR``, its ``[k/n]`` header and ``exit code: N``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: instructions that become a ``[k/n]`` step of the final stage in BuildKit's progress
STEP_INSTRUCTIONS = ("FROM", "RUN", "COPY", "ADD", "WORKDIR")

_HEADER = re.compile(r"^#(\d+) \[(?:[^\]]*?\s)?\s*(\d+)/(\d+)\] (.*)$")
_OUTPUT = re.compile(r"^#(\d+) (\d+\.\d+) (.*)$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_EXIT = re.compile(r"exit code: (\d+)")


def step_lines(dockerfile: str) -> list[str]:
    """The instructions of a single-stage Dockerfile that show as steps, in order (k = i + 1)."""
    steps = []
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0].upper()
        if word in STEP_INSTRUCTIONS:
            steps.append(line)
    return steps


@dataclass
class Tracker:
    """Follows a build's log: maps vertices to steps and keeps each vertex's output."""

    steps_by_vertex: dict[str, int] = field(default_factory=dict)
    output: dict[str, list[str]] = field(default_factory=dict)
    failed_vertex: str | None = None
    error: str | None = None
    _error_open: bool = False

    def feed(self, line: str) -> int | None:
        """Consume one log line; returns the step number when a step starts."""
        if self._error_open:
            # An error message continues on the next lines when the command had newlines.
            if line.startswith(("#", "------", "ERROR:")) or not line:
                self._error_open = False
            else:
                self.error = f"{self.error}\n{line}"
                return None
        m = _HEADER.match(line)
        if m:
            vertex, step = m.group(1), int(m.group(2))
            if vertex not in self.steps_by_vertex:
                self.steps_by_vertex[vertex] = step
                return step
            return None
        m = _OUTPUT.match(line)
        if m:
            self.output.setdefault(m.group(1), []).append(m.group(3))
            return None
        m = _ERROR.match(line)
        if m and self.failed_vertex is None:
            self.failed_vertex, self.error = m.group(1), m.group(2)
            self._error_open = True
        elif self.error is None and line.startswith("ERROR:"):
            self.error = line[len("ERROR:") :].strip()
        return None

    @property
    def failed_step(self) -> int | None:
        if self.failed_vertex is None:
            return None
        return self.steps_by_vertex.get(self.failed_vertex)

    @property
    def exit_code(self) -> int | None:
        found = _EXIT.findall(self.error or "")
        return int(found[-1]) if found else None

    def tail(self, n: int = 20) -> list[str]:
        if self.failed_vertex is None:
            return []
        return self.output.get(self.failed_vertex, [])[-n:]
