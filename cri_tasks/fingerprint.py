"""Content fingerprints of what a runtime image is built from (pure: no Docker, no templates).

A fingerprint is the sha256 of canonical JSON over the inputs Zerops says invalidate the runtime
image (run.os, run.base, run.prepareCommands, the addToRunPrepare list and the content of the
files it names), plus what makes the same inputs build a different image here: the template
sources, the resolved base image id and where the Gleam CLI comes from.

File content is hashed with a stat cache keyed by (size, mtime_ns, inode, device), so an
unchanged tree is not read again; a changed mtime only costs a re-hash, never a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from .errors import ConfigError, Location, Problem
from .paths import path_refusal

if TYPE_CHECKING:
    from .model import PathRef

FINGERPRINT_VERSION = 1
_CHUNK = 1 << 20
# file types from st_mode, compared directly (cheaper than stat.S_ISREG() calls on a big tree)
_IFMT, _IFREG, _IFDIR, _IFLNK = 0o170000, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


class Entry(NamedTuple):
    """One thing under an addToRunPrepare path: a file, a folder or a symlink inside the project.

    A NamedTuple rather than a dataclass: a large tree makes thousands of them on a cache hit."""

    rel: str  # posix path relative to the project root
    kind: str  # "file" | "dir" | "link"
    mode: int  # permission bits
    content: str  # sha256 for files, link target for links, "" for folders

    def as_json(self) -> str:
        return f"{self.kind}:{self.mode:o}:{self.content}"


class Ref(NamedTuple):
    """An addToRunPrepare path known without loading zerops.yml (the cache-hit index keeps these)."""

    value: str
    path: str = "build.addToRunPrepare"
    location: Location | None = None


AnyRef = Union["PathRef", Ref]


def stat_key(st: os.stat_result) -> list[int]:
    """What says a file is unchanged without reading it: size, mtime, inode, device."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


class StatCache:
    """rel path -> [size, mtime_ns, ino, dev, sha256], loaded and saved as one JSON record."""

    def __init__(self, data: Mapping[str, list[Any]] | None = None) -> None:
        self.data: dict[str, list[Any]] = dict(data or {})
        self.changed = False
        self.seen: set[str] = set()

    def file_digest(self, path: str | Path, rel: str, st: os.stat_result) -> str:
        key = stat_key(st)
        self.seen.add(rel)
        hit = self.data.get(rel)
        if hit is not None and hit[:4] == key:
            return str(hit[4])
        value = hash_file(path)
        self.data[rel] = [*key, value]
        self.changed = True
        return value

    def pruned(self) -> dict[str, list[Any]]:
        """Only the entries seen in this run, so deleted files do not accumulate."""
        return {k: v for k, v in self.data.items() if k in self.seen}


def hash_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_inside(root: Path, ref: AnyRef, *, field: str = "build.addToRunPrepare") -> Path:
    """The real path of ``ref`` if it stays inside ``root``; otherwise a ConfigError naming it."""
    raw = ref.value.strip()
    pure = PurePosixPath(raw)

    def fail(why: str) -> ConfigError:
        return ConfigError([Problem(f"{raw!r} {why}", path=ref.path, location=ref.location)])

    refusal = path_refusal(ref.value, "project")  # the loader's rule and words, asked again
    if refusal is not None:
        raise ConfigError([Problem(refusal, path=ref.path, location=ref.location)])
    candidate = root / pure
    if not os.path.lexists(candidate):
        raise fail(f"does not exist in {root}")
    real = Path(os.path.realpath(candidate))
    real_root = Path(os.path.realpath(root))
    if real != real_root and real_root not in real.parents:
        raise fail(f"points outside the project folder (to {real})")
    return candidate


def check_tree(root: Path, refs: Iterable[AnyRef]) -> None:
    """Refuse what :func:`scan` would refuse under ``refs`` (a symlink leading outside, a device,
    socket or pipe), without reading a file: the pre-flight check of a deploy, whose prepare
    reads these paths only after the build."""
    for _ in _walk(root, refs):
        pass


