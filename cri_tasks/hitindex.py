"""The cache-hit index: answer "nothing changed" without loading zerops.yml.

A prepare that ends with every selected setup up to date or built leaves one entry in
``<cache_dir>/hits.json``, keyed by everything that decides the outcome before any file is
scanned: the zerops.yml bytes and path, the setup selection, the resolved ``cri`` settings, the
templates (name, size, mtime) and the cri-tasks version. The entry holds, per setup, what the
records already say: the addToRunPrepare paths and the stat signature their files had when they
were hashed (:func:`cri_tasks.fingerprint.recorded_signature`), the Gleam archive's stat, the
base image and the image with their ids.

:func:`lookup` re-checks all of it (one ``lstat`` walk of the paths, the archive's stat, one
question to the engine about the images) and returns the results only when every setup is
unchanged; anything else (a missing or unreadable index, a changed byte, a touched file, an image
id that moved) returns None and the full prepare runs, which hashes, builds and records as usual.

The diskcache records stay the truth; this file is a derived cache of them. Any write of a
setup's record (a build, an earlier image matched again, ``clean``) removes the file, under
``hits.lock``, and :func:`remember` writes an entry only while the records still say what it
says. Reading needs no lock: the file is replaced atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from . import fingerprint
from ._version import __version__
from .errors import CriError
from .paths import MAX_FILE_BYTES, folder_stamps, locate
from .records import prepared_fingerprint
from .results import PrepareResult, Reporter
from .settings import Settings

INDEX = "hits.json"
LOCK = "hits.lock"
VERSION = 1
MAX_ENTRIES = 16  # selections kept (all setups, --setup a, --setup b, ...)


class Key(NamedTuple):
    """What a prepare call is asked, reduced to one digest."""

    file: Path
    data: bytes  # the zerops.yml bytes the key was made from: the full path parses these
    cache_dir: Path
    digest: str

    @classmethod
    def of(cls, file: str | Path | None, settings: Settings, setup: str | None) -> Key | None:
        """The key of this call; None when the file cannot be read (the full path words that)."""
        try:
            real, _shown = locate(file if file is not None else settings.file, None)
            real = real.absolute()
            with open(real, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                return None
            gleam = settings.gleam_archive(real.parent)
            material = {
                "v": VERSION,
                "file": str(real),
                "sha256": hashlib.sha256(data).hexdigest(),
                "setup": setup,
                "settings": _plain(settings._asdict()),
                "gleam archive": None if gleam is None else str(gleam),  # "~" resolved now
                "code": _code_stamp(),
            }
            digest = fingerprint.digest(material)
        except (CriError, OSError, TypeError, ValueError):  # the full path reports it
            return None
        return cls(real, data, settings.cache_path(real.parent), digest)


def _code_stamp() -> str:
    """What stands for the code that shapes a fingerprint: the version, the fingerprint format,
    and each module's and template's name, size and mtime (an upgrade or an edit of an editable
    install rewrites them), without reading them."""
    from .dockerfile import templates_stamp

    here = os.path.dirname(os.path.abspath(__file__))
    return "\n".join(
        [
            f"cri-tasks {__version__}",
            f"fingerprint {fingerprint.FINGERPRINT_VERSION}",
            templates_stamp(),
            *folder_stamps(here, (".py",)),
        ]
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    fd = os.open(cache_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def forget(cache_dir: Path) -> None:
    """Drop the index (a setup's record changed, or a records database was started). Called by
    the record store; an index that cannot be removed is an error, never left behind silently."""
    try:
        with _locked(cache_dir):  # even when there is no index: a remember() may be writing one
            try:
                os.unlink(cache_dir / INDEX)
            except FileNotFoundError:
                pass
    except OSError as exc:
        from .errors import CriError

        raise CriError(
            f"cannot remove the cache-hit index {cache_dir / INDEX} ({exc.strerror or exc}); remove it by hand"
        ) from None


def remember(key: Key, setups: Sequence[dict[str, Any]], records: Any) -> bool:
    """Write ``key`` -> ``setups`` while ``records`` (a Store: ``get`` and ``identity``) still
    names each setup's fingerprint as its current image (:func:`cri_tasks.records.prepared_fingerprint`). Best effort: returns whether it was
    written (a full disk only costs the next call its shortcut)."""
    tmp = key.cache_dir / f".{INDEX}.{os.getpid()}"
    try:
        with _locked(key.cache_dir):
            for s in setups:
                if prepared_fingerprint(records, s["name"]) != s["fingerprint"]:
                    return False
            path, identity = records.identity()
            entries = _read(key.cache_dir)
            entries.pop(key.digest, None)
            entries[key.digest] = {
                "file": str(key.file),
                "records": {"path": path, "id": identity},
                "setups": list(setups),
            }
            while len(entries) > MAX_ENTRIES:
                entries.pop(next(iter(entries)))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"v": VERSION, "entries": entries}, f, separators=(",", ":"))
            os.replace(tmp, key.cache_dir / INDEX)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def _read(cache_dir: Path) -> dict[str, Any]:
    try:
        with open(cache_dir / INDEX, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("v") != VERSION or not isinstance(doc.get("entries"), dict):
        return {}
    entries: dict[str, Any] = doc["entries"]
    return entries


def lookup(key: Key, report: Reporter) -> list[PrepareResult] | None:
    """The results of an unchanged prepare, or None when the full prepare must run."""
    entry = _read(key.cache_dir).get(key.digest)
    if not isinstance(entry, dict):
        return None
    try:
        records = entry["records"]
        if file_identity(records["path"]) != records["id"]:
            return None  # the records database was removed or replaced since
        setups = entry["setups"]
        for s in setups:
            if not _files_unchanged(s) or not _gleam_unchanged(s):
                return None
        from . import engine

        refs = [r for s in setups for r in (s["base"]["ref"], s["tag"])]
        ids = engine.image_ids(list(dict.fromkeys(refs)))
        for s in setups:
            if ids.get(s["base"]["ref"]) != s["base"]["id"] or ids.get(s["tag"]) != s["image_id"]:
                return None
        results = [
            PrepareResult(s["name"], "up to date", s["tag"], s["image_id"], s["fingerprint"], True, 0.0, s["log"])
            for s in setups
        ]
    except (KeyError, TypeError, ValueError, AttributeError, OSError, CriError):
        # An entry this version cannot read, a file gone, a path that now leaves the project,
        # an engine that does not answer: the full path words it.
        return None
    for r in results:
        report(f"[{r.setup}] up to date ({r.image})")
    return results


def _files_unchanged(s: dict[str, Any]) -> bool:
    refs = [fingerprint.Ref(v) for v in s["refs"]]
    return bool(fingerprint.stat_signature(Path(s["root"]), refs) == s["files"])


def file_identity(path: str) -> list[int]:
    """Which file ``path`` is: its inode and device."""
    st = os.stat(path)
    return [st.st_ino, st.st_dev]


def _gleam_unchanged(s: dict[str, Any]) -> bool:
    gleam = s["gleam"]
    if gleam is None:
        return True
    return bool(fingerprint.stat_key(os.stat(gleam["path"])) == gleam["stat"])
