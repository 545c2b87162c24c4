"""What a prepare reports: one :class:`PrepareResult` per setup, and the progress reporter.

Kept apart from :mod:`cri_tasks.runtime_image` so the cache-hit path (:mod:`cri_tasks.hitindex`)
can answer without importing the build machinery.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple

Reporter = Callable[[str], None]
FAILED = "PREPARING_RUNTIME_FAILED"


def stderr_reporter(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
        return [f"{self.setup}: {self.status} {self.image or ''} {self.image_id or ''}".rstrip(),
                *(f"  - {reason}" for reason in self.reasons)]
