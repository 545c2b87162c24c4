"""The cache folder (``cri.cache_dir``, default ``.cri``) ignores itself: cri-tasks writes a
``.gitignore`` holding ``*`` when it creates the folder, so it never lands in a commit or in a
build context taken from git."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import make_project, prepare_json

from cri_tasks.paths import CACHE_GITIGNORE, cache_folder

APP = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo cached > marker.txt
"""


def ignore_rules(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_creating_the_cache_folder_writes_its_gitignore_owner_only(tmp_path: Path) -> None:
    cache = tmp_path / "project" / ".cri"
    assert cache_folder(cache, "logs", "app") == cache / "logs" / "app"
    assert ignore_rules(cache / ".gitignore") == ["*"]
    assert (cache / ".gitignore").read_text() == CACHE_GITIGNORE
    assert (cache.stat().st_mode & 0o777) == 0o700 and (cache / "logs" / "app").is_dir()


def test_a_cache_folder_that_exists_is_left_as_it_is(tmp_path: Path) -> None:
    made_by_user = tmp_path / "cache"
    made_by_user.mkdir()
    cache_folder(made_by_user, "locks")
    assert not (made_by_user / ".gitignore").exists()
    ours = tmp_path / ".cri"
    cache_folder(ours)
    (ours / ".gitignore").write_text("records/\n")  # the user's own rules win from then on
    cache_folder(ours, "build")
    assert (ours / ".gitignore").read_text() == "records/\n"


def test_only_the_cache_folder_gets_the_file_not_its_parents_or_subfolders(tmp_path: Path) -> None:
    cache = tmp_path / "a" / "b" / "cache"
    cache_folder(cache, "records")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob(".gitignore")) == ["a/b/cache/.gitignore"]


@pytest.mark.engine
def test_a_real_prepare_leaves_nothing_of_the_cache_for_git_to_see(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    settings = {k: v for k, v in engine_settings.items() if k != "cache_dir"}  # the default, .cri
    project = make_project(tmp_path / "proj", APP, settings=settings)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    first = prepare_json(project)
    assert first["setups"][0]["status"] == "built"
    gitignore = project / ".cri" / ".gitignore"
    assert ignore_rules(gitignore) == ["*"]
    assert (project / ".cri" / "records").is_dir() and (project / ".cri" / "logs").is_dir()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(line[3:] for line in status.splitlines()) == ["invoke.yaml", "tasks.py", "zerops.yml"]
    # A cache hit answers from the index and writes nothing there.
    stamp = gitignore.stat().st_mtime_ns
    assert prepare_json(project)["setups"][0]["status"] == "up to date"
    assert gitignore.stat().st_mtime_ns == stamp
