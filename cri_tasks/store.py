"""Records of prepared images, kept with diskcache in the project's cache folder.

Only JSON text is stored (diskcache unpickles what it finds, CVE-2025-69872 / GHSA-w8v5-vhqr-4h9v,
grantjenks/python-diskcache#357): :class:`JsonDisk` refuses to write or read a pickle. The folder is
owner-only (0700), nothing is evicted (``eviction_policy="none"``), and a database that cannot be
opened is moved aside with a warning and started again rather than failing every run.

Keys: ``image/<fingerprint>`` (a built image), ``setup/<name>`` (the last good prepare of a setup),
``stat/<name>`` (the stat cache of its addToRunPrepare files), ``log/<name>/<phase>`` (last log).
Writing or deleting a ``setup/`` record drops the cache-hit index (:mod:`cri_tasks.hitindex`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE

from . import hitindex
from .errors import CriError
from .paths import cache_folder, private_dir


#: the layout of the records; a database with another number is moved aside, never misread
SCHEMA = 1
SCHEMA_KEY = "meta/schema"


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
        self.cache_dir = cache_folder(cache_dir)
        self.directory = self.cache_dir / "records"
        self._cache = self._open()

    def _open(self) -> diskcache.Cache:
        settings = dict(disk=JsonDisk, eviction_policy="none", statistics=0, timeout=60)
        try:
            cache = diskcache.Cache(str(private_dir(self.directory)), **settings)
            found = cache.get(SCHEMA_KEY)  # touches the tables: a corrupt file fails here
            if found is None and len(cache) == 0:
                hitindex.forget(self.cache_dir)  # a new database: nothing the index says holds
                cache.set(SCHEMA_KEY, str(SCHEMA))
            elif found != str(SCHEMA):
                cache.close()
                raise _Unusable(f"it was written by another version of cri-tasks (records schema {found}, this one reads {SCHEMA})")
            return cache
        except (sqlite3.DatabaseError, CriError, _Unusable) as exc:
            aside = self.directory.with_name(f"records.old-{int(time.time() * 1000)}")
            self.directory.rename(aside)
            print(
                f"warning: the cache database in {self.directory} could not be used ({exc}); "
                f"moved it to {aside} and started a new one (images are rebuilt or found again)",
                file=sys.stderr,
            )
            hitindex.forget(self.cache_dir)
            cache = diskcache.Cache(str(private_dir(self.directory)), **settings)
            cache.set(SCHEMA_KEY, str(SCHEMA))
            return cache

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._cache.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Write one record atomically (a failed write leaves the previous value)."""
        try:
            self._cache.set(key, json.dumps(value, sort_keys=True), retry=True)
        except (sqlite3.OperationalError, OSError) as exc:
            raise CriError(f"cannot write the record {key} in {self.directory}: {exc}") from None
        self._changed(key)

    def delete(self, key: str) -> bool:
        deleted = bool(self._cache.delete(key, retry=True))
        self._changed(key)
        return deleted

    def _changed(self, key: str) -> None:
        """The cache-hit index is derived from the setup records: drop it when one changes."""
        if key.startswith("setup/"):
            hitindex.forget(self.cache_dir)

    def identity(self) -> tuple[str, list[int]]:
        """The database file and which file it is (inode, device): the cache-hit index notices
        when the records were removed or replaced behind it."""
        path = os.path.join(self._cache.directory, diskcache.core.DBNAME)
        return path, hitindex.file_identity(path)

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(prefix)]

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
