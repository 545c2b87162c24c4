"""Small filesystem helpers every layer uses, cheap to import (a cache hit goes through here).

- :func:`locate`: which zerops.yml a task reads;
- :func:`private_dir`: an owner-only folder for records, logs, locks and build contexts;
- :func:`cache_folder`: the cache folder (``cri.cache_dir``) or a folder in it, the cache folder
  created with a ``.gitignore`` of its own.
- :func:`component`: the one door through which a name (setup, version, fingerprint, phase, lock
  key) enters a path: one safe path component, or a CriError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError, CriError

#: what cri-tasks writes into the cache folder it creates, so that the folder never lands in a
#: commit or a build context (pytest's, mypy's and ruff's caches do the same)
CACHE_GITIGNORE = "# cri-tasks' cache (records, logs, locks, build contexts); remove this folder to clear it\n*\n"
CONFIG_NAMES = ("zerops.yaml", "zerops.yml")  # looked for in this order
MAX_FILE_BYTES = 1024 * 1024  # a bigger zerops.yml is refused


#: the longest name :func:`component` accepts. Callers add at most ~100 characters (a fingerprint,
#: a time stamp, a pid, ``.lock``) and a file name may have 255 bytes.
MAX_COMPONENT = 128
# ASCII letters, digits, "_", "." and "-", not starting with "." or "-": never "/", NUL, a control
# character, "." or "..", an option-like "-rf", a hidden file, or a Unicode look-alike of any of
# them (a fullwidth dot or a division slash shows like "." or "/" in a message).
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def component(name: str, what: str) -> str:
    """``name`` if it is one safe path component; otherwise a CriError naming ``what`` it is.

    Every path made from a name goes through here (a second wall behind the loader's setup-name
    rule): a model built by other code, a record read back or a future caller cannot reach outside
    the folder it joins the name to. ``tests/test_paths.py`` fails when a module joins a name
    into a path without it."""
    if isinstance(name, str) and len(name) <= MAX_COMPONENT and _COMPONENT.fullmatch(name):
        return name
    if not isinstance(name, str):
        why = f"expected a string, got {type(name).__name__}"
    elif not name:
        why = "it is empty"
    elif len(name) > MAX_COMPONENT:
        why = f"it has {len(name)} characters (at most {MAX_COMPONENT})"
    elif name in (".", ".."):
        why = f"{name!r} names a folder, not a file in it"
    else:
        why = "only ASCII letters, digits, '_', '.' and '-' are allowed, not first '.' or '-'"
    shown = repr(name[:40] + "…" if isinstance(name, str) and len(name) > 40 else name)
    message = f"refusing to use the {what} {shown} in a path: {why}"
    raise CriError(message, status="INVALID_CONFIG")


#: where each kind of zerops.yml path is relative to: "project" (addToRunPrepare), "deployFiles"
#: (the build folder, with the "~" rule) or a folder inside a container
PATH_KINDS = ("project", "deployFiles", "/build/source", "/var/www")
#: deployFiles values that mean the whole build folder although they look absolute (official recipes)
WHOLE_BUILD_DIR = ("/", "/~")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def path_problem(raw: str, kind: str) -> str | None:
    """Why a path written in zerops.yml cannot be used (the text after its quoted value), or None.

    The one statement of these rules: the loader refuses such a value at ``validate`` and the
    phases that use it (fingerprint, artifact, build, deploy) ask again as a second wall."""
    if kind not in PATH_KINDS:
        raise ValueError(f"unknown kind of path {kind!r}")
    value = raw.strip()
    if _CONTROL.search(raw):
        return "holds a control character (a NUL, a line break...): not a usable path"
    if not value:
        return "is empty"
    if kind == "project":
        if value.startswith(("/", "~")):
            return "is absolute; paths are relative to the project folder"
        return "leaves the project folder ('..')" if ".." in value.split("/") else None
    if kind == "deployFiles":
        if value.count("~") > 1:
            return "has more than one '~'"
        if value in WHOLE_BUILD_DIR:
            return None
        if value.replace("~", "").startswith("/"):
            return "is absolute; deployFiles are relative to the project folder ('/' alone means all of it)"
        if any(c in value for c in "*?["):
            # looked up literally after the build, it could never be found: refused at validate
            return "holds a glob character ('*', '?', '['): deployFiles are paths, '~' is their only special character"
        return "leaves the project folder ('..')" if ".." in value.replace("~", "").split("/") else None
    if value.startswith("/") or ".." in value.split("/"):
        return f"must stay inside {kind}"
    return None


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
