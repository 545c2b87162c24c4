"""Small filesystem helpers every layer uses, cheap to import (a cache hit goes through here).

- :func:`locate`: which zerops.yml a task reads;
- :func:`private_dir`: an owner-only folder for records, logs, locks and build contexts;
- :func:`cache_folder`: the cache folder (``cri.cache_dir``) or a folder in it, the cache folder
  created with a ``.gitignore`` of its own.
- :func:`component`: the one door through which a name (setup, version, fingerprint, phase, lock
  key) enters a path: one safe path component, or a CriError.
- :func:`writing`: the one place a failed write into the cache folder (a full disk) becomes a
  clear error, after the partial work is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, CriError

#: what cri-tasks writes into the cache folder it creates, so that the folder never lands in a
#: commit or a build context (pytest's, mypy's and ruff's caches do the same)
CACHE_GITIGNORE = "# cri-tasks' cache (records, logs, locks, build contexts); remove this folder to clear it\n*\n"
CONFIG_NAMES = ("zerops.yaml", "zerops.yml")  # looked for in this order

#: what marks a project's root: the upward search for zerops.yml stops at the first folder
#: holding one (Invoke's own search finds tasks.py and invoke.yaml upward the same way)
ROOT_MARKERS = ("tasks.py", "invoke.yaml", "invoke.yml", "invoke.json", "invoke.py", ".git")
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


def quoted(text: str, limit: int = 40) -> str:
    """``text`` in double quotes with control and non-ASCII characters escaped (a newline, a NUL
    or a look-alike of "/" stays visible), cut after ``limit`` characters: how a message about
    zerops.yml shows a value."""
    return json.dumps(text[:limit]) + ("…" if len(text) > limit else "")


def path_refusal(raw: str, kind: str) -> str | None:
    """The message refusing a path written in zerops.yml (its value, then why), or None.

    The loader's and the phases' second walls word a refused path with this one function, so
    ``validate`` and a phase handed the same value say the same thing at the same place."""
    why = path_problem(raw, kind)
    return None if why is None else f"{quoted(raw)} {why}"


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
