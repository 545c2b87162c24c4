"""Build and deploy against the real engine: fresh containers behind the front proxy, zero
downtime, failures that leave the previous version serving, rollback (section 3)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import Client, deploy, edit, get, invoke, rollback_under_load, stop_and_clean, update_under_load

pytestmark = pytest.mark.engine


def test_deploys_the_example_and_switches_versions_without_a_failed_request(app: Path) -> None:
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    (first,) = doc["setups"]
    url = first["urls"][0]
    assert first["status"] == "active" and first["version"] == 1
    assert get(url) == "Hello from the BEAM, version 1 (hello)\n"

    proc, second = update_under_load(app, url)
    # An app-only change does not rebuild the custom runtime image.
    assert second["runtime_image"] == first["runtime_image"]
    assert "building runtime image" not in proc.stderr

    rollback_under_load(app, url)

    status = json.loads(invoke(app, "status", "--json").stdout)["setups"][0]
    assert status["active_version"] == 1 and status["versions"] == [1, 2]
    assert [c["status"] for c in status["containers"]] == ["running"]
    logs = invoke(app, "logs", "--setup", "app")
    assert "listening on 8000" in logs.stdout

    stopped = invoke(app, "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    after = json.loads(invoke(app, "status", "--json").stdout)["setups"][0]
    assert after["containers"] == [] and after["versions"] == [1, 2]  # stopped, versions kept
    with pytest.raises(OSError):
        get(url)


def test_a_version_that_never_gets_ready_fails_and_the_old_one_keeps_serving(app: Path) -> None:
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    edit(
        app / "zerops.yml",
        "          path: /\n",
        "          path: /\n        retryPeriod: 1\n        failureTimeout: 4\n",
    )
    edit(app / "zerops.yml", "          port: 8000\n          path: /", "          port: 8001\n          path: /")
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    with Client(url) as client:
        proc, _ = deploy(app)
    assert proc.returncode == 1
    assert "[app] DEPLOY_FAILED" in proc.stderr and "readiness check did not pass within 4 s" in proc.stderr
    assert "the previous version keeps serving" in proc.stderr and "Traceback" not in proc.stderr
    assert client.failures == [] and all("version 1" in b for b in client.bodies)
    assert get(url).startswith("Hello from the BEAM, version 1")
    names = json.loads(invoke(app, "status", "--json").stdout)["setups"][0]["containers"]
    assert [c["version"] for c in names] == ["1"]  # the failed version's containers are gone


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                "      start: ./entrypoint.sh run\n",
                "      initCommands:\n        - echo init-out && exit 9\n      start: ./entrypoint.sh run\n",
            ),
            "run.initCommands[0] failed with exit code 9",
        ),
        (
            ("      start: ./entrypoint.sh run\n", "      start: echo bye && exit 3\n"),
            "exited (code 3) before it was ready",
        ),
    ],
    ids=["init command fails", "start command exits"],
)
def test_a_failing_init_or_start_fails_the_deploy_with_the_container_log(
    app: Path, change: tuple[str, str], message: str
) -> None:
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    edit(app / "zerops.yml", *change)
    proc, _ = deploy(app)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert get(url).startswith("Hello from the BEAM, version 1")


def test_temporary_shutdown_stops_the_old_version_first(app: Path) -> None:
    edit(app / "zerops.yml", "    deploy:\n", "    deploy:\n      temporaryShutdown: true\n")
    assert deploy(app)[0].returncode == 0
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    assert "temporaryShutdown: stopping 1 old container(s) first" in proc.stderr
    assert get(doc["setups"][0]["urls"][0]).startswith("Hello from the BEAM, version 2")


FEATURES = """
zerops:
  - setup: web
    build:
      base: gleam@1.5
      os: ubuntu
      buildCommands:
        - |
          mkdir -p dist/public build/packages
          if [ -f build/packages/dep.txt ]; then echo cached > dist/public/cache.txt; else echo fresh > dist/public/cache.txt; fi
          echo dep > build/packages/dep.txt
        - cp config.tmpl dist/public/config.txt && echo x > dist/public/debug.log
        - echo "$BUILD_GREETING" > dist/public/build-env.txt
      deployFiles:
        - dist/~public
      cache:
        - build/packages
      envVariables:
        BUILD_GREETING: hi-from-build
    run:
      base: gleam@1.5
      os: ubuntu
      envVariables:
        GREETING: hello ${name}
        name: world
      envReplace:
        delimiter: "%%"
        target: public/config.txt
      initCommands:
        - zsc execOnce ${appVersionId} -- sh -c 'echo ran >> /var/lib/zsc/runs; hostname >> /var/lib/zsc/who'
      start: zsc noop
