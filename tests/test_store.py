"""The record store: JSON only, owner-only, survives a broken database."""

from __future__ import annotations

import pickle
import sqlite3
import stat
from pathlib import Path

import pytest

from cri_tasks.errors import CriError
from cri_tasks.store import Store


def test_records_round_trip_as_json_in_an_owner_only_folder(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store:
        store.set("setup/app", {"fingerprint": "abc", "n": 1})
        assert store.get("setup/app") == {"fingerprint": "abc", "n": 1}
        assert store.keys("setup/") == ["setup/app"]
    for folder in (tmp_path / "cache", tmp_path / "cache" / "records"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_nothing_but_json_text_can_be_stored(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store:
        with pytest.raises(TypeError):
            store._cache.set("k", {"a": 1})  # a dict would be pickled by plain diskcache


def test_a_pickle_planted_in_the_database_is_never_loaded(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store:
        store.set("setup/app", {"ok": True})
    db = sqlite3.connect(tmp_path / "cache" / "records" / "cache.db")
    db.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = ?", (pickle.dumps({"evil": 1}), "setup/app"))
    db.commit()
    db.close()
    with Store(tmp_path / "cache") as store, pytest.raises(CriError, match="pickled value"):
        store.get("setup/app")


def test_a_corrupt_database_is_moved_aside_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = tmp_path / "cache" / "records"
    records.mkdir(parents=True)
    (records / "cache.db").write_bytes(b"this is not a database" * 100)
    with Store(tmp_path / "cache") as store:
        store.set("setup/app", {"ok": True})
        assert store.get("setup/app") == {"ok": True}
    assert "could not be used" in capsys.readouterr().err
    assert list((tmp_path / "cache").glob("records.old-*"))


def test_a_database_left_by_another_version_is_moved_aside_not_misread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import diskcache

    older = diskcache.Cache(str(tmp_path / "cache" / "records"))
    older.set("setup/app", "a record in a layout this version does not know")
    older.set("meta/schema", "0")
    older.close()
    with Store(tmp_path / "cache") as store:
        assert store.get("setup/app") is None
        store.set("setup/app", {"ok": True})
    assert "another version of cri-tasks" in capsys.readouterr().err
    assert list((tmp_path / "cache").glob("records.old-*"))
    with Store(tmp_path / "cache") as store:  # and the new one is kept
        assert store.get("setup/app") == {"ok": True}
