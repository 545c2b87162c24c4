"""Records of prepared images, kept with diskcache in the project's cache folder.

Only JSON text is stored (diskcache unpickles what it finds, CVE-2025-69872 / GHSA-w8v5-vhqr-4h9v,
grantjenks/python-diskcache#357): :class:`JsonDisk` refuses to write or read a pickle. The folder is
owner-only (0700), nothing is evicted (``eviction_policy="none"``), and a database that cannot be
opened is moved aside with a warning and started again rather than failing every run.

A full disk is not a broken database: diskcache writes its settings whenever it opens one, so
on a full disk opening fails although every record is intact. The store then reads the file
through a read-only SQLite connection (reads, ``status``, keep working). For the writes that
must work on a full disk (``stop``, ``clean``) the folder keeps a reserve file of
:data:`RESERVE_BYTES`, given up for the write and made again once there is room; the WAL is
checkpointed after every commit so that it stays well inside the reserve. A write that still
cannot be made is a :class:`CriError` naming the folder; nothing is moved aside or lost.

The keys and the records under them (``setup/<setup>``, ``image/<setup>/<fingerprint>``,
``deploy/<setup>``, ``swarm/...``, ``stat/...``, ``log/<setup>/<phase>``, ``meta/...``) are
:mod:`cri_tasks.records`'; this module only keeps JSON objects. Writing or deleting a ``setup/``
record drops the cache-hit index (:mod:`cri_tasks.hitindex`).

One store is opened per API call (:class:`cri_tasks.workspace.Workspace`). diskcache keeps one
SQLite connection per thread and ``close`` closes the calling thread's only, and the read-only
connection of a full disk belongs to the thread that opened it: a store is used by the thread
that opened it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE

from . import hitindex
from .errors import CriError
from .paths import cache_folder, private_dir, writing
from .records import SCHEMA_KEY, is_setup_key

#: the layout of the records; a database with another number is moved aside, never misread
SCHEMA = 1
#: room kept in the records folder for the writes a full disk must not stop (see above)
RESERVE = "reserve"
RESERVE_BYTES = 128 * 1024
# wal_autocheckpoint=1: the WAL is copied back after each commit and then reused from its start,
# so a run of writes (clean forgets many records) needs one transaction's room, not one per write.
_SETTINGS: dict[str, Any] = dict(eviction_policy="none", statistics=0, timeout=60, sqlite_wal_autocheckpoint=1)


class _Unusable(Exception):
    pass


class JsonDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk that only ever holds str/bytes/int/float, never a pickle."""

    def put(self, key: Any) -> Any:
        if type(key) is not str:
            raise TypeError(f"cache keys must be str, got {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise CriError("the cache database holds a pickled key; refusing to load it")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) not in (str, bytes, int, float):
            raise TypeError(f"cache values must be JSON text, got {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise CriError("the cache database holds a pickled value; refusing to load it")
        return super().fetch(mode, filename, value, read)


class Store:
    """JSON records in ``<cache_dir>/records``; use as a context manager."""

    def __init__(self, cache_dir: Path) -> None:
        with writing("the cache folder", cache_dir):
            self.cache_dir = cache_folder(cache_dir)
        self.directory = self.cache_dir / "records"
        # Set when the database cannot be opened for writing (a full disk): reads go through
        # ``_reader`` (None: no database yet, so no records) and writes fail cleanly.
        self._unwritable: OSError | sqlite3.OperationalError | None = None
        self._reader: sqlite3.Connection | None = None
        self._released = False  # the reserve was given up for a write (see _settle)
        self._cache: diskcache.Cache | None = self._open()

    def _open(self) -> diskcache.Cache | None:
        try:
            cache = _new_cache(private_dir(self.directory))
            try:
                found = cache.get(SCHEMA_KEY)  # touches the tables: a corrupt file fails here
                if found is None and len(cache) == 0:
                    hitindex.forget(self.cache_dir)  # a new database: nothing the index says holds
                    cache.set(SCHEMA_KEY, str(SCHEMA))
                elif found != str(SCHEMA):
                    raise _Unusable(
                        f"it was written by another version of cri-tasks (records schema {found}, this one reads {SCHEMA})"
                    )
            except BaseException:
                cache.close()
                raise
            return cache
        except (sqlite3.OperationalError, OSError) as exc:
            if self._read_only(exc):
                return None
            return self._start_again(exc)
        except (sqlite3.DatabaseError, CriError, _Unusable) as exc:
            return self._start_again(exc)

    def _read_only(self, exc: OSError | sqlite3.OperationalError) -> bool:
        """After a failed open: when the database is intact (a full disk, not a broken file),
        keep it for reading only and return True."""
        db = self.directory / diskcache.core.DBNAME
        if not db.exists():
            if not _disk_full(exc):
                return False
            self._unwritable = exc  # no records yet, and no room to start them
            return True
        try:
            reader = _connect_read_only(db)
        except sqlite3.OperationalError as err:
            if _disk_full(exc):  # cannot even be read on this disk: keep it, say so
                raise CriError(f"cannot open the records in {self.directory}: {_why(exc)} ({err})") from None
            return False
        except sqlite3.DatabaseError:
            return False  # broken: moved aside as before
        try:
            row = reader.execute("SELECT value FROM Cache WHERE key = ? AND raw = 1", (SCHEMA_KEY,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None or row[0] != str(SCHEMA):
            reader.close()
            return False
        self._reader, self._unwritable = reader, exc
        return True

    def _start_again(self, exc: Exception) -> diskcache.Cache:
        aside = self.directory.with_name(f"records.old-{int(time.time() * 1000)}")
        try:
            self.directory.rename(aside)
        except OSError as err:
            raise CriError(
                f"the cache database in {self.directory} could not be used ({exc}) "
                f"and could not be moved aside ({err.strerror or err})"
            ) from None
        print(
            f"warning: the cache database in {self.directory} could not be used ({exc}); "
            f"moved it to {aside} and started a new one (images are rebuilt or found again)",
            file=sys.stderr,
        )
        hitindex.forget(self.cache_dir)
        try:
            cache = _new_cache(private_dir(self.directory))
            cache.set(SCHEMA_KEY, str(SCHEMA))
        except (sqlite3.OperationalError, OSError) as err:
            raise CriError(f"cannot create the records database in {self.directory}: {err}") from None
        return cache

    def _writer(self, key: str, verb: str) -> diskcache.Cache:
        if self._cache is None and self._reader is not None and self._release_reserve():
            try:
                self._cache = _new_cache(self.directory)
            except (sqlite3.OperationalError, OSError) as exc:
                self._unwritable = exc
            else:
                self._reader.close()  # the writer reads too; a reader left open would keep the WAL
                self._reader = None
        if self._cache is None:
            assert self._unwritable is not None
            raise CriError(
                f"cannot {verb} the record {key} in {self.directory}: {_why(self._unwritable)}; "
                "the records already there are unchanged (free some space and run it again)"
            )
        return self._cache

    def _release_reserve(self) -> bool:
        """Give up the reserve file for a write the full disk refused; False when it is gone."""
        try:
            os.unlink(self.directory / RESERVE)
        except OSError:
            return False
        self._released = True
        return True

    def _keep_reserve(self) -> None:
        """Make the reserve file again when it is missing and there is room (best effort)."""
        path = self.directory / RESERVE
        if os.path.exists(path):
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            else:  # real blocks either way: a sparse file would reserve nothing
                os.write(fd, b"\0" * RESERVE_BYTES)
        except OSError:
            os.unlink(path)  # no room yet: next time
        finally:
            os.close(fd)

    def _raw(self, key: str) -> Any:
        self.settle()
        if self._cache is not None:
            return self._cache.get(key)
        if self._reader is None:
            return None
        row = self._reader.execute(
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
        ).fetchone()
        if row is None:
            return None
        # the same Disk decodes it, so a pickle is refused here too
        return JsonDisk(str(self.directory)).fetch(row[0], row[1], row[2], False)

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._raw(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Write one record atomically (a failed write leaves the previous value)."""
        text = json.dumps(value, sort_keys=True)
        self._write(key, "write", lambda cache: cache.set(key, text, retry=True))
        self._changed(key)

    def delete(self, key: str) -> bool:
        deleted = bool(self._write(key, "remove", lambda cache: cache.delete(key, retry=True)))
        self._changed(key)
        return deleted

    def _write(self, key: str, verb: str, change: Callable[[diskcache.Cache], Any]) -> Any:
        """One atomic change; on a full disk the reserve is given up and it is tried once more."""
        self.settle()
        cache = self._writer(key, verb)
        try:
            return change(cache)
        except (sqlite3.OperationalError, OSError) as exc:
            if _disk_full(exc) and self._release_reserve():
                try:
                    return change(cache)
                except (sqlite3.OperationalError, OSError) as again:
                    exc = again
            raise CriError(
                f"cannot {verb} the record {key} in {self.directory}: {_why(exc)}; "
                "the records already there are unchanged (free some space and run it again)"
            ) from None

    def settle(self) -> None:
        """After a write that gave up the reserve (else nothing): close the database (its WAL
        goes, and its room with it), make the reserve again and open the database anew,
        read-only when the disk is still full.

        A store lives for a whole call (one per Workspace), where it used to be closed after
        each step, making the reserve again each time. So that the room the reserve kept is
        not left free for what the call writes next (a build context would fill it, and the
        next write of a record would find no reserve), the next use of the store, and the
        workspace before it makes a folder or a log in the cache, call this first: the close
        and reopen a store closed after each step made."""
        if not self._released:
            return
        self._released = False
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._keep_reserve()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._unwritable = None
        self._cache = self._open()

    def _changed(self, key: str) -> None:
        """The cache-hit index is derived from the setup records: drop it when one changes."""
        if is_setup_key(key):
            hitindex.forget(self.cache_dir)

    def identity(self) -> tuple[str, list[int]]:
        """The database file and which file it is (inode, device): the cache-hit index notices
        when the records were removed or replaced behind it."""
        path = os.path.join(self.directory, diskcache.core.DBNAME)
        return path, hitindex.file_identity(path)

    def keys(self, prefix: str = "") -> list[str]:
        self.settle()
        if self._cache is not None:
            found: list[Any] = list(self._cache.iterkeys())
        elif self._reader is not None:
            found = [row[0] for row in self._reader.execute("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid")]
        else:
            found = []
        return [k for k in found if isinstance(k, str) and k.startswith(prefix)]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._cache is not None:
            self._cache.close()
            self._keep_reserve()  # after close: the WAL is gone, its room is free again

    def __enter__(self) -> Store:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _new_cache(directory: Path) -> diskcache.Cache:
    """Open the records with diskcache. Its constructor writes (its settings) and, when that
    fails, keeps the SQLite connection it opened; closed here, so that a full disk leaves no
    open handle on the WAL behind (it would keep the WAL, and its room, after we are done)."""
    cache = diskcache.Cache.__new__(diskcache.Cache)
    try:
        cache.__init__(str(directory), **dict(_SETTINGS, disk=JsonDisk))
    except BaseException:
        if hasattr(cache, "_local"):  # it got as far as opening a connection
            cache.close()
        raise
    return cache


def _connect_read_only(db: Path) -> sqlite3.Connection:
    """A connection that never writes. A WAL database may still want to create its shared-memory
    file, which a full disk refuses: then open it as immutable (nobody can write it either)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(db))}?mode=ro"
    for suffix in ("", "&immutable=1"):
        conn = sqlite3.connect(uri + suffix, uri=True)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if suffix:
                raise
    raise AssertionError("unreachable")


def _disk_full(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "full" in str(exc) or "disk I/O" in str(exc)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if "disk I/O" in str(exc):  # what SQLite says when the disk is full under its shared memory
        return f"no space left on device ({exc})"
    return str(exc)
