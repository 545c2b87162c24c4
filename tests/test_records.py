"""The records: one module spells the keys, every record type round-trips, and a database
written with the shapes caches already hold reads the same through the record types."""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cri_tasks import records
from cri_tasks import store as store_module
from cri_tasks.model import Project
from cri_tasks.settings import resolve
from cri_tasks.store import Store
from cri_tasks.workspace import Workspace, opened, project_id

PACKAGE = Path(store_module.__file__).resolve().parent
INPUTS = {"os": "ubuntu", "base": "gleam@1.5", "baseImage": {"ref": "ubuntu:24.04", "id": "sha256:" + "b" * 64}}
RUN = {"start": "./entrypoint.sh run", "ports": [{"port": 8000, "httpSupport": True}]}

# What the code before records.py wrote, key by key, exactly: caches on disk hold these.
WRITTEN_BEFORE: dict[str, dict[str, Any]] = {
    "meta/project": {"id": "app-3f2a1c", "root": "/srv/app"},
    "setup/app": {
        "fingerprint": "f" * 64,
        "tag": "cri/app-3f2a1c/app:ffffffffffff",
        "image_id": "sha256:" + "1" * 64,
        "inputs": INPUTS,
        "time": "2026-01-02T03:04:05Z",
    },
    "image/app/" + "f" * 64: {
        "tag": "cri/app-3f2a1c/app:ffffffffffff",
        "image_id": "sha256:" + "1" * 64,
        "setup": "app",
        "inputs": INPUTS,
        "seconds": 12.345,
        "log": "/srv/app/.cri/logs/app/prepare.log",
        "time": "2026-01-02T03:04:05Z",
    },
    "deploy/app": {
        "next": 4,
        "active": 3,
        "versions": [
            {
                "version": 2,
                "image": "cri/app-3f2a1c/app:v2",
                "image_id": "sha256:" + "2" * 64,
                "runtime_image": "cri/app-3f2a1c/app:ffffffffffff",
                "time": "2026-01-02T03:04:05Z",
                "adopted": True,
            },
            {
                "version": 3,
                "image": "cri/app-3f2a1c/app:v3",
                "image_id": "sha256:" + "3" * 64,
                "runtime_image": "cri/app-3f2a1c/app:ffffffffffff",
                "time": "2026-01-02T03:05:05Z",
                "run": RUN,
            },
        ],
    },
    "swarm/app": {"digests": {"2": "sha256:" + "a" * 64, "3": "sha256:" + "c" * 64}},
    "swarm/ports/cluster-1": {"mode": "mesh", "reason": "the routing mesh answered", "time": "2026-01-02T03:04:05Z"},
    "stat/app": {"gleam.toml": [10, 1, 2, 3, "d" * 64]},
    "stat/gleam-archive": {"/srv/gleam.tar.gz": [10, 1, 2, 3, "e" * 64]},
    "log/app/prepare": {"path": "/srv/app/.cri/logs/app/prepare.log", "time": "2026-01-02T03:04:05Z", "ok": True},
    "log/app/build": {"path": "/srv/app/.cri/logs/app/build.log", "time": "2026-01-02T03:04:05Z", "ok": False},
}


def test_the_keys_are_spelled_as_caches_hold_them() -> None:
    assert records.setup_key("app") == "setup/app"
    assert records.image_key("app", "f" * 64) == "image/app/" + "f" * 64
    assert records.image_prefix("app") == "image/app/"
    assert records.deploy_key("app") == "deploy/app"
    assert records.swarm_key("app") == "swarm/app"
    assert records.swarm_ports_key("cluster-1") == "swarm/ports/cluster-1"
    assert records.stat_key("app") == "stat/app"
    assert records.GLEAM_ARCHIVE_STAT == "stat/gleam-archive"
    assert records.log_key("app", "prepare") == "log/app/prepare"
    assert (records.PROJECT_KEY, records.SCHEMA_KEY) == ("meta/project", "meta/schema")
    assert records.is_setup_key("setup/app") and not records.is_setup_key("stat/app")
    assert store_module.SCHEMA == 1


