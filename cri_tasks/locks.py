"""File locks that the operating system releases when the holder dies (fcntl.flock)."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import CriError
from .paths import cache_folder, component


@contextmanager
def locked(
    cache_dir: Path,
    key: str,
    *,
    wait: bool = True,
    timeout: float = 3600,
    on_wait: Callable[[], None] | None = None,
    what: str = "another cri-tasks process holds the lock",
) -> Iterator[None]:
    """Hold ``<cache>/locks/<key>.lock``. ``wait=False`` fails at once when it is taken."""
    name = component(f"{key}.lock", "lock key")  # before the folder is made
    path = cache_folder(cache_dir, "locks") / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise CriError(f"{what} (lock {path})") from None
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if time.monotonic() > deadline:
                    raise CriError(f"gave up after {timeout:.0f} s: {what} (lock {path})") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
