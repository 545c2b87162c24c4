"""Deploy and run-time behaviour on the real engine for real projects' zerops.yml files: no
readiness gate without a readinessCheck, references that name nothing kept as written, rollback
to a version's own run configuration, zsc, health checks, crontab (issue 15)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import TASKS_PY, deploy, get, invoke, stop_and_clean

pytestmark = pytest.mark.engine

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "zerops-yml"
GLEAM_RECIPE = CORPUS / "zerops-recipe-apps__gleam-hello-world-app__zerops.yaml.yml"


def sh(container: str, script: str, user: str = "zerops") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", "-u", user, container, "sh", "-c", script], capture_output=True, text=True)


def env_of(container: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", container], capture_output=True, text=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in json.loads(out))


@pytest.fixture
def recipe(tmp_path: Path, engine_settings: dict[str, Any]) -> Iterator[Path]:
    """The official Gleam recipe's project, its zerops.yaml unmodified (the Gleam compiler is
    the stand-in archive of the test settings)."""
    if not GLEAM_RECIPE.exists():
        pytest.skip("the zerops.yml corpus is not next to the repository")
    proj = tmp_path / "gleamrecipe"
    (proj / "src").mkdir(parents=True)
    shutil.copyfile(GLEAM_RECIPE, proj / "zerops.yaml")
    (proj / "src" / "app.gleam").write_text("pub fn main() { Nil }\n")
    (proj / "gleam.toml").write_text('name = "app"\nversion = "1.0.0"\n')
    (proj / "manifest.toml").write_text("packages = []\n")
    (proj / "migrate.sh").write_text("echo migrated\n")
    (proj / "tasks.py").write_text(TASKS_PY)
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": dict(engine_settings)}))
    yield proj
    stop_and_clean(proj)


def test_the_gleam_recipes_dev_setup_deploys_without_a_readiness_gate(recipe: Path) -> None:
    started = time.monotonic()
    proc, doc = deploy(recipe, "--setup", "dev")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    (entry,) = doc["setups"]
    assert entry["status"] == "active" and entry["version"] == 1
    # no readinessCheck: the idle container (zsc noop, nothing on port 3000) got traffic at once
    assert "readiness check did not pass" not in proc.stderr
    assert "front proxy now sends traffic to version 1" in proc.stderr
    # ${db_hostname} and the other services' variables name nothing here: kept, with a warning
    assert "zerops[1].run.envVariables.DB_HOST: ${db_hostname} names no variable: it stays as written" in proc.stderr
    (container,) = entry["containers"]
    env = env_of(container)
    assert env["DB_HOST"] == "${db_hostname}" and env["DB_NAME"] == "db" and env["HOME"] == "/home/zerops"
    assert env["ZEROPS_appVersionId"] == env["appVersionId"]
    # the execOnce init command ran (gleam deps download && gleam run -m migrate)
    assert sh(container, "ls /var/www").stdout.split() == [
        "gleam.toml",
        "manifest.toml",
        "migrate.sh",
        "src",
        "zerops.yaml",
    ]
    print(f"deploy of the recipe's dev setup: {seconds:.1f} s")

    # zsc, the real script in the real container (user zerops, as the recipe's commands run)
    ok = sh(container, "zsc add gleam@1.5")
    assert ok.returncode == 0 and "gleam 1.5.1 is installed" in ok.stdout, ok
    other = sh(container, "zsc add gleam@1.4")
    assert other.returncode == 1 and "this image has gleam 1.5.1" in other.stderr, other
    go = sh(container, "zsc add go@latest")
    assert go.returncode == 2 and "cannot install go" in go.stderr, go
    scale = sh(container, "zsc scale cpu 2 1h")
    assert scale.returncode == 2 and "not available on a local engine" in scale.stderr, scale
    proxy = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            "label=io.cri-tasks.role=proxy",
            "--filter",
            "label=io.cri-tasks.setup=dev",
            "--filter",
            f"label=io.cri-tasks.project={env['projectId']}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    reach = sh(container, f"zsc test tcp {proxy[0]}:3000 --timeout 5s")
    assert reach.returncode == 0 and "ok" in reach.stdout, reach
    closed = sh(container, "zsc test tcp 127.0.0.1:1 --timeout 2s")
    assert closed.returncode == 1 and "no connection within 2 s" in closed.stderr, closed
    rendered = sh(
        container,
        "mkdir -p /tmp/tpl/sub && printf 'db={{.DB_NAME}} home={{ .HOME }} x={{.NOPE}}\\n' > /tmp/tpl/sub/a.conf"
        " && printf 'echo hi\\n' > /tmp/tpl/run.sh.0755 && zsc env-replace /tmp/tpl /tmp/out -s"
        " && cat /tmp/out/sub/a.conf && stat -c %a /tmp/out/run.sh && cat /tmp/tpl/sub/a.conf",
    )
    assert rendered.returncode == 0, rendered
    assert rendered.stdout == "db=db home=/home/zerops x=\n755\ndb={{.DB_NAME}} home={{ .HOME }} x={{.NOPE}}\n"
    node = sh(container, "sudo -E zsc install nodejs@22")
    # Debian's own packages are not Node.js 22: it fails loudly, naming what it got
    assert node.returncode == 1 and "cri-tasks cannot install that version here" in node.stderr, node


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_rollback_brings_back_the_run_configuration_the_version_was_deployed_with(app: Path) -> None:
    from helpers import edit

    secret = "s3cr3t-" + app.parent.name[-6:]
    (app / "project.env").write_text(f"API_TOKEN={secret}\n")
    edit(app / "zerops.yml", "GREETING: hello", "GREETING: hello ${API_TOKEN}")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    assert get(url, "/env") == f"hello {secret}\n"
    # version 2: another value, another start command
    edit(app / "zerops.yml", "GREETING: hello ${API_TOKEN}", "GREETING: two")
    edit(app / "zerops.yml", "start: ./entrypoint.sh run", "start: touch /tmp/started-v2 && ./entrypoint.sh run")
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    assert get(url, "/env") == "two\n"
    assert sh(doc["setups"][0]["containers"][0], "test -f /tmp/started-v2").returncode == 0
    # the project env file changes between the deploy and the rollback: read again at activation
    (app / "project.env").write_text("API_TOKEN=rotated\n")
    rolled = invoke(app, "rollback", "--setup", "app", "--json")
    assert rolled.returncode == 0, rolled.stderr
    (back,) = json.loads(rolled.stdout)["setups"]
    assert back["version"] == 1
    assert get(url, "/env") == "hello rotated\n"  # version 1's envVariables, not today's "two"
    assert get(url).startswith("Hello from the BEAM, version 1")
    assert sh(back["containers"][0], "test -f /tmp/started-v2").returncode == 1  # version 1's start
    # the records keep zerops.yml's values, never a project env-file value
    cache = Path(yaml.safe_load((app / "invoke.yaml").read_text())["cri"]["cache_dir"])
    assert _files_holding(cache, secret.encode()) == [] and _files_holding(cache, b"rotated") == []
    assert _files_holding(cache, b"hello ${API_TOKEN}") != []


def test_exec_once_runs_a_fixed_key_once_ever_and_a_version_key_once_per_version(app: Path) -> None:
    from helpers import edit

    settings = yaml.safe_load((app / "invoke.yaml").read_text())
    settings["cri"]["replicas"] = {"app": 2}
    (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
    edit(
        app / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      initCommands:\n"
        "        - zsc execOnce -v wpinit -- sh -c 'echo fixed >> /var/lib/zsc/test-runs'\n"
        "        - zsc execOnce ${ZEROPS_appVersionId} --retryUntilSuccessful -- sh -c 'echo v$appVersionNumber >> /var/lib/zsc/test-runs'\n"
        "      start: ./entrypoint.sh run\n",
    )

    def runs(container: str) -> list[str]:
        return sh(container, "cat /var/lib/zsc/test-runs").stdout.split()

    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    first, second = doc["setups"][0]["containers"]
    assert runs(first) == runs(second) == ["fixed", "v1"]  # once across the two containers
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    assert runs(doc["setups"][0]["containers"][0]) == ["fixed", "v1", "v2"]  # "wpinit" did not run again
    rolled = invoke(app, "rollback", "--setup", "app", "--json")
    assert rolled.returncode == 0, rolled.stderr
    back = json.loads(rolled.stdout)["setups"][0]["containers"][0]
    assert runs(back) == ["fixed", "v1", "v2"]  # version 1's key ran already: nothing again
    logs = subprocess.run(["docker", "logs", back], capture_output=True, text=True).stdout
    assert "already run successfully; skipping" in logs


def _restarts(container: str) -> int:
    return int(
        subprocess.run(
            ["docker", "inspect", "--format", "{{.RestartCount}}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def _wait(what: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.25)
    return False


def test_health_check_takes_containers_out_of_rotation_and_restarts_them(app: Path) -> None:
    from helpers import Client, edit

    settings = yaml.safe_load((app / "invoke.yaml").read_text())
    settings["cri"]["replicas"] = {"app": 2}
    (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
    # an exec check on a file the app's start creates; short periods to keep the test short
    edit(
        app / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      healthCheck:\n        exec:\n          command: test -f /tmp/alive\n"
        "        execPeriod: 1\n        failureTimeout: 3\n"
        "      start: touch /tmp/alive && ./entrypoint.sh run\n",
    )
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    one, two = doc["setups"][0]["containers"]
    policy = subprocess.run(
        ["docker", "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", one],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert policy == "unless-stopped"
    with Client(url) as client:
        # the health check starts failing in one container: restarted, then serving again
        assert sh(one, "rm /tmp/alive").returncode == 0
        assert _wait(lambda: _restarts(one) >= 1, 20), "the unhealthy container was not restarted"
        # the app process of the other crashes: the container is started again
        # 137: the container went down with its app before `docker exec` could report pkill's exit
        assert sh(two, "pkill -KILL -x beam.smp", user="root").returncode in (0, 137)
        assert _wait(lambda: _restarts(two) >= 1, 20), "the crashed container was not restarted"
        assert _wait(
            lambda: sh(one, "test -f /tmp/alive").returncode == 0 and sh(two, "test -f /tmp/alive").returncode == 0, 20
        )
        time.sleep(2)
    assert client.failures == [], client.failures[:3]  # the proxy sent no request to a container that was down
    logs = subprocess.run(["docker", "logs", one], capture_output=True, text=True).stderr
    assert "run.healthCheck failed for 3 s: restarting the container" in logs
    assert get(url).startswith("Hello from the BEAM, version 1")


def test_an_http_health_check_takes_a_container_that_stops_answering_out_of_rotation(app: Path) -> None:
    from helpers import edit

    settings = yaml.safe_load((app / "invoke.yaml").read_text())
    settings["cri"]["replicas"] = {"app": 2}
    (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
    edit(
        app / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      healthCheck:\n        httpGet:\n          port: 8000\n          path: /health\n"
        "        execPeriod: 1\n        disconnectTimeout: 2\n        failureTimeout: 60\n"
        "      start: ./entrypoint.sh run\n",
    )
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    one, _two = doc["setups"][0]["containers"]
    # a frozen container still accepts TCP connections (the kernel does) but never answers:
    # only an HTTP check can tell; the proxy's timeouts are 60 s, the client's 5 s
    subprocess.run(["docker", "pause", one], check=True, capture_output=True)
    try:
        time.sleep(5)  # disconnectTimeout plus a check's own timeout
        started = time.monotonic()
        bodies = [get(url) for _ in range(10)]
        assert all(b.startswith("Hello from the BEAM") for b in bodies)
        assert time.monotonic() - started < 5
    finally:
        subprocess.run(["docker", "unpause", one], capture_output=True)


def test_crontab_jobs_run_in_the_app_containers_on_their_schedule(app: Path) -> None:
    from helpers import edit

    settings = yaml.safe_load((app / "invoke.yaml").read_text())
    settings["cri"]["replicas"] = {"app": 2}
    (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
    edit(
        app / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      crontab:\n"
        "        - timing: '*/5 * * * *'\n          command: pwd > /tmp/cron-every5; echo \"$GREETING\" >> /tmp/cron-every5\n"
        "          allContainers: true\n          workingDir: /tmp\n"
        "        - timing: '0 3 * * *'\n          command: hostname > /tmp/cron-nightly\n          allContainers: false\n"
        "      start: ./entrypoint.sh run\n",
    )
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    one, two = doc["setups"][0]["containers"]
    for c in (one, two):
        # the minute loop runs beside the app (its shell's command line names it)
        assert "cri-cron loop" in sh(c, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
    # one tick for 03:00 on a Tuesday, in each container: the script the loop runs every minute
    for c in (one, two):
        ran = sh(c, "cri-cron tick 0 3 1 12 2")
        assert ran.returncode == 0, ran
        assert sh(c, "cat /tmp/cron-every5").stdout == "/tmp\nhello\n"  # workingDir, the app's env
    assert sh(one, "cat /tmp/cron-nightly").stdout.strip() == "app-1"  # allContainers: false
    assert sh(two, "test -e /tmp/cron-nightly").returncode == 1
    # 03:01: nothing is due
    assert (
        sh(one, "rm /tmp/cron-every5 /tmp/cron-nightly && cri-cron tick 1 3 1 12 2 && ls /tmp/cron-*").returncode != 0
    )
