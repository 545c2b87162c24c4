"""Shared fixtures. Real-engine tests are marked ``engine``: they skip on a machine with no Docker
engine, and FAIL in CI (``CI`` set), so a broken engine never passes silently.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: the local stand-in for the `ubuntu` base image (made by scripts/provision-engine)
BASE_IMAGE = os.environ.get("CRI_TEST_BASE_IMAGE", "cri-local/debian:bookworm")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if info.returncode != 0:
        return f"no Docker engine answers: {info.stderr.strip()[:200]}"
    bx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True)
    if bx.returncode != 0:
        return "the docker buildx plugin is missing"
    img = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, text=True)
    if img.returncode != 0:
        return f"the local base image {BASE_IMAGE} is missing (run scripts/provision-engine)"
    return None


@pytest.fixture(scope="session")
def engine() -> None:
    """Require a working engine: skip locally, fail in CI."""
    problem = _engine_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI needs a real Docker engine: {problem}")
        pytest.skip(problem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("engine") and "engine" not in getattr(item, "fixturenames", []):
            item.fixturenames.insert(0, "engine")  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user config leaks in: a private HOME (Docker's own config is kept reachable)."""
    real_docker_config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", real_docker_config)
    for key in list(os.environ):
        if key.startswith("INVOKE_"):
            monkeypatch.delenv(key)


@pytest.fixture
def unique() -> str:
    """A random name part for images, so tests never collide or touch foreign images."""
    return uuid.uuid4().hex[:10]


def make_gleam_archive(path: Path, version: str = "1.5.1") -> Path:
    """A stand-in for Gleam's release archive: a tar.gz holding an executable ``gleam``."""
    script = f"#!/bin/sh\necho 'gleam {version}'\n".encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("gleam")
        info.size = len(script)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(script))
    return path


@pytest.fixture(scope="session")
def gleam_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gleam_archive(tmp_path_factory.mktemp("gleam") / "gleam.tar.gz")


@pytest.fixture
def engine_settings(gleam_archive: Path, tmp_path: Path, unique: str) -> Iterator[dict[str, object]]:
    """cri settings for real-engine tests: `ubuntu` mapped to the local Debian image; the images
    the test builds (repository ``cri-test-<random>``) are removed afterwards."""
    repository = f"cri-test-{unique}"
    yield {
        "images": {"ubuntu": BASE_IMAGE, "alpine": "alpine:3.20"},
        "gleam": {"source": str(gleam_archive)},
        "repository": repository,
        "cache_dir": str(tmp_path / "cri-cache"),
    }
    remove_repository_images(repository)


def remove_repository_images(repository: str) -> None:
    for repo in (repository, f"{repository}-debug", f"{repository}-proxy", f"{repository}-build"):
        # <repository>/<project id>/<setup> (and the older <repository>/<setup>)
        listed = subprocess.run(
            [
                "docker",
                "image",
                "ls",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                f"reference={repo}/*",
                "--filter",
                f"reference={repo}/*/*",
            ],
            capture_output=True,
            text=True,
        )
        refs = listed.stdout.split()
        if refs:
            subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True)


@pytest.fixture
def remove_images() -> Iterator[list[str]]:
    """Collects image references to remove after the test."""
    refs: list[str] = []
    yield refs
    if refs:
        subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello"


@pytest.fixture
def app(tmp_path: Path, engine_settings: dict[str, object]) -> Iterator[Path]:
    """A copy of the bundled example with the test's settings; stopped and cleaned afterwards."""
    import yaml
    from helpers import stop_and_clean

    proj = tmp_path / "hello"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns(".cri", "build"))
    settings = {**engine_settings, "gleam": {"source": "none"}, "env_file": "project.env"}
    (proj / "project.env").write_text("")
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": settings}))
    yield proj
    stop_and_clean(proj)
