"""Several projects on one engine, and records that tell the truth (real engine).

Two copies of the example whose setups have the same name never share an image, a container, a
network or a proxy; a version runs the image id it was built as; a deploy killed at the proxy
switch, an emptied records database and a failed container start are all found out by the next
command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BASE_IMAGE, EXAMPLE, remove_repository_images
from helpers import deploy, edit, get, invoke, prepare_json, stop_and_clean

pytestmark = pytest.mark.engine

LABEL = "io.cri-tasks"


def _pid(project: Path) -> str:
    from cri_tasks.model import Project
    from cri_tasks.runtime_plan import project_id

    return project_id(Project(project / "zerops.yml", ()))


def _copy(dest: Path, settings: dict[str, Any], message: str) -> Path:
    """A copy of the example that answers ``message``, with its own cache folder."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".cri", "build"))
    (dest / "project.env").write_text("")
    own = {
        **settings,
        "gleam": {"source": "none"},
        "env_file": "project.env",
        "cache_dir": str(dest.parent / f"cache-{dest.parent.name}"),
    }
    (dest / "invoke.yaml").write_text(yaml.safe_dump({"cri": own}))
    edit(dest / "src" / "hello.erl", "Hello from the BEAM, version 1", message)
    return dest


@pytest.fixture
def two(tmp_path: Path, engine_settings: dict[str, Any]) -> Iterator[tuple[Path, Path]]:
    # Same folder name, same setup name, same repository: only the project id tells them apart.
    a = _copy(tmp_path / "one" / "hello", engine_settings, "alpha 1")
    b = _copy(tmp_path / "two" / "hello", engine_settings, "beta 1")
    yield a, b
    for p in (a, b):
        stop_and_clean(p)


