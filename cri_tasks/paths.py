"""Small filesystem helpers every layer uses, cheap to import (a cache hit goes through here).

- :func:`locate`: which zerops.yml a task reads;
- :func:`private_dir`: an owner-only folder for records, logs, locks and build contexts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

CONFIG_NAMES = ("zerops.yaml", "zerops.yml")  # looked for in this order

#: what marks a project's root: the upward search for zerops.yml stops at the first folder
#: holding one (Invoke's own search finds tasks.py and invoke.yaml upward the same way)
ROOT_MARKERS = ("tasks.py", "invoke.yaml", "invoke.yml", "invoke.json", "invoke.py", ".git")
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


def locate(path: str | Path | None, cwd: Path | None) -> tuple[Path, str]:
    """(path to open, path to show in messages: as the user gave it).

    No path: ``zerops.yaml``, then ``zerops.yml``, in ``cwd`` (default: the current directory),
    else in the folders above it, up to the first that holds one of :data:`ROOT_MARKERS` (the
    project's root) or the filesystem's root; shown relative (``../zerops.yml``)."""
    if path is None:
        start = cwd if cwd is not None else Path.cwd()
        folder, shown = start, Path()
        while True:
            for name in CONFIG_NAMES:
                if _exists(folder / name):
                    return folder / name, str(shown / name)
            if any(_exists(folder / marker) for marker in ROOT_MARKERS) or folder.parent == folder:
                break
            folder, shown = folder.parent, shown / ".."
        where = str(start) if folder == start else f"{start} or the folders above it up to {folder}"
        message = f"no {' or '.join(CONFIG_NAMES)} in {where}"
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
