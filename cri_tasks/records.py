"""What the records database holds, and the one place its keys are spelled.

Every record is one JSON object under one key of :class:`cri_tasks.store.Store`:

==============================  ===========================================================
``meta/schema``                 the layout number (:data:`cri_tasks.store.SCHEMA`)
``meta/project``                which project the records belong to (:class:`ProjectOwner`)
``setup/<setup>``               the last good prepare of a setup (:class:`PreparedSetup`)
``image/<setup>/<fingerprint>`` a built runtime image (:class:`ImageRecord`)
``deploy/<setup>``              the versions of a setup (:class:`DeployHistory`)
``swarm/<setup>``               the registry digest of each kept version (Swarm target)
``swarm/ports/<cluster>``       how published ports work on one swarm (Swarm target)
``stat/<setup>``                the stat cache of a setup's addToRunPrepare files
``stat/gleam-archive``          the stat cache of the local Gleam archive
``log/<setup>/<phase>``         the last log of a phase (:class:`LogRecord`)
==============================  ===========================================================

Caches on disk hold these keys and shapes: a record type writes exactly the fields the code
before it wrote, and reads what older versions wrote (a missing optional field gets its
default). Changing a key or a shape means a new :data:`cri_tasks.store.SCHEMA`.

This module imports nothing heavy: the cache-hit index reads through it on the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

SCHEMA_KEY = "meta/schema"
PROJECT_KEY = "meta/project"
SETUP_PREFIX = "setup/"
GLEAM_ARCHIVE_STAT = "stat/gleam-archive"


class Readable(Protocol):
    """What reading a record needs: the store, or a stand-in for it in a test."""

    def get(self, key: str) -> dict[str, Any] | None: ...


class Writable(Readable, Protocol):
    """What writing records needs: :class:`cri_tasks.store.Store` (which imports this module for
    its keys, so it is named by what it does, not imported)."""

    def set(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> bool: ...

    def keys(self, prefix: str = "") -> list[str]: ...


def now() -> str:
    """The time a record is written, as records spell it (UTC, seconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# keys


def setup_key(setup: str) -> str:
    return f"{SETUP_PREFIX}{setup}"


def is_setup_key(key: str) -> bool:
    """A setup record: writing or removing one drops the cache-hit index."""
    return key.startswith(SETUP_PREFIX)


def image_key(setup: str, fingerprint: str) -> str:
    return f"{image_prefix(setup)}{fingerprint}"


def image_prefix(setup: str) -> str:
    """The prefix of every image record of ``setup`` (``clean`` forgets them all)."""
    return f"image/{setup}/"


def deploy_key(setup: str) -> str:
    return f"deploy/{setup}"


def swarm_key(setup: str) -> str:
    return f"swarm/{setup}"


def swarm_ports_key(cluster: str) -> str:
    return f"swarm/ports/{cluster}"


def stat_key(setup: str) -> str:
    return f"stat/{setup}"


def log_key(setup: str, phase: str) -> str:
    return f"log/{setup}/{phase}"


# --------------------------------------------------------------------------------------------
# record types


@dataclass(frozen=True)
class PreparedSetup:
    """``setup/<setup>``: the image a setup's last good prepare made or found, and its inputs
    (what ``prepare --explain`` compares with)."""

    fingerprint: str
    tag: str
    image_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    time: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "tag": self.tag,
            "image_id": self.image_id,
            "inputs": self.inputs,
            "time": self.time,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedSetup:
        return cls(data["fingerprint"], data["tag"], data["image_id"], data.get("inputs") or {}, data.get("time", ""))


@dataclass(frozen=True)
class ImageRecord:
    """``image/<setup>/<fingerprint>``: one built runtime image."""

    tag: str
    image_id: str
    setup: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: str | None = None
    time: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "image_id": self.image_id,
            "setup": self.setup,
            "inputs": self.inputs,
            "seconds": self.seconds,
            "log": self.log,
            "time": self.time,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(
            data["tag"],
            data["image_id"],
            data.get("setup", ""),
            data.get("inputs") or {},
            data.get("seconds", 0.0),
            data.get("log"),
            data.get("time", ""),
        )


@dataclass(frozen=True)
class LogRecord:
    """``log/<setup>/<phase>``: the last log of a phase and whether that run succeeded."""

    path: str
    time: str
    ok: bool

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "time": self.time, "ok": self.ok}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogRecord:
        return cls(data["path"], data.get("time", ""), bool(data.get("ok", True)))


@dataclass(frozen=True)
class VersionRecord:
    """One kept version of a setup, as its deploy record lists it."""

    number: int
    image: str
    image_id: str
    runtime_image: str
    time: str = ""
    adopted: bool = False  # found on the engine by its labels, not recorded by its deploy
    run: dict[str, Any] | None = None  # the run configuration it was deployed with

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.number,
            "image": self.image,
            "image_id": self.image_id,
            "runtime_image": self.runtime_image,
            "time": self.time,
        }
        if self.adopted:
            out["adopted"] = True
        if self.run is not None:
            out["run"] = self.run
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionRecord:
        return cls(
            data["version"],
            data["image"],
            data["image_id"],
            data["runtime_image"],
            data.get("time", ""),
            bool(data.get("adopted")),
            data.get("run"),
        )