def _image_id(ref: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _status(project: Path) -> tuple[dict[str, Any], str]:
    proc = invoke(project, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["setups"][0], proc.stderr


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr


def test_two_projects_with_the_same_setup_names_each_serve_their_own_code(
    two: tuple[Path, Path], engine_settings: dict[str, Any]
) -> None:
    a, b = two
    assert _pid(a) != _pid(b)
    repo = engine_settings["repository"]
    proc, doc_a = deploy(a)
    _ok(proc)
    proc, doc_b = deploy(b)
    _ok(proc)
    url_a, url_b = doc_a["setups"][0]["urls"][0], doc_b["setups"][0]["urls"][0]
    assert url_a != url_b
    assert doc_a["setups"][0]["image"] == f"{repo}/{_pid(a)}/app:v1"
    assert doc_b["setups"][0]["image"] == f"{repo}/{_pid(b)}/app:v1"
    assert _image_id(f"{repo}/{_pid(a)}/app:v1") != _image_id(f"{repo}/{_pid(b)}/app:v1")
    # the runtime images are each project's own names too (same inputs: one build's layers)
    assert doc_a["setups"][0]["runtime_image"].startswith(f"{repo}/{_pid(a)}/app:")
    assert doc_b["setups"][0]["runtime_image"].startswith(f"{repo}/{_pid(b)}/app:")

    def serve(alpha: str, beta: str) -> None:
        assert get(url_a).startswith(alpha) and get(url_b).startswith(beta)

    serve("alpha 1", "beta 1")
    edit(a / "src" / "hello.erl", "alpha 1", "alpha 2")
    _ok(deploy(a)[0])
    serve("alpha 2", "beta 1")
    edit(b / "src" / "hello.erl", "beta 1", "beta 2")
    _ok(deploy(b)[0])
    serve("alpha 2", "beta 2")
    _ok(invoke(a, "rollback", "--setup", "app"))
    serve("alpha 1", "beta 2")
    _ok(invoke(b, "rollback", "--setup", "app"))
    serve("alpha 1", "beta 1")
    _ok(invoke(a, "rollback", "--setup", "app", "--version", "2"))
    serve("alpha 2", "beta 1")

    # each project's status lists its own containers and proxy only
    sa, sb = _status(a)[0], _status(b)[0]
    assert [c["version"] for c in sa["containers"]] == ["2"] and [c["version"] for c in sb["containers"]] == ["1"]
    assert all(_pid(a) in c["name"] for c in sa["containers"]) and _pid(a) in sa["proxy"]["name"]
    assert all(_pid(b) in c["name"] for c in sb["containers"]) and _pid(b) in sb["proxy"]["name"]

    # A tag moved by hand (here: to the other project's image) is found out, not run.
    moved = f"{repo}/{_pid(a)}/app:v1"
    recorded = _image_id(moved)
    other = _image_id(f"{repo}/{_pid(b)}/app:v2")
    subprocess.run(["docker", "tag", f"{repo}/{_pid(b)}/app:v2", moved], check=True, capture_output=True)
    proc = invoke(a, "rollback", "--setup", "app", "--version", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"the tag {moved} points at {other}, not at {recorded} that version 1 was built as" in proc.stderr, (
        proc.stderr
    )
    assert f"docker tag {recorded} {moved}" in proc.stderr
    serve("alpha 2", "beta 1")

    # stop removes the project's network, and only that project's
    _ok(invoke(a, "stop"))
    assert subprocess.run(["docker", "network", "inspect", f"cri-{_pid(a)}"], capture_output=True).returncode != 0
    assert subprocess.run(["docker", "network", "inspect", f"cri-{_pid(b)}"], capture_output=True).returncode == 0
    assert get(url_b).startswith("beta 1")


def test_a_new_repository_names_the_prepared_image_without_a_rebuild(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    project = _copy(tmp_path / "p" / "hello", engine_settings, "alpha 1")
    pid = _pid(project)
    first = prepare_json(project)["setups"][0]
    old_repo = engine_settings["repository"]
    new_repo = f"{old_repo}-renamed"
    try:
        settings = yaml.safe_load((project / "invoke.yaml").read_text())
        settings["cri"]["repository"] = new_repo
        (project / "invoke.yaml").write_text(yaml.safe_dump(settings))
        proc = invoke(project, "prepare", "--json")
        _ok(proc)
        second = json.loads(proc.stdout)["setups"][0]
        assert "building" not in proc.stderr and second["status"] == "up to date"
        assert second["image"] == f"{new_repo}/{pid}/app:{first['fingerprint'][:12]}"
        assert second["image_id"] == first["image_id"] == _image_id(second["image"])
        assert _image_id(first["image"]) is None  # the old name went with the record
        # the records and the cache-hit index agree on the new name
        third = prepare_json(project)["setups"][0]
        assert (third["image"], third["image_id"]) == (second["image"], second["image_id"])
        explained = prepare_json(project, "--explain")["setups"][0]
        assert explained["image"] == second["image"] and explained["status"] == "up to date"
    finally:
        remove_repository_images(new_repo)


def _records_db(project: Path) -> Path:
    cache = Path(yaml.safe_load((project / "invoke.yaml").read_text())["cri"]["cache_dir"])
    return cache / "records" / "cache.db"


def _proxy_config(pid: str) -> str:
    proc = subprocess.run(
        ["docker", "exec", f"cri-{pid}-app-proxy", "cat", "/etc/cri-proxy/haproxy.cfg"], capture_output=True, text=True
    )
    return proc.stdout


def _running_versions(pid: str) -> set[str]:
    proc = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label={LABEL}.project={pid}",
            "--filter",
            f"label={LABEL}.role=app",
            "--format",
            '{{.Label "io.cri-tasks.version"}}',
        ],
        capture_output=True,
        text=True,
    )
    return set(proc.stdout.split())


def _project_images(pid: str) -> dict[str, str]:
    """version label -> image id of the project's app images."""
    proc = subprocess.run(
        [
            "docker",
            "image",
            "ls",
            "--no-trunc",
            "--filter",
            f"label={LABEL}.project={pid}",
            "--filter",
            f"label={LABEL}.role=app",
            "--format",
            "{{.ID}}",
        ],
        capture_output=True,
        text=True,
    )
    out = {}
    for image_id in set(proc.stdout.split()):
        label = subprocess.run(
            ["docker", "image", "inspect", "--format", '{{index .Config.Labels "io.cri-tasks.version"}}', image_id],
            capture_output=True,
            text=True,
        ).stdout.strip()
        out[label] = image_id
    return out


def test_a_deploy_killed_at_the_proxy_switch_is_reconciled_by_the_next_command(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    project = _copy(tmp_path / "k" / "hello", engine_settings, "kappa 1")
    pid = _pid(project)
    try:
        proc, doc = deploy(project)
        _ok(proc)
        url = doc["setups"][0]["urls"][0]
        edit(project / "src" / "hello.erl", "kappa 1", "kappa 2")
        log = tmp_path / "killed-deploy.log"
        with open(log, "wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "invoke", "deploy"],
                cwd=project,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        db = None
        try:
            # Once version 2's containers run, the deploy touches the records only to record the
            # new version: hold the records database's write lock from then on, so that the kill
            # comes while the proxy serves version 2 and before that record is written.
            deadline = time.monotonic() + 300
            while "2" not in _running_versions(pid):
                assert child.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            db = sqlite3.connect(_records_db(project), timeout=30, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            while "version 2." not in (_proxy_config(pid).splitlines() or [""])[0]:
                assert child.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            while not get(url).startswith("kappa 2"):  # HAProxy loaded it
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            if db is not None:
                db.execute("ROLLBACK")
                db.close()
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        assert get(url).startswith("kappa 2")
        raw = sqlite3.connect(_records_db(project))
        (value,) = raw.execute("SELECT value FROM Cache WHERE key = 'deploy/app'").fetchone()
        raw.close()
        assert json.loads(value)["active"] == 1  # what the kill left: the records lag behind

        status, said = _status(project)
        assert status["active_version"] == 2 and status["versions"] == [1, 2]
        assert "the records said version 1 is active, but version 2 is what runs" in said
        assert "adopted version 2" in said

        edit(project / "src" / "hello.erl", "kappa 2", "kappa 3")
        proc, doc = deploy(project)
        _ok(proc)
        assert doc["setups"][0]["version"] == 3 and get(url).startswith("kappa 3")
        status, _ = _status(project)
        assert status["active_version"] == 3 and status["versions"] == [1, 2, 3]
        assert [c["version"] for c in status["containers"]] == ["3"]  # version 1's and 2's containers are gone
        assert sorted(_project_images(pid)) == ["1", "2", "3"]  # every image of the project is a kept version
        _ok(invoke(project, "rollback", "--setup", "app", "--version", "2"))
        assert get(url).startswith("kappa 2")
    finally:
        stop_and_clean(project)


@pytest.mark.parametrize("damage", ["zero-length", "missing"])
def test_an_emptied_records_database_warns_and_never_reuses_a_tag(
    tmp_path: Path, engine_settings: dict[str, Any], damage: str
) -> None:
    project = _copy(tmp_path / "e" / "hello", engine_settings, "epsilon 1")
    pid = _pid(project)
    repo = engine_settings["repository"]
    try:
        _ok(deploy(project)[0])
        edit(project / "src" / "hello.erl", "epsilon 1", "epsilon 2")
        proc, doc = deploy(project)
        _ok(proc)
        url = doc["setups"][0]["urls"][0]
        ids = {n: _image_id(f"{repo}/{pid}/app:v{n}") for n in (1, 2)}
        db = _records_db(project)
        if damage == "zero-length":
            for extra in (db.with_name("cache.db-wal"), db.with_name("cache.db-shm")):
                extra.unlink(missing_ok=True)
            db.write_bytes(b"")
        else:
            shutil.rmtree(db.parent)
        status, said = _status(project)
        assert "warning: [app] the records in" in said and "hold no deploy history" in said
        assert "numbering continues at 3" in said
        assert status["versions"] == [1, 2] and status["active_version"] == 2
        edit(project / "src" / "hello.erl", "epsilon 2", "epsilon 3")
        proc, doc = deploy(project)
        _ok(proc)
        assert doc["setups"][0]["version"] == 3 and get(url).startswith("epsilon 3")
        assert {n: _image_id(f"{repo}/{pid}/app:v{n}") for n in (1, 2)} == ids  # not overwritten
        _ok(invoke(project, "rollback", "--setup", "app", "--version", "1"))
        assert get(url).startswith("epsilon 1")
    finally:
        stop_and_clean(project)


def test_a_failed_start_leaves_no_created_container(tmp_path: Path, engine_settings: dict[str, Any]) -> None:
    from cri_tasks import engine
    from cri_tasks.errors import EngineError

    # a command that cannot run: docker creates the container, then cannot start it
    name = f"cri-test-badcmd-{os.getpid()}-{time.monotonic_ns()}"
    with pytest.raises(EngineError) as caught:
        engine.run_container(
            BASE_IMAGE, name=name, network="bridge", labels={f"{LABEL}.test": name}, command=["/no/such/program"]
        )
    assert f"could not start container {name}" in str(caught.value)
    assert engine.list_containers({f"{LABEL}.test": name}) == []

    # a host port that is taken: the deploy fails with Docker's reason, and leaves nothing behind
    project = _copy(tmp_path / "f" / "hello", engine_settings, "phi 1")
    pid = _pid(project)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        settings = yaml.safe_load((project / "invoke.yaml").read_text())
        settings["cri"]["publish"] = {"app": {"8000": port}}
        (project / "invoke.yaml").write_text(yaml.safe_dump(settings))
        try:
            proc, _ = deploy(project)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr
            assert f"could not start container cri-{pid}-app-proxy" in proc.stderr, proc.stderr
            left = subprocess.run(
                [
                    "docker",
                    "ps",
                    "-a",
                    "--filter",
                    f"label={LABEL}.project={pid}",
                    "--format",
                    "{{.Names}} {{.Status}}",
                ],
                capture_output=True,
                text=True,
            ).stdout.split("\n")
            assert [line for line in left if line.strip()] == []
            assert _project_images(pid) == {}  # the version never served: its image went too
        finally:
            stop_and_clean(project)
