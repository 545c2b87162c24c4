"""Small filesystem helpers every layer uses, cheap to import (a cache hit goes through here).

- :func:`locate`: which zerops.yml a task reads;
- :func:`private_dir`: an owner-only folder for records, logs, locks and build contexts;
- :func:`cache_folder`: the cache folder (``cri.cache_dir``) or a folder in it, the cache folder
  created with a ``.gitignore`` of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

#: what cri-tasks writes into the cache folder it creates, so that the folder never lands in a
#: commit or a build context (pytest's, mypy's and ruff's caches do the same)
CACHE_GITIGNORE = "# cri-tasks' cache (records, logs, locks, build contexts); remove this folder to clear it\n*\n"
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


def cache_folder(cache_dir: Path, *parts: str) -> Path:
    """``cache_dir`` (or the folder ``parts`` inside it), owner-only, created when missing.

    Creating the cache folder itself also writes its ``.gitignore``. Every folder at the top of
    the cache is made through here; when the cache folder exists (every call after the first, and never on a
    cache hit, which only reads) this costs the ``is_dir`` that :func:`private_dir` makes anyway.
    A cache folder that existed before (made by the user or an earlier version) is left as it is.
    """
    if not cache_dir.is_dir():
        private_dir(cache_dir)
        _write_gitignore(cache_dir)
    return private_dir(cache_dir.joinpath(*parts)) if parts else private_dir(cache_dir)


def _write_gitignore(folder: Path) -> None:
    try:
        fd = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created the folder at the same moment
        return
    with os.fdopen(fd, "w") as f:
        f.write(CACHE_GITIGNORE)


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
