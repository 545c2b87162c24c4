"""Work folders shared by processes, against the real engine: a build and a deploy of one setup
at once take turns on ``<cache>/build/<setup>`` (the one that waits says so), and what a
killed build leaves (staged contexts, a build folder) is removed at the next run, never while
a live process still uses it. Build secrets never reach the disk."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import buildx_processes, edit, get, invoke, make_project, start_invoke, wait_for_log

pytestmark = pytest.mark.engine

WAITING = "waiting for another cri-tasks process (a build or deploy of app) that uses"


def kill_orphans(cache: Path) -> None:
    """The buildx a SIGKILLed task leaves running (its command line names our cache folder)."""
    for pid in buildx_processes(str(cache)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def files_holding(cache: Path, secret: bytes) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


def test_a_build_and_a_deploy_of_one_setup_at_once_take_turns(app: Path, engine_settings: dict[str, Any]) -> None:
    edit(
        app / "zerops.yml",
        "        - cp entrypoint.sh build/erlang-shipment/\n",
        "        - cp entrypoint.sh build/erlang-shipment/\n        - sleep 4\n",
    )
    # env files a killed deploy left: this setup's go, another setup's are not this deploy's to judge
    tmp = Path(str(engine_settings["cache_dir"])) / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "env-app.k1ll3d").write_text("API_TOKEN=left-behind\n")
    (tmp / "env-app-2.k1ll3d").write_text("API_TOKEN=not-ours\n")
    build = start_invoke(app, "build")
    deploy = start_invoke(app, "deploy", "--json")
    (_, build_err), (deploy_out, deploy_err) = build.communicate(timeout=600), deploy.communicate(timeout=600)
    assert build.returncode == 0, build_err
    assert deploy.returncode == 0, deploy_err
    for err in (build_err, deploy_err):
        assert "Traceback" not in err and "SameFileError" not in err and "not reachable" not in err
    waited = [err for err in (build_err, deploy_err) if WAITING in err]
    assert len(waited) == 1, (build_err, deploy_err)  # exactly one of them waited, and said for what
    url = json.loads(deploy_out)["setups"][0]["urls"][0]
    assert get(url).startswith("Hello from the BEAM, version 1")
    assert sorted(p.name for p in tmp.glob("env-*")) == ["env-app-2.k1ll3d"]


def test_a_build_killed_mid_way_leaves_no_secret_on_disk_and_the_next_run_removes_its_work(
    app: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    cache = Path(str(engine_settings["cache_dir"]))
    secret = f"s3cr3t-{unique}"
    (app / "project.env").write_text(f"API_TOKEN={secret}\n")
    edit(
        app / "zerops.yml",
        "      deployFiles: build/erlang-shipment/~\n",
        "      deployFiles: build/erlang-shipment/~\n      envVariables:\n        BUILD_TOKEN: ${API_TOKEN}\n",
    )
    edit(
        app / "zerops.yml",
        "        - cp entrypoint.sh build/erlang-shipment/\n",
        '        - cp entrypoint.sh build/erlang-shipment/\n        - test -n "$BUILD_TOKEN" && echo building-now && sleep 60\n',
    )
    proc = start_invoke(app, "build")
    try:
        wait_for_log(app, cache, "building-now", timeout=300, phase="build")
        # the secrets reached the build command, and no file of the cache folder holds them
        assert list(cache.rglob("build-env")) == []
        assert files_holding(cache, secret.encode()) == []
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    finally:
        kill_orphans(cache)
    work = cache / "build" / "app"
    assert (work / "context").is_dir()  # the killed build's staged source is still there
    edit(app / "zerops.yml", " && sleep 60", "")
    again = invoke(app, "build")
    assert again.returncode == 0, again.stderr
    assert not (work / "context").exists() and list(cache.rglob("build-env")) == []
    assert (work / "artifact" / "hello" / "ebin" / "hello.beam").is_file()
    assert files_holding(cache, secret.encode()) == []


TWO = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo app-{marker}
        - echo "step-$(id -un)" && sleep 60
  - setup: web
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo web-{marker}
"""


def test_a_live_build_keeps_its_context_and_a_killed_ones_is_removed_at_the_next_run(
    tmp_path: Path, engine_settings: dict[str, Any], unique: str
) -> None:
    project = make_project(tmp_path / "p", TWO.format(marker=unique), settings=engine_settings)
    cache = Path(str(engine_settings["cache_dir"]))
    slow = start_invoke(project, "prepare", "--setup", "app")
    try:
        wait_for_log(project, cache, "step-zerops", timeout=300)
        (context,) = (cache / "context").iterdir()
        assert context.name.startswith("app-") and context.name.endswith(f"-{slow.pid}")
        # another process builds (and sweeps leftovers) meanwhile: the live context stays
        other = invoke(project, "prepare", "--setup", "web", "--force")
        assert other.returncode == 0, other.stderr
        assert context.is_dir() and slow.poll() is None
        slow.send_signal(signal.SIGKILL)
        slow.communicate()
    finally:
        kill_orphans(cache)
    assert context.is_dir()  # left behind by the kill
    again = invoke(project, "prepare", "--setup", "web", "--force")
    assert again.returncode == 0, again.stderr
    assert list((cache / "context").iterdir()) == []
