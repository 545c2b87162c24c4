"""The Docker boundary itself, against the real engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import BASE_IMAGE

from cri_tasks import engine
from cri_tasks.errors import EngineError

pytestmark = pytest.mark.engine


def test_a_trivial_image_builds_from_the_local_base_and_runs(tmp_path: Path, unique: str) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo built-{unique} > /built.txt\n")
    tag = f"cri-test-{unique}/trivial:1"
    lines: list[str] = []
    try:
        image_id = engine.build(
            tmp_path,
            dockerfile=tmp_path / "Dockerfile",
            tags=[tag],
            labels={"io.cri-tasks.test": "1"},
            on_line=lines.append,
        )
        assert image_id.startswith("sha256:")
        assert engine.image_ids([tag, BASE_IMAGE])[tag] == image_id
        out = subprocess.run(
            ["docker", "run", "--rm", "--pull", "never", tag, "cat", "/built.txt"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == f"built-{unique}\n"
        assert any(line.startswith("#") for line in lines)  # BuildKit's plain progress came through
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def test_a_missing_image_is_none_and_a_missing_engine_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine.image_ids(["cri-test-never/there:1"]) == {"cri-test-never/there:1": None}
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    with pytest.raises(EngineError, match="not reachable"):
        engine.image_ids([BASE_IMAGE])


def test_the_local_engine_is_asked_on_its_socket_not_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    assert engine._local_socket() is not None, "this engine is reached another way: nothing to check"
    monkeypatch.setattr(engine, "_inspect", lambda refs: pytest.fail("the docker CLI was asked"))
    cli = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert engine.image_ids([BASE_IMAGE, "cri-test-never/there:1"]) == {BASE_IMAGE: cli, "cri-test-never/there:1": None}