def scan(root: Path, refs: Iterable[AnyRef], cache: StatCache) -> list[Entry]:
    """Every entry under the addToRunPrepare paths, sorted, with content hashes."""
    entries: dict[str, Entry] = {}
    for path, rel, st in _walk(root, refs):  # only files, folders and links come out of it
        kind = st.st_mode & _IFMT
        if kind == _IFREG:
            entries[rel] = Entry(rel, "file", stat.S_IMODE(st.st_mode), cache.file_digest(path, rel, st))
        elif kind == _IFDIR:
            entries[rel] = Entry(rel, "dir", stat.S_IMODE(st.st_mode), "")
        else:
            entries[rel] = Entry(rel, "link", 0o777, os.readlink(path))
    return [entries[k] for k in sorted(entries)]


def stat_signature(root: Path, refs: Iterable[AnyRef]) -> str:
    """A digest of what ``lstat`` says about every entry under ``refs``, without reading a file.

    Equal to :func:`recorded_signature` of an earlier :func:`scan` exactly when no entry was added,
    removed or changed type, mode, link target, size, mtime, inode or device since: then every
    file still has the content that scan hashed. This is the whole cost of a cache hit on a big
    tree (see :mod:`cri_tasks.hitindex`), so it formats one line per entry and nothing more."""
    lines: dict[str, str] = {}  # by rel: refs may overlap
    for path, rel, st in _walk(root, refs):
        mode = st.st_mode
        if mode & _IFMT == _IFREG:
            lines[rel] = f"{rel}\0{mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}"
        elif mode & _IFMT == _IFDIR:
            lines[rel] = f"{rel}\0{mode}"
        else:
            lines[rel] = f"{rel}\0{mode}\0{os.readlink(path)}"
    return _lines_digest(list(lines.values()))


def recorded_signature(entries: Iterable[Entry], stats: Mapping[str, list[Any]]) -> str | None:
    """The :func:`stat_signature` the tree had when ``scan`` hashed it (``stats``: its StatCache
    data); None when a file's stat is missing."""
    lines = []
    for e in entries:
        if e.kind == "file":
            st = stats.get(e.rel)
            if st is None or len(st) < 4:
                return None
            lines.append(f"{e.rel}\0{_IFREG | e.mode}\0{st[0]}\0{st[1]}\0{st[2]}\0{st[3]}")
        elif e.kind == "dir":
            lines.append(f"{e.rel}\0{_IFDIR | e.mode}")
        else:
            lines.append(f"{e.rel}\0{_IFLNK | 0o777}\0{e.content}")
    return _lines_digest(lines)


def _lines_digest(lines: list[str]) -> str:
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _walk(root: Path, refs: Iterable[AnyRef]) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, posix path relative to root, lstat) of every entry under ``refs``; a symlink that
    leads outside the project or a device, socket or pipe is a ConfigError naming the ref."""
    # Plain strings and os.scandir, folders on a stack, files handled where they are found:
    # this walk is the cost of a cache hit on a large tree.
    real_root = os.path.realpath(root)
    inside = real_root.rstrip(os.sep) + os.sep

    def check(path: str, rel: str, mode: int, ref: AnyRef) -> None:
        if mode & _IFMT == _IFLNK:
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(inside):
                message = f"{rel!r} is a symlink pointing outside the project folder (to {real})"
                raise ConfigError([Problem(message, path=ref.path, location=ref.location)])
        elif mode & _IFMT != _IFREG:
            message = f"{rel!r} is not a regular file, folder or symlink (device, socket or pipe)"
            raise ConfigError([Problem(message, path=ref.path, location=ref.location)])

    for ref in refs:
        start = check_inside(root, ref)
        path, rel = os.fspath(start), start.relative_to(root).as_posix()
        st = os.lstat(path)
        if st.st_mode & _IFMT != _IFDIR:
            check(path, rel, st.st_mode, ref)
            yield path, rel, st
            continue
        yield path, rel, st
        folders = [(path, rel)]
        while folders:
            folder, folder_rel = folders.pop()
            with os.scandir(folder) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    rel = f"{folder_rel}/{e.name}"
                    if st.st_mode & _IFMT == _IFDIR:
                        folders.append((e.path, rel))
                    elif st.st_mode & _IFMT != _IFREG:
                        check(e.path, rel, st.st_mode, ref)
                    yield e.path, rel, st


def compute(inputs: Mapping[str, Any]) -> str:
    """The fingerprint of a prepare's inputs (see :func:`cri_tasks.prepare.inputs_for`)."""
    return digest({"v": FINGERPRINT_VERSION, **inputs})
