"""Fingerprints of addToRunPrepare trees, the stat cache, and what --explain says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_tasks import fingerprint
from cri_tasks.errors import ConfigError, Location
from cri_tasks.fingerprint import StatCache, scan
from cri_tasks.model import PathRef
from cri_tasks.runtime_plan import diff_inputs

LOC = Location("zerops.yml", 9, 11)


def ref(value: str) -> PathRef:
    return PathRef(value, "zerops[0].build.addToRunPrepare[0]", LOC)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "priv/static").mkdir(parents=True)
    (tmp_path / "priv/static/app.css").write_text("body {}\n")
    (tmp_path / "gleam.toml").write_text('name = "x"\n')
    return tmp_path


def digest_of(root: Path, *values: str, cache: StatCache | None = None) -> str:
    entries = scan(root, [ref(v) for v in values], cache or StatCache())
    return fingerprint.digest([e.as_json() + e.rel for e in entries])


def test_modification_time_alone_is_no_change(tree: Path) -> None:
    before = digest_of(tree, "gleam.toml", "priv")
    os.utime(tree / "gleam.toml", (12345, 12345))
    assert digest_of(tree, "gleam.toml", "priv") == before


def test_content_mode_and_new_files_are_changes(tree: Path) -> None:
    before = digest_of(tree, "priv")
    (tree / "priv/static/app.css").write_text("body { color: red }\n")
    after_content = digest_of(tree, "priv")
    os.chmod(tree / "priv/static/app.css", 0o600)
    after_mode = digest_of(tree, "priv")
    (tree / "priv/new.txt").write_text("")
    after_new = digest_of(tree, "priv")
    assert len({before, after_content, after_mode, after_new}) == 4


def test_an_unchanged_tree_is_not_read_again(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = StatCache()
    scan(tree, [ref("priv"), ref("gleam.toml")], cache)
    reads: list[Path] = []
    real = fingerprint.hash_file
    monkeypatch.setattr(fingerprint, "hash_file", lambda p: reads.append(p) or real(p))
    again = StatCache(cache.data)
    scan(tree, [ref("priv"), ref("gleam.toml")], again)
    assert reads == [] and not again.changed
    (tree / "gleam.toml").write_text("changed\n")
    scan(tree, [ref("priv"), ref("gleam.toml")], again)
    assert [Path(p) for p in reads] == [tree / "gleam.toml"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("../outside", "leaves the project folder"),
        ("/etc/passwd", "is absolute"),
        ("missing.txt", "does not exist"),
    ],
)
def test_paths_that_leave_the_project_or_do_not_exist_are_errors(tree: Path, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        scan(tree, [ref(value)], StatCache())
    assert why in str(err.value)
    assert str(err.value).startswith("zerops.yml:9:11: zerops[0].build.addToRunPrepare[0]: ")


def test_a_symlink_pointing_outside_is_refused(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("s")
    os.symlink(outside / "secret", tree / "priv/link")
    with pytest.raises(ConfigError, match="symlink pointing outside the project folder"):
        scan(tree, [ref("priv")], StatCache())
    os.symlink(outside, tree / "dirlink")
    with pytest.raises(ConfigError, match="points outside the project folder"):
        scan(tree, [ref("dirlink/secret")], StatCache())


def test_a_symlink_inside_the_project_is_kept_as_a_link(tree: Path) -> None:
    os.symlink("static/app.css", tree / "priv/alias.css")
    entries = {e.rel: e for e in scan(tree, [ref("priv")], StatCache())}
    assert entries["priv/alias.css"].kind == "link" and entries["priv/alias.css"].content == "static/app.css"


def test_a_pipe_or_device_is_refused(tree: Path) -> None:
    os.mkfifo(tree / "priv/pipe")
    with pytest.raises(ConfigError, match="not a regular file"):
        scan(tree, [ref("priv")], StatCache())


def test_explain_names_each_change_field_by_field_and_file_by_file() -> None:
    old = {
        "os": "ubuntu",
        "base": "gleam@1.5",
        "prepareCommands": ["a", "b"],
        "addToRunPrepare": ["x"],
        "files": {"x/a": "file:644:1", "x/b": "file:644:2"},
        "templates": "t1",
        "gleam": {"source": "none"},
        "zcli": None,
        "baseImage": {"ref": "ubuntu:24.04", "id": "sha256:1"},
    }
    new = dict(
        old,
        prepareCommands=["a", "c", "d"],
        files={"x/a": "file:755:1", "x/c": "file:644:3"},
        baseImage={"ref": "ubuntu:24.04", "id": "sha256:2"},
    )
    assert diff_inputs(old, new) == [
        "run.prepareCommands[1] changed: 'b' -> 'c'",
        "run.prepareCommands[2] added: 'd'",
        "addToRunPrepare: x/a mode changed: 644 -> 755",
        "addToRunPrepare: x/b removed",
        "addToRunPrepare: x/c added",
        "base image ubuntu:24.04 changed: sha256:1 -> sha256:2",
    ]
