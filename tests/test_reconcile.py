"""Deploy records against what the engine holds (fakes for the engine; the real engine:
tests/test_projects_engine.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import make_project

from cri_tasks import deploy_phase, engine
from cri_tasks.deploy_phase import Version, checked_image, reconcile
from cri_tasks.errors import CriError
from cri_tasks.model import Project
from cri_tasks.runtime_plan import app_tag, project_id, tag_for
from cri_tasks.settings import resolve
from cri_tasks.store import Store

YML = """
zerops:
  - setup: app
    run:
      start: ./run
"""


class FakeEngine:
    def __init__(self) -> None:
        self.ids: dict[str, str | None] = {}
        self.images: list[engine.ImageInfo] = []
        self.refs: list[str] = []
        self.tagged: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(engine, "image_ids", lambda refs: {r: self.ids.get(r) for r in refs})
        monkeypatch.setattr(engine, "list_images", lambda labels: list(self.images))
        monkeypatch.setattr(engine, "image_references", lambda repo: [r for r in self.refs if r.startswith(repo + ":")])
        monkeypatch.setattr(engine, "tag_image", lambda image, ref: self.tagged.append((image, ref)))


class FakeTarget:
    def __init__(self, serving: int | None) -> None:
        self.serving = serving

    def running_version(self, setup: Any, recorded: int | None) -> int | None:
        return self.serving


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    f = FakeEngine()
    f.install(monkeypatch)
    return f


def _project(tmp_path: Path) -> Project:
    from cri_tasks.loader import load_project

    root = make_project(tmp_path / "p", YML)
    return load_project(root / "zerops.yml")


def _image(pid: str, n: int, image_id: str) -> engine.ImageInfo:
    labels = {
        "io.cri-tasks.project": pid,
        "io.cri-tasks.setup": "app",
        "io.cri-tasks.role": "app",
        "io.cri-tasks.version": str(n),
        "io.cri-tasks.runtime": "rt",
    }
    return engine.ImageInfo(image_id, (f"cri/{pid}/app:v{n}",), labels, "2026-01-01T00:00:00.123Z")


def test_names_are_scoped_by_project() -> None:
    s = resolve({"repository": "reg.example/cri"})
    assert tag_for(s, "hello-abc123", "app", "f" * 64) == "reg.example/cri/hello-abc123/app:ffffffffffff"
    assert app_tag(s, "hello-abc123", "app", 7) == "reg.example/cri/hello-abc123/app:v7"


def test_a_tag_that_moved_is_named_with_both_ids(fake: FakeEngine) -> None:
    v = Version(3, "cri/p/app:v3", "sha256:built", "rt")
    fake.ids = {"cri/p/app:v3": "sha256:built"}
    assert checked_image("app", v) == "sha256:built"
    fake.ids = {"cri/p/app:v3": "sha256:other", "sha256:built": "sha256:built"}
    with pytest.raises(CriError) as caught:
        checked_image("app", v)
    text = str(caught.value)
    assert "the tag cri/p/app:v3 points at sha256:other, not at sha256:built that version 3 was built as" in text
    assert "docker tag sha256:built cri/p/app:v3" in text
    fake.ids = {"cri/p/app:v3": "sha256:other"}
    with pytest.raises(CriError, match="the image sha256:built is gone"):
        checked_image("app", v)
    fake.ids = {"sha256:built": "sha256:built"}  # only the name went: it is given back
    assert checked_image("app", v) == "sha256:built" and fake.tagged == [("sha256:built", "cri/p/app:v3")]
    fake.ids = {}
    with pytest.raises(CriError, match="was removed"):
        checked_image("app", v)


def test_reconcile_adopts_untracked_images_and_numbers_after_the_highest(tmp_path: Path, fake: FakeEngine) -> None:
    project = _project(tmp_path)
    settings = resolve({})
    pid = project_id(project)
    s = project.setups[0]
    said: list[str] = []
    with Store(settings.cache_path(project.root)) as store:
        store.set(
            "deploy/app",
            {
                "next": 2,
                "active": 1,
                "versions": [Version(1, app_tag(settings, pid, "app", 1), "sha256:1", "rt").as_json()],
            },
        )
        untagged = _image(pid, 7, "sha256:7")._replace(tags=())  # a failed activation's image
        fake.images = [_image(pid, 1, "sha256:1"), _image(pid, 2, "sha256:2"), untagged]
        fake.refs = [f"cri/{pid}/app:v1", f"cri/{pid}/app:v2", f"cri/{pid}/app:v5"]  # v5: a bare tag
        rec = reconcile(project, settings, s, store, FakeTarget(serving=2), said.append)
        assert [v["version"] for v in rec["versions"]] == [1, 2] and rec["versions"][1]["adopted"] is True
        assert rec["versions"][1]["image_id"] == "sha256:2" and rec["active"] == 2 and rec["next"] == 8
        assert store.get("deploy/app") == rec
        assert any("adopted version 2" in line for line in said)
        assert any("the records said version 1 is active, but version 2 is what runs" in line for line in said)
        # a second call finds nothing to change
        said.clear()
        assert reconcile(project, settings, s, store, FakeTarget(serving=2), said.append) == rec and said == []


def test_reconcile_warns_when_the_records_lost_the_history(tmp_path: Path, fake: FakeEngine) -> None:
    project = _project(tmp_path)
    settings = resolve({})
    pid = project_id(project)
    said: list[str] = []
    fake.images = [_image(pid, 1, "sha256:1"), _image(pid, 4, "sha256:4")]
    with Store(settings.cache_path(project.root)) as store:
        rec = reconcile(project, settings, project.setups[0], store, FakeTarget(serving=None), said.append)
    assert rec["next"] == 5 and [v["version"] for v in rec["versions"]] == [1, 4] and rec["active"] is None
    (warning,) = said
    assert warning.startswith("warning: [app] the records in") and "hold no deploy history" in warning
    assert "(v1, v4)" in warning and "numbering continues at 5" in warning


def test_a_cache_folder_shared_by_two_projects_is_refused(tmp_path: Path, fake: FakeEngine) -> None:
    settings = resolve({"cache_dir": str(tmp_path / "shared")})
    one = _project(tmp_path / "one")
    two = _project(tmp_path / "two")
    with Store(settings.cache_path(one.root)) as store:
        reconcile(one, settings, one.setups[0], store, FakeTarget(None), lambda _l: None)
        with pytest.raises(CriError, match="holds the deploy records of another project"):
            reconcile(two, settings, two.setups[0], store, FakeTarget(None), lambda _l: None)
    assert deploy_phase.project_id(one) != deploy_phase.project_id(two)


def test_a_cache_folder_inside_the_project_moves_with_it(tmp_path: Path, fake: FakeEngine) -> None:
    project = _project(tmp_path)
    settings = resolve({})  # .cri in the project
    with Store(settings.cache_path(project.root)) as store:
        store.set("meta/project", {"id": "hello-000000", "root": "/where/it/was"})  # a renamed folder
        reconcile(project, settings, project.setups[0], store, FakeTarget(None), lambda _l: None)
        assert store.get("meta/project") == {"id": project_id(project), "root": str(project.root.resolve())}
