"""The cache-hit index and the stat signature it checks (no engine: image ids come from a fake).

The real-engine side (a hit that loads neither zerops.yml nor the records, and every change that
must not be answered from the index) is in test_prepare_engine.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cri_tasks import engine, hitindex
from cri_tasks.errors import ConfigError
from cri_tasks.fingerprint import Ref, StatCache, recorded_signature, scan, stat_signature
from cri_tasks.settings import resolve

ZEROPS = "zerops:\n  - setup: app\n    run:\n      base: gleam@1.5\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "priv/static").mkdir(parents=True)
    (tmp_path / "priv/static/app.css").write_text("body {}\n")
    (tmp_path / "gleam.toml").write_text('name = "x"\n')
    os.symlink("static/app.css", tmp_path / "priv/link.css")
    return tmp_path


REFS = [Ref("gleam.toml"), Ref("priv")]


def recorded(root: Path, refs: list[Ref] = REFS) -> str | None:
    cache = StatCache()
    entries = scan(root, refs, cache)
    return recorded_signature(entries, cache.pruned())


def test_the_signature_of_a_scanned_tree_equals_what_lstat_says_now(tree: Path) -> None:
    assert recorded(tree) == stat_signature(tree, REFS)
    overlapping = [*REFS, Ref("priv/static")]  # an entry listed twice counts once
    assert recorded(tree, overlapping) == stat_signature(tree, overlapping) == stat_signature(tree, REFS)


CHANGES = {
    "content": lambda t: (t / "priv/static/app.css").write_text("body { color: red }\n"),
    "content, same size and mtime restored": lambda t: _same_size_rewrite(t / "gleam.toml"),
    "mode": lambda t: os.chmod(t / "gleam.toml", 0o600),
    "touch": lambda t: os.utime(t / "gleam.toml", (1, 1)),
    "added file": lambda t: (t / "priv/new.txt").write_text(""),
    "removed file": lambda t: (t / "priv/static/app.css").unlink(),
    "added folder": lambda t: (t / "priv/empty").mkdir(),
    "link target": lambda t: (os.unlink(t / "priv/link.css"), os.symlink("../gleam.toml", t / "priv/link.css")),
    "file replaced by a copy": lambda t: _replace(t / "gleam.toml"),
}


def _same_size_rewrite(path: Path) -> None:
    st = path.stat()
    path.write_text('name = "y"\n')
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the inode's ctime moved, mtime did not


def _replace(path: Path) -> None:
    st = path.stat()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(path.read_bytes())
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)  # same content, size and mtime: a new inode


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_but_one_that_keeps_size_mtime_and_inode_moves_the_signature(tree: Path, change: str) -> None:
    before = recorded(tree)
    CHANGES[change](tree)
    if change == "content, same size and mtime restored":
        # The stat cache's own blind spot (as in make, rsync, git): the same size, mtime and
        # inode are taken to mean the same content. The full scan is no wiser.
        assert stat_signature(tree, REFS) == before
        return
    assert stat_signature(tree, REFS) != before


def test_a_symlink_that_leaves_the_project_is_an_error_in_both_walks(tree: Path) -> None:
    os.symlink("/etc", tree / "priv/out")
    with pytest.raises(ConfigError) as scanned:
        scan(tree, REFS, StatCache())
    with pytest.raises(ConfigError) as signed:
        stat_signature(tree, REFS)
    assert str(scanned.value) == str(signed.value)
    assert "pointing outside the project folder (to /etc)" in str(signed.value)


# ---- the index ---------------------------------------------------------------------------------


class Records:
    """Stands in for the diskcache Store: ``get`` of ``setup/<name>`` records, and ``identity``
    (a file standing for the database)."""

    def __init__(self, db: Path, **fingerprints: str) -> None:
        self.db = db
        db.parent.mkdir(parents=True, exist_ok=True)
        db.touch()
        self.data = {f"setup/{k}": {"fingerprint": v} for k, v in fingerprints.items()}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def identity(self) -> tuple[str, list[int]]:
        st = self.db.stat()
        return str(self.db), [st.st_ino, st.st_dev]


def records(project: Path, **fingerprints: str) -> Records:
    return Records(project / ".cri" / "records" / "cache.db", **fingerprints)


@pytest.fixture
def project(tree: Path) -> Path:
    (tree / "zerops.yml").write_text(ZEROPS)
    (tree / "gleam.tar.gz").write_bytes(b"not really")
    return tree


def settings(project: Path, **raw: Any) -> Any:
    return resolve({"cache_dir": str(project / ".cri"), **raw})


def entry(project: Path, **over: Any) -> dict[str, Any]:
    st = (project / "gleam.tar.gz").stat()
    e = {
        "name": "app",
        "root": str(project),
        "refs": [r.value for r in REFS],
        "files": recorded(project),
        "gleam": {"path": str(project / "gleam.tar.gz"), "stat": [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]},
        "base": {"ref": "base:1", "id": "sha256:base"},
        "tag": "cri/app:abc",
        "image_id": "sha256:image",
        "fingerprint": "f" * 64,
        "log": "/log",
    }
    e.update(over)
    return e


class FakeEngine:
    """The image ids engine.image_ids answers with, and the questions it was asked."""

    def __init__(self) -> None:
        self.ids: dict[str, str | None] = {"base:1": "sha256:base", "cri/app:abc": "sha256:image"}
        self.calls: list[list[str]] = []

    def image_ids(self, refs: list[str]) -> dict[str, str | None]:
        self.calls.append(list(refs))
        return {r: self.ids.get(r) for r in refs}


@pytest.fixture
def engine_ids(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(engine, "image_ids", fake.image_ids)
    return fake


def key(project: Path, setup: str | None = None, **raw: Any) -> hitindex.Key:
    k = hitindex.Key.of(None if setup == "file" else project / "zerops.yml", settings(project, **raw), setup)
    assert k is not None
    return k


def remembered(project: Path, **over: Any) -> hitindex.Key:
    k = key(project)
    (project / ".cri").mkdir(exist_ok=True)
    assert hitindex.remember(k, [entry(project, **over)], records(project, app="f" * 64))
    return k


def test_an_unchanged_project_is_answered_with_one_engine_question(project: Path, engine_ids: FakeEngine) -> None:
    k = remembered(project)
    said: list[str] = []
    results = hitindex.lookup(k, said.append)
    assert results is not None
    (r,) = results
    assert (r.setup, r.status, r.image, r.image_id, r.cached, r.log) == (
        "app",
        "up to date",
        "cri/app:abc",
        "sha256:image",
        True,
        "/log",
    )
    assert said == ["[app] up to date (cri/app:abc)"]
    assert engine_ids.calls == [["base:1", "cri/app:abc"]]


def test_the_key_follows_every_input_of_the_outcome(project: Path) -> None:
    base = key(project).digest
    assert key(project).digest == base
    assert key(project, setup="app").digest != base
    assert key(project, repository="other").digest != base
    assert key(project, images={"ubuntu": "mirror/ubuntu:24.04"}).digest != base
    (project / "zerops.yml").write_text(ZEROPS + "# a comment\n")
    assert key(project).digest != base


NOT_ANSWERED = {
    "a file changed": lambda p, e: (p / "gleam.toml").write_text("changed\n"),
    "the Gleam archive changed": lambda p, e: (p / "gleam.tar.gz").write_bytes(b"another"),
    "the Gleam archive is gone": lambda p, e: (p / "gleam.tar.gz").unlink(),
    "the image was removed": lambda p, e: e.ids.update({"cri/app:abc": None}),
    "the image tag moved": lambda p, e: e.ids.update({"cri/app:abc": "sha256:other"}),
    "the base image moved": lambda p, e: e.ids.update({"base:1": "sha256:newer"}),
    "a listed path is gone": lambda p, e: (p / "gleam.toml").unlink(),
    "the index is garbage": lambda p, e: (p / ".cri" / hitindex.INDEX).write_text("{not json"),
    "the index is another version's": lambda p, e: (p / ".cri" / hitindex.INDEX).write_text(
        json.dumps({"v": 0, "entries": {}})
    ),
    "a setup record changed": lambda p, e: hitindex.forget(p / ".cri"),
}


@pytest.mark.parametrize("change", list(NOT_ANSWERED))
def test_anything_changed_sends_the_call_to_the_full_prepare(
    project: Path, engine_ids: FakeEngine, change: str
) -> None:
    k = remembered(project)
    NOT_ANSWERED[change](project, engine_ids)
    assert hitindex.lookup(k, lambda line: None) is None


def test_an_entry_of_an_unknown_shape_is_a_miss_not_a_crash(project: Path, engine_ids: FakeEngine) -> None:
    k = remembered(project)
    path = project / ".cri" / hitindex.INDEX
    doc = json.loads(path.read_text())
    doc["entries"][k.digest]["setups"][0].pop("tag")
    path.write_text(json.dumps(doc))
    assert hitindex.lookup(k, lambda line: None) is None


def test_nothing_is_remembered_when_the_records_moved_on(project: Path) -> None:
    (project / ".cri").mkdir()
    k = key(project)
    assert not hitindex.remember(k, [entry(project)], records(project, app="0" * 64))  # another image is current
    assert not hitindex.remember(k, [entry(project)], records(project))  # cleaned
    assert not (project / ".cri" / hitindex.INDEX).exists()


def test_the_full_path_parses_the_bytes_the_key_was_made_from(project: Path) -> None:
    from cri_tasks.loader import load_project

    k = key(project)
    (project / "zerops.yml").write_text(ZEROPS.replace("gleam@1.5", "gleam@1"))  # edited meanwhile
    assert load_project(project / "zerops.yml", data=k.data).setups[0].run.base == "gleam@1.5"
    assert key(project).digest != k.digest


def test_records_removed_or_replaced_behind_the_index_are_a_miss(project: Path, engine_ids: FakeEngine) -> None:
    k = remembered(project)
    db = project / ".cri" / "records" / "cache.db"
    db.unlink()
    assert hitindex.lookup(k, lambda line: None) is None
    db.write_bytes(b"")  # another file in its place (a new database, or an older cri-tasks')
    k = remembered(project)
    db.rename(db.with_suffix(".old"))
    db.write_bytes(b"")
    assert hitindex.lookup(k, lambda line: None) is None


def test_a_gleam_archive_named_with_a_tilde_follows_home(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(project / "a"))
    in_a = key(project, gleam={"source": "~/gleam.tar.gz"}).digest
    monkeypatch.setenv("HOME", str(project / "b"))
    assert key(project, gleam={"source": "~/gleam.tar.gz"}).digest != in_a


def test_the_index_is_best_effort_but_dropping_it_is_not(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cri_tasks.errors import CriError

    k = key(project)
    (project / ".cri").mkdir()

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(hitindex.os, "replace", full_disk)
        assert not hitindex.remember(k, [entry(project)], records(project, app="f" * 64))
    assert sorted(p.name for p in (project / ".cri").iterdir()) == [hitindex.LOCK, "records"]  # no temp file left

    def cannot_lock(cache_dir: Path) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hitindex, "_locked", cannot_lock)
    with pytest.raises(CriError, match="cannot remove the cache-hit index .* remove it by hand"):
        hitindex.forget(project / ".cri")


def test_the_index_keeps_a_bounded_number_of_selections(project: Path) -> None:
    (project / ".cri").mkdir()
    for i in range(hitindex.MAX_ENTRIES + 5):
        k = key(project, repository=f"r{i}")
        assert hitindex.remember(k, [entry(project)], records(project, app="f" * 64))
    doc = json.loads((project / ".cri" / hitindex.INDEX).read_text())
    assert len(doc["entries"]) == hitindex.MAX_ENTRIES
    assert k.digest in doc["entries"]
    assert oct((project / ".cri" / hitindex.INDEX).stat().st_mode & 0o777) == "0o600"


def test_an_unreadable_zerops_yml_has_no_key(tmp_path: Path) -> None:
    assert hitindex.Key.of(tmp_path / "missing.yml", resolve({}), None) is None


def test_writing_a_setup_record_drops_the_index(project: Path) -> None:
    from cri_tasks.store import Store

    with Store(project / ".cri") as store:
        store.set("setup/app", {"fingerprint": "f" * 64})
        assert hitindex.remember(key(project), [entry(project)], store)
        store.set("stat/app", {})  # not a setup record: the index stays
        assert (project / ".cri" / hitindex.INDEX).exists()
        store.set("setup/app", {"fingerprint": "0" * 64})
        assert not (project / ".cri" / hitindex.INDEX).exists()


def test_a_new_records_database_drops_the_index(project: Path) -> None:
    from cri_tasks.store import Store

    remembered(project)
    (project / ".cri" / "records" / "cache.db").unlink()
    with Store(project / ".cri"):
        assert not (project / ".cri" / hitindex.INDEX).exists()


def test_settings_made_directly_with_their_defaults_still_have_a_key(project: Path) -> None:
    from cri_tasks.settings import Settings

    direct = Settings(None, str(project / ".cri"), "cri", {"ubuntu": "u"}, "none", False, "", 1, 1.0, None)
    k = hitindex.Key.of(project / "zerops.yml", direct, None)  # read-only mapping defaults
    assert k is not None and k.digest != key(project).digest


def test_a_rewritten_module_or_template_changes_the_stamps_the_key_uses(tmp_path: Path) -> None:
    from cri_tasks.paths import folder_stamps

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.j2").write_text("FROM x\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    before = folder_stamps(str(tmp_path), (".py", ".j2"))
    assert [s.split("\0")[0] for s in before] == ["a.py", "b.j2"]
    (tmp_path / "notes.txt").write_text("still not code\n")
    assert folder_stamps(str(tmp_path), (".py", ".j2")) == before
    (tmp_path / "a.py").write_text("x = 22\n")
    assert folder_stamps(str(tmp_path), (".py", ".j2")) != before
    os.utime(tmp_path / "a.py", ns=(1, 1))  # and a touch alone, as an upgrade rewrites files
    touched = folder_stamps(str(tmp_path), (".py", ".j2"))
    os.utime(tmp_path / "a.py", ns=(2, 2))
    assert folder_stamps(str(tmp_path), (".py", ".j2")) != touched
