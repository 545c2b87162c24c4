"""The workspace of one API call: the project, its settings, its cache folder and one records
store, opened by :mod:`cri_tasks.api` and handed down to the phases and the targets.

The cache folder is worked out once (``cri.cache_dir`` relative to the project) and the store
is opened once, on first use, and closed when the call ends: a call that never reads a record
(``logs``) creates no records database. Holding the store for the whole call changes nothing
on disk: every write is one atomic diskcache transaction, committed (and its WAL checkpointed)
before the call goes on, so a kill leaves what the separate opens left; another process sees
each write at once, as before. The one place that still opens its own store is a build in a
worker thread (:func:`cri_tasks.runtime_image.prepare`, see there).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .locks import locked
from .logfiles import new_log
from .paths import cache_folder

if TYPE_CHECKING:
    from .model import Project
    from .settings import Settings
    from .store import Store


def project_id(project: Project) -> str:
    """A short, stable name for the project on this engine: folder name + hash of its path."""
    root = project.root.resolve()
    name = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:20] or "project"
    return f"{name}-{hashlib.sha256(str(root).encode()).hexdigest()[:6]}"


class Workspace:
    """What every step of one call shares; use as a context manager (it closes the store)."""

    def __init__(self, project: Project, settings: Settings) -> None:
        self.project = project
        self.settings = settings
        self.cache_dir: Path = settings.cache_path(project.root)
        self.project_id = project_id(project)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The records, opened on first use and kept open until :meth:`close`."""
        if self._store is None:
            from .store import Store  # diskcache: only for calls that read records

            self._store = Store(self.cache_dir)
        return self._store

    def folder(self, *parts: str) -> Path:
        """A folder of the cache (created owner-only when missing): ``tmp``, ``build``, ..."""
        self._settle()
        return cache_folder(self.cache_dir, *parts)

    def lock(self, key: str, **options: Any) -> AbstractContextManager[None]:
        """The file lock ``<cache>/locks/<key>.lock``; ``options`` as :func:`cri_tasks.locks.locked`."""
        return locked(self.cache_dir, key, **options)

    def new_log(self, setup: str, phase: str) -> Path:
        """A new log file for ``phase`` of ``setup`` under ``<cache>/logs/<setup>/``."""
        self._settle()
        return new_log(self.cache_dir, setup, phase)

    def _settle(self) -> None:
        """Before writing into the cache folder: the reserve a record write gave up on a full
        disk is made again first (:meth:`cri_tasks.store.Store.settle`)."""
        if self._store is not None:
            self._store.settle()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextmanager
def opened(project: Project, settings: Settings, workspace: Workspace | None = None) -> Iterator[Workspace]:
    """``workspace`` when the caller has one (it stays open), else one for this step alone: the
    phases take an optional workspace so that they can still be called on their own."""
    if workspace is not None:
        yield workspace
        return
    with Workspace(project, settings) as ws:
        yield ws
