"""Small filesystem helpers every layer uses, cheap to import (a cache hit goes through here).

- :func:`locate`: which zerops.yml a task reads;
- :func:`private_dir`: an owner-only folder for records, logs, locks and build contexts;
- :func:`writing`: the one place a failed write into the cache folder (a full disk) becomes a
  clear error, after the partial work is removed.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .errors import ConfigError, CriError

CONFIG_NAMES = ("zerops.yaml", "zerops.yml")  # looked for in this order
MAX_FILE_BYTES = 1024 * 1024  # a bigger zerops.yml is refused


def folder_stamps(folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """``name\\0size\\0mtime\\0inode`` of each file in ``folder`` ending with ``suffixes``,
    sorted: what changes when a file there is rewritten, without reading it."""
    stamps = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.endswith(suffixes):
                st = entry.stat()
                stamps.append(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}")
    return sorted(stamps)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) owner-only, and tighten it if it already existed."""
    if not path.is_dir():
        if not path.parent.is_dir():
            private_dir(path.parent)
        path.mkdir(exist_ok=True, mode=0o700)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it is there; never fails (cleanup after a failure)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def write_failed(what: str, folder: Path, exc: OSError) -> CriError:
    """The error for a write into ``folder`` that failed: what was written, where, and why."""
    why = exc.strerror or str(exc)
    return CriError(f"cannot write {what} in {folder}: {why}")


@contextmanager
def writing(what: str, folder: Path, *, partial: Sequence[Path] = ()) -> Iterator[None]:
    """Run writes into ``folder``; a failed one (a full disk, a read-only file system) removes
    ``partial`` (the work it leaves half done) and becomes a CriError naming ``what`` and the
    folder, never a traceback. Records written earlier are not touched."""
    try:
        yield
    except OSError as exc:
        for path in partial:
            remove(path)
        raise write_failed(what, folder, exc) from None


def locate(path: str | Path | None, cwd: Path | None) -> tuple[Path, str]:
    """(path to open, path to show in messages: as the user gave it)."""
    if path is None:
        folder = cwd if cwd is not None else Path.cwd()
        for name in CONFIG_NAMES:
            if _exists(folder / name):
                return folder / name, name
        message = f"no {' or '.join(CONFIG_NAMES)} in {folder}"
        raise ConfigError(message)
    given = Path(path)
    real = cwd / given if cwd is not None and not given.is_absolute() else given
    if _is_dir(real):
        for name in CONFIG_NAMES:
            if _exists(real / name):
                return real / name, str(given / name)
        message = f"{given}: no {' or '.join(CONFIG_NAMES)} in this directory"
        raise ConfigError(message)
    if not _exists(real):
        message = f"{given}: no such file"
        raise ConfigError(message)
    return real, str(given)


def _exists(path: Path) -> bool:
    # A broken symlink "exists" here so that reading it reports it precisely.
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return True  # let the read report the actual error (permission...)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
