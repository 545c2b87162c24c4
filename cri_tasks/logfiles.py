"""Phase logs (prepare, build, app image) in the cache folder, kept after every attempt."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import CriError
from .paths import cache_folder, component, remove, writing


def new_log(cache_dir: Path, setup: str, phase: str) -> Path:
    name = component(setup, "setup name")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    file = component(f"{phase}-{stamp}-{os.getpid()}.log", "log file name")  # checks the phase too
    with writing("the log folder", cache_dir / "logs"):
        directory = cache_folder(cache_dir, "logs", name)
    return directory / file


class LogFile:
    """A log being written; a write that fails (a full disk) is a clear error, not a traceback,
    and the incomplete log is removed (it would only hold the disk fuller)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        try:
            self.f = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            remove(self.path)
            raise CriError(f"cannot write the log {self.path.name} in {self.path.parent}: {exc.strerror}") from None
        return self

    def write(self, text: str) -> None:
        try:
            self.f.write(text)
            self.f.flush()
        except OSError as exc:
            self._discard()
            raise CriError(
                f"cannot write the log {self.path.name} in {self.path.parent}: {exc.strerror}; "
                "the build was stopped, nothing was recorded and the incomplete log was removed"
            ) from None

    def _discard(self) -> None:
        try:
            self.f.close()
        except OSError:
            pass  # the buffered rest cannot be written either
        remove(self.path)

    def flush(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        try:
            self.f.close()
        except OSError:
            pass
