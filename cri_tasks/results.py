"""What the phases report with: the progress reporter and a prepared setup's result.

The tasks' own results, one typed result per task, are :mod:`cri_tasks.task_results`.

Kept apart from :mod:`cri_tasks.runtime_image` so the cache-hit path (:mod:`cri_tasks.hitindex`)
can answer without importing the build machinery.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple

Reporter = Callable[[str], None]
#: the Zerops word of a failed runtime prepare: a setup's ``status`` and the error's ``kind``
PREPARING_RUNTIME_FAILED = "PREPARING_RUNTIME_FAILED"


def stderr_reporter(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_line(report: Reporter, setup: str, line: str) -> None:
    """One line of BuildKit's log as it arrives, for a reporter that shows the whole log
    (``--verbose``); the others get only the condensed progress lines."""
    show = getattr(report, "build_line", None)
    if show is not None:
        show(setup, line)


class Progress:
    """The progress reporter of the command line, on stderr (stdout is for results).

    ``level``: ``quiet`` (nothing: errors still come as the task's error), ``normal`` (one line
    per step) or ``verbose`` (also every line of BuildKit's plain log, prefixed with the setup).
    ``emit``: where the lines go instead of ``stream`` (the Nox helpers pass ``session.log``).
    When the stream is a terminal, the last line ticks its elapsed time each second, so a long
    step shows that it is alive; the ticker stops with :meth:`close`.
    """

    def __init__(self, level: str = "normal", stream: Any = None, *, emit: Reporter | None = None) -> None:
        self.level = level
        self.stream = stream if stream is not None else sys.stderr
        self._emit = emit  # another place for the lines (nox's log): no ticker then
        self._tty = level != "quiet" and emit is None and _isatty(self.stream)
        self._last: str | None = None
        self._since = 0.0
        self._lock: Any = None
        self._stop: Any = None
        if self._tty:
            import threading

            self._lock, self._stop = threading.Lock(), threading.Event()
            threading.Thread(target=self._tick, name="cri-progress", daemon=True).start()

    def __call__(self, line: str) -> None:
        if self.level == "quiet":
            return
        if self._emit is not None:
            self._emit(line)
            return
        if not self._tty:
            print(line, file=self.stream, flush=True)
            return
        import time

        with self._lock:
            self._finish()
            self.stream.write(line)
            self.stream.flush()
            self._last, self._since = line, time.monotonic()

    def build_line(self, setup: str, line: str) -> None:
        if self.level == "verbose":
            self(f"[{setup}] | {line}")

    def close(self) -> None:
        if self._tty:
            self._stop.set()
            with self._lock:
                self._finish()

    def _finish(self) -> None:
        """End the ticking line (keeping its last elapsed time) so the next one starts fresh."""
        if self._last is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._last = None

    def _tick(self) -> None:
        import time

        while not self._stop.wait(1.0):
            with self._lock:
                if self._last is not None:
                    elapsed = time.monotonic() - self._since
                    if elapsed >= 2:  # a quick step shows no clock
                        self.stream.write(f"\r\x1b[K{self._last} ({elapsed:.0f} s)")
                        self.stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PrepareResult(NamedTuple):
    setup: str
    status: str  # "up to date" | "built" | "would build" | PREPARING_RUNTIME_FAILED
    image: str | None
    image_id: str | None
    fingerprint: str
    cached: bool
    seconds: float
    log: str | None
    reasons: tuple[str, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "setup": self.setup,
            "status": self.status,
            "image": self.image,
            "image_id": self.image_id,
            "fingerprint": self.fingerprint,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "log": self.log,
        }
        if self.reasons:
            out["reasons"] = list(self.reasons)
        if self.error:
            out["error"] = self.error
        return out

    def lines(self) -> list[str]:
        """The text every adapter prints: the outcome, then the reasons of --explain."""
        return [
            f"{self.setup}: {self.status} {self.image or ''} {self.image_id or ''}".rstrip(),
            *(f"  - {reason}" for reason in self.reasons),
        ]