@pytest.mark.parametrize(
    "record",
    [
        records.PreparedSetup("f" * 64, "cri/p/app:ffffffffffff", "sha256:1", INPUTS, "2026-01-02T03:04:05Z"),
        records.ImageRecord("cri/p/app:ffffffffffff", "sha256:1", "app", INPUTS, 1.5, "/x.log", "2026-01-02T03:04:05Z"),
        records.ImageRecord("cri/p/app:ffffffffffff", "sha256:1"),
        records.LogRecord("/x.log", "2026-01-02T03:04:05Z", False),
        records.VersionRecord(1, "cri/p/app:v1", "sha256:1", "cri/p/app:ffffffffffff", "t", adopted=True, run=RUN),
        records.VersionRecord(1, "cri/p/app:v1", "sha256:1", "cri/p/app:ffffffffffff"),
        records.DeployHistory(),
        records.DeployHistory(3, (records.VersionRecord(2, "i", "sha256:2", "r", "t"),), 2),
        records.ProjectOwner("app-3f2a1c", "/srv/app"),
    ],
    ids=lambda r: type(r).__name__,
)
def test_every_record_type_round_trips_through_json(record: Any) -> None:
    data = json.loads(json.dumps(record.as_json()))
    assert type(record).from_json(data) == record
    assert type(record).from_json(data).as_json() == record.as_json()


def test_record_types_are_frozen() -> None:
    rec = records.LogRecord("/x.log", "t", True)
    with pytest.raises(AttributeError):
        rec.ok = False  # type: ignore[misc]


def _written_before(cache: Path) -> None:
    with Store(cache) as store:
        for key, value in WRITTEN_BEFORE.items():
            store.set(key, value)