"""


def test_build_and_run_features_each_do_what_the_reference_says(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    proj = tmp_path / "feat"
    proj.mkdir()
    (proj / "zerops.yml").write_text(FEATURES.lstrip())
    (proj / "config.tmpl").write_text("greeting=%%GREETING%%\nkeep=%%UNKNOWN%%\n")
    (proj / "secret.log").write_text("x")  # .deployignore keeps it out of the artifact only
    (proj / ".deployignore").write_text("*.log\n")
    (proj / "tasks.py").write_text("from cri_tasks import collection\nns = collection()\n")
    settings = {**engine_settings, "gleam": {"source": "none"}, "replicas": {"web": 2}}
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": settings}))
    try:
        proc, doc = deploy(proj)
        assert proc.returncode == 0, proc.stderr
        containers = doc["setups"][0]["containers"]
        assert len(containers) == 2

        def sh(container: str, script: str) -> str:
            return subprocess.run(
                ["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True, check=True
            ).stdout

        c1 = containers[0]
        # deployFiles "dist/~public" lands as /var/www/public; .deployignore drops *.log
        assert (
            sh(c1, "cd /var/www && find . -type f | sort")
            == "./public/build-env.txt\n./public/cache.txt\n./public/config.txt\n"
        )
        # a multi-line build command ran as one shell; the build env came in
        assert sh(c1, "cat /var/www/public/cache.txt /var/www/public/build-env.txt") == "fresh\nhi-from-build\n"
        # envReplace with ${name} references resolved; unknown placeholders stay
        assert sh(c1, "cat /var/www/public/config.txt") == "greeting=hello world\nkeep=%%UNKNOWN%%\n"
        # zsc execOnce ran once across the two containers
        assert sh(c1, "cat /var/lib/zsc/runs") == "ran\n"
        assert sh(containers[1], "cat /var/lib/zsc/runs") == "ran\n"
        # build.cache: the second build finds the cached folder
        (proj / "config.tmpl").write_text("greeting=%%GREETING%%!\n")
        proc, doc = deploy(proj)
        assert proc.returncode == 0, proc.stderr
        c2 = doc["setups"][0]["containers"][0]
        assert sh(c2, "cat /var/www/public/cache.txt") == "cached\n"
        # ... and says so in the build log (a source change, so that the restore step runs)
        (proj / "config.tmpl").write_text("greeting=%%GREETING%%!!\n")
        log = Path(json.loads(invoke(proj, "build", "--json").stdout)["setups"][0]["log"]).read_text()
        assert "cri: build cache restored: build/packages\n" in log.replace("\r", "")
        # the build env value never lands in the app image
        history = subprocess.run(
            ["docker", "history", "--no-trunc", doc["setups"][0]["image"]], capture_output=True, text=True
        ).stdout
        assert "hi-from-build" not in history
    finally:
        stop_and_clean(proj)


def test_an_unknown_env_reference_stays_as_written_until_the_project_env_file_names_it(app: Path) -> None:
    edit(app / "zerops.yml", "GREETING: hello", "GREETING: ${db_hostname}")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    assert "run.envVariables.GREETING: ${db_hostname} names no variable: it stays as written" in proc.stderr
    url = doc["setups"][0]["urls"][0]
    assert get(url, "/env") == "${db_hostname}\n"  # as on Zerops: the reference, literally
    (app / "project.env").write_text("db_hostname=db.internal\n")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    assert "names no variable" not in proc.stderr
    assert get(url, "/env") == "db.internal\n"


def test_a_container_stops_on_sigterm_instead_of_waiting_for_sigkill(app: Path) -> None:
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    container = doc["setups"][0]["containers"][0]
    subprocess.run(["docker", "stop", "--time", "30", container], capture_output=True, check=True)
    code = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.ExitCode}}", container], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert code != "137", "the container needed SIGKILL: SIGTERM did not reach the app"
