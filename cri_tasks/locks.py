"""File locks that the operating system releases when the holder dies (fcntl.flock).

A lock also tells whether the work it guards has a live owner: :func:`sweep` removes what a
killed process left behind (a build folder, a staged context) only when nobody holds its lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CriError
from .paths import cache_folder, component, remove, write_failed, writing

# The locks this thread holds: taking one again (a deploy that runs the build phase under the
# build lock it already holds) must not wait for itself. Per thread, so that two threads of one
# process still exclude each other the way two processes do.
_held = threading.local()


def _path(cache_dir: Path, key: str) -> Path:
    name = component(f"{key}.lock", "lock key")  # before the folder is made
    with writing("the lock folder", cache_dir / "locks"):
        return cache_folder(cache_dir, "locks") / name


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise write_failed(f"the lock {path.name}", path.parent, exc) from None


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
    path = _path(cache_dir, key)
    held: set[str] = _held.__dict__.setdefault("keys", set())
    if str(path) in held:
        yield
        return
    fd = _open(path)
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
        try:  # who holds it, for a person looking; the lock itself is the flock (a full disk is fine)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        held.add(str(path))
        try:
            yield
        finally:
            held.discard(str(path))
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sweep(cache_dir: Path, key: str, leftovers: Iterable[Path]) -> list[Path]:
    """Remove ``leftovers`` of the work that ``key`` guards when no live process holds the lock
    (its owner was killed); returns what was removed. Held (by another process or by this
    thread), nothing is touched."""
    path = _path(cache_dir, key)
    if str(path) in _held.__dict__.get("keys", set()):
        return []
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a live owner: its work is not a leftover
        removed = [p for p in leftovers if os.path.lexists(p)]
        for p in removed:
            remove(p)
        return removed
    finally:
        os.close(fd)  # closing the descriptor releases the flock