@dataclass(frozen=True)
class DeployHistory:
    """``deploy/<setup>``: the kept versions, the active one, and the next number to use."""

    next: int = 1
    versions: tuple[VersionRecord, ...] = ()
    active: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"next": self.next, "versions": [v.as_json() for v in self.versions], "active": self.active}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeployHistory:
        return cls(
            int(data.get("next", 1)),
            tuple(VersionRecord.from_json(v) for v in data.get("versions", [])),
            data.get("active"),
        )


@dataclass(frozen=True)
class ProjectOwner:
    """``meta/project``: the project whose deploy records these are (a cache folder shared by
    two projects is refused)."""

    id: str
    root: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "root": self.root}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectOwner:
        return cls(str(data.get("id", "")), str(data.get("root", "")))


# --------------------------------------------------------------------------------------------
# reading and writing


def prepared_setup(store: Readable, setup: str) -> PreparedSetup | None:
    data = store.get(setup_key(setup))
    return PreparedSetup.from_json(data) if data else None


def prepared_fingerprint(store: Readable, setup: str) -> str | None:
    """The fingerprint of the setup's current image (all the cache-hit index asks)."""
    data = store.get(setup_key(setup))
    return data.get("fingerprint") if data else None


def set_prepared_setup(store: Writable, setup: str, record: PreparedSetup) -> None:
    store.set(setup_key(setup), record.as_json())


def forget_setup(store: Writable, setup: str) -> int:
    """Forget the setup's prepare (its record and every image record); returns how many image
    records went."""
    keys = store.keys(image_prefix(setup))
    for k in keys:
        store.delete(k)
    store.delete(setup_key(setup))
    return len(keys)


def images_of(store: Writable, setup: str) -> list[ImageRecord]:
    """Every image record of ``setup``."""
    return [ImageRecord.from_json(data) for k in store.keys(image_prefix(setup)) if (data := store.get(k))]


def image(store: Readable, setup: str, fingerprint: str) -> ImageRecord | None:
    data = store.get(image_key(setup, fingerprint))
    return ImageRecord.from_json(data) if data else None


def set_image(store: Writable, setup: str, fingerprint: str, record: ImageRecord) -> None:
    store.set(image_key(setup, fingerprint), record.as_json())


def last_log(store: Readable, setup: str, phase: str) -> LogRecord | None:
    data = store.get(log_key(setup, phase))
    return LogRecord.from_json(data) if data else None


def set_last_log(store: Writable, setup: str, phase: str, path: str, *, ok: bool) -> None:
    store.set(log_key(setup, phase), LogRecord(path, now(), ok).as_json())


def deploy_history(store: Readable, setup: str) -> DeployHistory | None:
    """The setup's deploy record; None when there is none (never deployed, or records lost)."""
    data = store.get(deploy_key(setup))
    return DeployHistory.from_json(data) if data else None


def set_deploy_history(store: Writable, setup: str, history: DeployHistory) -> None:
    store.set(deploy_key(setup), history.as_json())


def project_owner(store: Readable) -> ProjectOwner | None:
    data = store.get(PROJECT_KEY)
    return ProjectOwner.from_json(data) if data else None


def set_project_owner(store: Writable, owner: ProjectOwner) -> None:
    store.set(PROJECT_KEY, owner.as_json())


def stat_cache(store: Readable, setup: str) -> dict[str, Any] | None:
    """The stat cache of the setup's addToRunPrepare files (see :class:`cri_tasks.fingerprint.StatCache`)."""
    return store.get(stat_key(setup))


def set_stat_cache(store: Writable, setup: str, data: dict[str, Any]) -> None:
    store.set(stat_key(setup), data)


def gleam_archive_stats(store: Readable) -> dict[str, Any] | None:
    return store.get(GLEAM_ARCHIVE_STAT)


def set_gleam_archive_stats(store: Writable, data: dict[str, Any]) -> None:
    store.set(GLEAM_ARCHIVE_STAT, data)


def swarm_digests(store: Readable, setup: str) -> dict[str, str]:
    """The registry digest of each kept version of ``setup`` (by version number as text)."""
    data = store.get(swarm_key(setup)) or {}
    return dict(data.get("digests") or {})


def set_swarm_digests(store: Writable, setup: str, digests: dict[str, str]) -> None:
    store.set(swarm_key(setup), {"digests": digests})


def swarm_ports(store: Readable, cluster: str) -> dict[str, Any] | None:
    """What ``swarm.ports: auto`` found out about one swarm: ``mode``, ``reason``, ``time``."""
    return store.get(swarm_ports_key(cluster))


def set_swarm_ports(store: Writable, cluster: str, mode: str, reason: str) -> None:
    store.set(swarm_ports_key(cluster), {"mode": mode, "reason": reason, "time": now()})