def test_a_database_written_before_reads_the_same_through_the_records(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _written_before(cache)
    fp = "f" * 64
    with Store(cache) as store:
        setup = records.prepared_setup(store, "app")
        assert setup is not None and setup.as_json() == WRITTEN_BEFORE["setup/app"]
        assert records.prepared_fingerprint(store, "app") == fp
        image = records.image(store, "app", fp)
        assert image is not None and image.as_json() == WRITTEN_BEFORE["image/app/" + fp]
        assert records.images_of(store, "app") == [image]
        history = records.deploy_history(store, "app")
        assert history is not None and history.as_json() == WRITTEN_BEFORE["deploy/app"]
        assert [v.number for v in history.versions] == [2, 3] and history.active == 3 and history.next == 4
        assert history.versions[0].adopted and history.versions[1].run == RUN
        owner = records.project_owner(store)
        assert owner == records.ProjectOwner("app-3f2a1c", "/srv/app")
        assert records.swarm_digests(store, "app") == WRITTEN_BEFORE["swarm/app"]["digests"]
        assert records.swarm_ports(store, "cluster-1") == WRITTEN_BEFORE["swarm/ports/cluster-1"]
        assert records.stat_cache(store, "app") == WRITTEN_BEFORE["stat/app"]
        assert records.gleam_archive_stats(store) == WRITTEN_BEFORE["stat/gleam-archive"]
        assert records.last_log(store, "app", "prepare") == records.LogRecord(
            "/srv/app/.cri/logs/app/prepare.log", "2026-01-02T03:04:05Z", True
        )
        assert records.last_log(store, "app", "build") is not None
        assert records.last_log(store, "app", "deploy") is None
        assert records.deploy_history(store, "other") is None and records.prepared_setup(store, "other") is None


def test_writing_through_the_records_leaves_the_bytes_caches_hold(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    _written_before(before)
    fp = "f" * 64
    with Store(before) as old, Store(after) as store:
        records.set_project_owner(store, records.ProjectOwner.from_json(old.get("meta/project") or {}))
        records.set_prepared_setup(store, "app", records.PreparedSetup.from_json(old.get("setup/app") or {}))
        records.set_image(store, "app", fp, records.ImageRecord.from_json(old.get("image/app/" + fp) or {}))
        records.set_deploy_history(store, "app", records.DeployHistory.from_json(old.get("deploy/app") or {}))
        records.set_swarm_digests(store, "app", records.swarm_digests(old, "app"))
        records.set_stat_cache(store, "app", records.stat_cache(old, "app") or {})
        records.set_gleam_archive_stats(store, records.gleam_archive_stats(old) or {})
        store.set("swarm/ports/cluster-1", WRITTEN_BEFORE["swarm/ports/cluster-1"])
        for phase in ("prepare", "build"):
            log = records.last_log(old, "app", phase)
            assert log is not None
            store.set(records.log_key("app", phase), log.as_json())
    assert _raw(after) == _raw(before)


def test_the_records_written_now_have_the_shapes_caches_hold(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store:
        records.set_last_log(store, "app", "prepare", "/x.log", ok=True)
        records.set_swarm_ports(store, "cluster-1", "proxy", "no ingress network")
        log = store.get("log/app/prepare")
        ports = store.get("swarm/ports/cluster-1")
    assert log is not None and set(log) == {"path", "time", "ok"}
    assert ports is not None and set(ports) == {"mode", "reason", "time"} and ports["mode"] == "proxy"


def test_forgetting_a_setup_removes_its_image_records_and_its_setup_record_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _written_before(cache)
    with Store(cache) as store:
        assert records.forget_setup(store, "app") == 1
        assert store.keys("image/") == [] and records.prepared_setup(store, "app") is None
        assert records.deploy_history(store, "app") is not None  # deploys are not prepare's


def _raw(cache: Path) -> dict[str, str]:
    db = sqlite3.connect(cache / "records" / "cache.db")
    try:
        return dict(db.execute("SELECT key, value FROM Cache WHERE key != 'meta/schema'").fetchall())
    finally:
        db.close()


# ---- the workspace ---------------------------------------------------------------------------


def test_a_workspace_opens_its_store_once_on_first_use_and_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_init, real_close = Store.__init__, Store.close

    def counting_init(self: Store, cache_dir: Path) -> None:
        calls.append("open")
        real_init(self, cache_dir)

    def counting_close(self: Store) -> None:
        calls.append("close")
        real_close(self)

    monkeypatch.setattr(Store, "__init__", counting_init)
    monkeypatch.setattr(Store, "close", counting_close)
    project = Project(tmp_path / "zerops.yml", ())
    with Workspace(project, resolve({})) as ws:
        assert ws.cache_dir == tmp_path / ".cri" and ws.project_id == project_id(project)
        assert not (tmp_path / ".cri").exists()  # nothing asked for a record yet
        assert ws.store is ws.store
        with opened(project, ws.settings, ws) as same:  # a workspace handed down stays open
            assert same is ws
        assert calls == ["open"]
    assert calls == ["open", "close"]
    with Workspace(project, resolve({})):
        pass
    assert calls == ["open", "close"]  # never used: never opened


def test_one_store_is_opened_per_api_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cri_tasks import api

    zerops = tmp_path / "zerops.yml"
    zerops.write_text(
        "zerops:\n  - setup: app\n    build:\n      base: gleam@1.5\n      deployFiles: ./\n"
        "    run:\n      base: gleam@1.5\n      start: gleam run\n"
    )
    _written_before(tmp_path / ".cri")
    log = tmp_path / "build.log"
    log.write_text("built\n")
    with Store(tmp_path / ".cri") as store:
        records.set_last_log(store, "app", "build", str(log), ok=True)
    count = [0]
    real_init = Store.__init__

    def counting(self: Store, cache_dir: Path) -> None:
        count[0] += 1
        real_init(self, cache_dir)

    monkeypatch.setattr(Store, "__init__", counting)
    assert api.clean(zerops, setup="app") == [{"setup": "app", "forgotten": 1, "removed": []}]
    assert count == [1]
    assert api.log_path(zerops, setup="app", phase="build") == log
    assert count == [2]


def test_no_module_but_records_spells_a_record_key() -> None:
    prefixes = ("setup/", "image/", "deploy/", "swarm/", "stat/", "log/", "meta/")
    offenders = []  # a string that starts like a key: f"deploy/{name}", "stat/gleam-archive", ...
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "records.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            parts: list[ast.expr] = []
            if isinstance(node, ast.JoinedStr):
                parts = node.values[:1]
            elif isinstance(node, ast.Constant):
                parts = [node]
            for part in parts:
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and part.value.startswith(prefixes):
                    offenders.append(f"{module}:{part.lineno}: {part.value!r}")
    assert offenders == []


def test_a_store_held_for_a_whole_call_makes_its_reserve_again_before_it_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store closed after each step made the reserve again each time; one held for the call
    # does it before its next use, or before the workspace writes into the cache folder.
    project = Project(tmp_path / "zerops.yml", ())
    with Workspace(project, resolve({})) as ws:
        records.set_last_log(ws.store, "app", "build", "/x.log", ok=True)
    reserve = tmp_path / ".cri" / "records" / store_module.RESERVE
    assert reserve.exists()
    opens: list[int] = []
    real = store_module._new_cache

    def full_once(directory: Path) -> Any:
        opens.append(1)
        if len(opens) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(directory)

    monkeypatch.setattr(store_module, "_new_cache", full_once)
    with Workspace(project, resolve({})) as ws:
        records.set_last_log(ws.store, "app", "build", "/y.log", ok=False)  # read-only: the reserve is spent
        assert not reserve.exists() and len(opens) == 2
        ws.folder("tmp")
        assert reserve.exists() and len(opens) == 3  # closed, reserve made, opened again
        log = records.last_log(ws.store, "app", "build")
        assert log is not None and (log.path, log.ok) == ("/y.log", False) and len(opens) == 3
