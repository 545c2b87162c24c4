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
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, NamedTuple

from .errors import ConfigError, Problem
from .model import PathRef

FINGERPRINT_VERSION = 1
_CHUNK = 1 << 20


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


class StatCache:
    """rel path -> [size, mtime_ns, ino, dev, sha256], loaded and saved as one JSON record."""

    def __init__(self, data: Mapping[str, list[Any]] | None = None) -> None:
        self.data: dict[str, list[Any]] = dict(data or {})
        self.changed = False
        self.seen: set[str] = set()

    def file_digest(self, path: str | Path, rel: str, st: os.stat_result) -> str:
        key = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]
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


def check_inside(root: Path, ref: PathRef, *, field: str = "build.addToRunPrepare") -> Path:
    """The real path of ``ref`` if it stays inside ``root``; otherwise a ConfigError naming it."""
    raw = ref.value.strip()
    pure = PurePosixPath(raw)

    def fail(why: str) -> ConfigError:
        return ConfigError([Problem(f"{raw!r} {why}", path=ref.path, location=ref.location)])

    if not raw:
        raise fail("is empty")
    if pure.is_absolute() or raw.startswith("~"):
        raise fail("is absolute; paths are relative to the project folder")
    if ".." in pure.parts:
        raise fail("leaves the project folder ('..')")
    candidate = root / pure
    if not os.path.lexists(candidate):
        raise fail(f"does not exist in {root}")
    real = Path(os.path.realpath(candidate))
    real_root = Path(os.path.realpath(root))
    if real != real_root and real_root not in real.parents:
        raise fail(f"points outside the project folder (to {real})")
    return candidate


def scan(root: Path, refs: Iterable[PathRef], cache: StatCache) -> list[Entry]:
    """Every entry under the addToRunPrepare paths, sorted, with content hashes."""
    entries: dict[str, Entry] = {}
    real_root = os.path.realpath(root)
    for ref in refs:
        start = check_inside(root, ref)
        _scan_one(os.fspath(start), start.relative_to(root).as_posix(), real_root, ref, cache, entries)
    return [entries[k] for k in sorted(entries)]


def _scan_one(start: str, start_rel: str, real_root: str, ref: PathRef, cache: StatCache, out: dict[str, Entry]) -> None:
    # Plain strings and os.scandir: this walk is the cost of a cache hit on a large tree.
    inside = real_root.rstrip(os.sep) + os.sep
    stack = [(start, start_rel, os.lstat(start))]
    while stack:
        path, rel, st = stack.pop()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(inside):
                message = f"{rel!r} is a symlink pointing outside the project folder (to {real})"
                raise ConfigError([Problem(message, path=ref.path, location=ref.location)])
            out[rel] = Entry(rel, "link", 0o777, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = Entry(rel, "dir", mode, "")
            with os.scandir(path) as it:
                for e in it:
                    stack.append((e.path, f"{rel}/{e.name}", e.stat(follow_symlinks=False)))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = Entry(rel, "file", mode, cache.file_digest(path, rel, st))
        else:
            message = f"{rel!r} is not a regular file, folder or symlink (device, socket or pipe)"
            raise ConfigError([Problem(message, path=ref.path, location=ref.location)])


def compute(inputs: Mapping[str, Any]) -> str:
    """The fingerprint of a prepare's inputs (see :func:`cri_tasks.prepare.inputs_for`)."""
    return digest({"v": FINGERPRINT_VERSION, **inputs})
