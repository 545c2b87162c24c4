"""The swarm target (issue 6) against a real single-node Docker Swarm and the real registry on
127.0.0.1:5000: rolling updates with zero failed requests through the front proxy, Swarm's own
rollback of a failing version reported honestly, all-or-nothing deploys of several setups, and
images that the service pulls from the registry by digest.

The swarm is created by these tests (``docker swarm init --advertise-addr 127.0.0.1``) and left
again at the end; an engine that is already in a swarm the tests did not create is never touched
(the tests skip). Every test removes its services, networks, volumes, configs, registry tags and
images.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import IN_CI
from helpers import Client, deploy, edit, get, invoke, rollback_under_load, update_under_load

REGISTRY = os.environ.get("CRI_TEST_REGISTRY", "127.0.0.1:5000")

# ----------------------------------------------------------------------------------------------
# fixtures: a swarm of our own, the registry, a swarm copy of the example


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _swarm_state() -> str:
    return _docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


def _registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI needs it: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def swarm(engine: None) -> Iterator[None]:
    """A single-node swarm made for these tests, left at the end; never someone else's."""
    state = _swarm_state()
    if state != "inactive":
        pytest.skip(
            f"this Docker engine is already in a swarm (state {state!r}) that the tests did not create: "
            "they never touch an existing swarm"
        )
    if not _registry_answers():
        _unavailable(f"no registry answers on {REGISTRY} (run scripts/provision-engine as root)")
    had_gwbridge = _docker("network", "inspect", "docker_gwbridge").returncode == 0
    init = _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    if init.returncode != 0:
        _unavailable(f"docker swarm init failed: {init.stderr.strip()}")
    try:
        yield
    finally:
        _docker("swarm", "leave", "--force")
        if not had_gwbridge:
            for _ in range(20):  # Swarm's bridge goes once the last task's endpoint is gone
                if (
                    _docker("network", "inspect", "docker_gwbridge").returncode != 0
                    or _docker("network", "rm", "docker_gwbridge").returncode == 0
                ):
                    break
                time.sleep(0.5)


def _registry_json(path: str) -> Any:
    with urllib.request.urlopen(f"http://{REGISTRY}{path}", timeout=10) as r:
        return json.loads(r.read().decode())


MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def registry_digest(repo: str, tag: str) -> str | None:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError:
        return None


def remove_registry_tags(repos: list[str]) -> None:
    """Delete every tag of these registry repositories (the test registry allows deletes)."""
    for repo in repos:
        try:
            tags = _registry_json(f"/v2/{repo}/tags/list").get("tags") or []
        except (OSError, ValueError):
            continue  # never pushed
        for tag in tags:
            digest = registry_digest(repo, tag)
            if digest:
                request = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", method="DELETE")
                try:
                    urllib.request.urlopen(request, timeout=10).close()
                except urllib.error.HTTPError:
                    pass


def remove_stack_leftovers(stack: str) -> None:
    """What `invoke stop` should have removed already; made sure of, so no test leaks."""
    services = _docker("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}").stdout.split()
    if services:
        _docker("service", "rm", *services)
    deadline = time.monotonic() + 40
    while (
        time.monotonic() < deadline
        and _docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}").stdout.strip()
    ):
        time.sleep(0.5)
    _docker("stack", "rm", stack)
    for _ in range(20):
        nets = _docker("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}").stdout.split()
        if not nets or _docker("network", "rm", *nets).returncode == 0:
            break
        time.sleep(0.5)


def stack_of(proj: Path) -> str:
    from cri_tasks.model import Project
    from cri_tasks.runtime_plan import project_id

    return f"cri-{project_id(Project(proj / 'zerops.yml', ()))}"


def swarm_settings(engine_settings: dict[str, Any], **swarm: Any) -> dict[str, Any]:
    return {
        **engine_settings,
        "gleam": {"source": "none"},
        "env_file": "project.env",
        "target": "swarm",
        "registry": REGISTRY,
        "stop_timeout": 3,
        "swarm": {"ports": "proxy", "monitor": "2s", "parallelism": 1, **swarm},
    }


@pytest.fixture
def swarm_project(swarm: None, app: Path, engine_settings: dict[str, Any]) -> Iterator[Path]:
    """The example (a copy, from the ``app`` fixture) set up for the swarm target; afterwards its
    services, network, volumes, configs, registry tags and registry-named images are gone."""
    (app / "invoke.yaml").write_text(yaml.safe_dump({"cri": swarm_settings(engine_settings)}))
    # Readiness checked every second (the example says 5 s): swarm tests wait for it per task.
    edit(app / "zerops.yml", "          path: /\n", "          path: /\n        retryPeriod: 1\n")
    yield app
    invoke(app, "stop")
    stack = stack_of(app)
    remove_stack_leftovers(stack)
    for kind in ("volume", "config"):
        names = _docker(kind, "ls", "-q", "--filter", f"label=io.cri-tasks.project={stack[4:]}").stdout.split()
        if names:
            _docker(kind, "rm", *names)
    repository = str(engine_settings["repository"])
    pid = stack[4:]  # images are <repository>/<project id>/<setup> here and in the registry
    remove_registry_tags([f"{repository}/{pid}/app", f"{repository}/{pid}/api", f"{repository}-proxy/{pid}/ubuntu"])
    for repo in (repository, f"{repository}-proxy"):
        refs = _docker(
            "image",
            "ls",
            "--digests",
            "--format",
            "{{.Repository}}@{{.Digest}}",
            "--filter",
            f"reference={REGISTRY}/{repo}/*/*",
        ).stdout.split()
        refs = [r for r in refs if not r.endswith("@<none>")]
        if refs:
            _docker("image", "rm", "-f", *refs)


# ----------------------------------------------------------------------------------------------
# helpers


def service(name: str) -> dict[str, Any]:
    proc = _docker("service", "inspect", name)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def status(proj: Path) -> list[dict[str, Any]]:
    proc = invoke(proj, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["setups"]  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------------------------
# the compose file, without an engine


def test_the_compose_file_carries_every_swarm_choice(tmp_path: Path) -> None:
    from cri_tasks import api
    from cri_tasks.deploy_phase import Version
    from cri_tasks.dockerfile import render
    from cri_tasks.settings import resolve
    from cri_tasks.targets.swarm import SwarmTarget

    (tmp_path / "zerops.yml").write_text(
        """
zerops:
  - setup: web
    run:
      base: gleam@1.5
      ports:
        - port: 8000
          httpSupport: true
      start: ./serve
      healthCheck:
        exec:
          command: test -e /tmp/$ALIVE
        failureTimeout: 6
    deploy:
      temporaryShutdown: true
      readinessCheck:
        httpGet: {port: 8000, path: /ready}
        retryPeriod: 2
        failureTimeout: 20
""".lstrip()
    )
    settings = resolve(
        {
            "target": "swarm",
            "registry": "reg.example:5000",
            "replicas": {"web": 3},
            "swarm": {
                "ports": "mesh",
                "parallelism": 2,
                "monitor": "7s",
                "constraints": {"web": ["node.labels.app == true"]},
            },
        }
    )
    project = api.load(tmp_path / "zerops.yml", settings)
    (setup,) = project.setups
    target = SwarmTarget(project, settings, lambda _l: None)
    text = target._compose(
        setup,
        Version(4, "cri/web:v4", "sha256:" + "0" * 64, "cri/web:abc"),
        "reg.example:5000/cri/web:v4@sha256:" + "1" * 64,
        tmp_path / "env-x",
        "a1b2c3",
        "mesh",
        {8000: 30080},
        3,
        "stop-first",
        target._health(setup),
        None,
    )
    doc = yaml.safe_load(text)
    web = doc["services"]["web"]
    assert web["image"].endswith("@sha256:" + "1" * 64)
    assert web["env_file"] == [str(tmp_path / "env-x")]
    assert web["hostname"] == "web-{{.Task.Slot}}"
    assert web["ports"] == [{"target": 8000, "published": 30080, "protocol": "tcp", "mode": "ingress"}]
    d = web["deploy"]
    assert d["replicas"] == 3 and d["endpoint_mode"] == "vip"
    assert d["placement"]["constraints"] == ["node.labels.app == true"]
    assert d["update_config"] == {
        "parallelism": 2,
        "delay": "0s",
        "order": "stop-first",
        "failure_action": "rollback",
        "monitor": "7000ms",
        "max_failure_ratio": 0,
    }
    assert d["rollback_config"]["order"] == "stop-first"
    hc = web["healthcheck"]
    # readiness until it passed once, then the health check; `$` doubled against interpolation
    assert hc["test"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:8000/ready" in hc["test"][1] and "test -e /tmp/$$ALIVE" in hc["test"][1]
    assert hc["interval"] == "2000ms" and hc["start_period"] == "20000ms" and hc["retries"] == 3
    assert doc["volumes"]["zsc"]["name"].endswith("-web-zsc")  # one execOnce store per service
    assert "environment" not in web  # values only ever travel in the env file

    cfg = render(
        "swarm-haproxy.cfg.j2",
        {"setup": "web", "service": "s_web", "slots": 32, "ports": [{"port": 8000, "mode": "http"}]},
    )
    assert "nameserver dns 127.0.0.11:53" in cfg
    assert "server-template task 32 tasks.s_web:8000" in cfg


def test_settings_the_swarm_target_refuses(tmp_path: Path) -> None:
    from cri_tasks import api
    from cri_tasks.errors import ConfigError
    from cri_tasks.settings import resolve
    from cri_tasks.targets import get

    (tmp_path / "zerops.yml").write_text("zerops:\n  - setup: web\n    run:\n      start: x\n")
    project = api.load(tmp_path / "zerops.yml", None)
    swarm_target = get("swarm")
    with pytest.raises(ConfigError, match="cri.swarm.ports"):
        swarm_target(project, resolve({"swarm": {"ports": "ipvs"}}), lambda _l: None)
    with pytest.raises(ConfigError, match="cri.swarm.monitor"):
        swarm_target(project, resolve({"swarm": {"monitor": "soon"}}), lambda _l: None)
    with pytest.raises(ConfigError, match="cri.registry"):
        swarm_target(project, resolve({"target": "swarm"}), lambda _l: None)._registry()


# ----------------------------------------------------------------------------------------------
# a real swarm


@pytest.mark.engine
def test_two_replicas_update_and_roll_back_without_a_failed_request(swarm_project: Path) -> None:
    app = swarm_project
    settings = yaml.safe_load((app / "invoke.yaml").read_text())
    settings["cri"]["replicas"] = {"default": 2}
    (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
    secret = "s3cr$t value, not for files"
    (app / "project.env").write_text(f"secret={secret}\n")
    edit(app / "zerops.yml", "GREETING: hello", "GREETING: ${secret}")

    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    (first,) = doc["setups"]
    assert first["status"] == "active" and first["version"] == 1 and len(first["containers"]) == 2
    url = first["urls"][0]
    assert get(url) == f"Hello from the BEAM, version 1 ({secret})\n"

    # The service runs the registry's image, pinned by the digest the registry gives for v1.
    stack = stack_of(app)
    repository = yaml.safe_load((app / "invoke.yaml").read_text())["cri"]["repository"]
    pid = stack[4:]
    digest = registry_digest(f"{repository}/{pid}/app", "v1")
    assert digest and digest.startswith("sha256:")
    spec = service(f"{stack}_app")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"{REGISTRY}/{repository}/{pid}/app:v1@{digest}"
    assert spec["Mode"]["Replicated"]["Replicas"] == 2
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["UpdateConfig"]["Parallelism"] == 1 and spec["UpdateConfig"]["Monitor"] == 2_000_000_000
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    proxy = service(f"{stack}_app-proxy")["Spec"]
    assert proxy["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    assert proxy["TaskTemplate"]["ContainerSpec"]["Image"].startswith(f"{REGISTRY}/{repository}-proxy/{pid}/")
    # The secret reached the tasks at run time only: not in the kept compose file, the cache, the output.
    cache = app / ".cri"
    assert not list((cache / "tmp").glob("env-*"))
    for path in cache.rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".cfg", ".log"):
            assert secret not in path.read_text(errors="replace"), path
    assert secret not in proc.stderr

    proc, second = update_under_load(app, url)
    assert "swarm: completed" in proc.stderr

    # Tasks per node and their state.
    (entry,) = status(app)
    assert entry["active_version"] == 2 and entry["service"]["update"]["state"] == "completed"
    assert [(t["status"], t["version"]) for t in entry["containers"]] == [("running", "2"), ("running", "2")]
    assert all(t["node"] for t in entry["containers"])
    assert sum(len(tasks) for tasks in entry["nodes"].values()) == 2
    assert entry["urls"] == [url]
    text = invoke(app, "status").stdout
    assert f"{stack}_app.1" in text and f"{stack}_app.2" in text

    logs = invoke(app, "logs", "--setup", "app")
    assert logs.returncode == 0 and "listening on 8000" in logs.stdout

    # Rollback redeploys the kept version 1 through the same rolling update.
    rollback_under_load(app, url)
    assert (
        service(f"{stack}_app")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        == f"{REGISTRY}/{repository}/{pid}/app:v1@{digest}"
    )


@pytest.mark.engine
def test_a_version_whose_health_check_fails_is_rolled_back_by_swarm(swarm_project: Path) -> None:
    app = swarm_project
    proc, doc = deploy(app)
    assert proc.returncode == 0, proc.stderr
    url = doc["setups"][0]["urls"][0]
    stack = stack_of(app)

    # Version 2 never passes its health check (and has no readiness check to pass first).
    text = (app / "zerops.yml").read_text()
    start = text.index("    deploy:\n      readinessCheck:")
    (app / "zerops.yml").write_text(text[:start])
    edit(
        app / "zerops.yml",
        "      start: ./entrypoint.sh run\n",
        "      start: ./entrypoint.sh run\n      healthCheck:\n        exec:\n          command: exit 1\n"
        "        execPeriod: 1\n        failureTimeout: 2\n",
    )
    edit(app / "src" / "hello.erl", "version 1", "version 2")
    with Client(url) as client:
        proc, _ = deploy(app)
    assert proc.returncode == 1
    assert "[app] DEPLOY_FAILED: Swarm rolled the update of" in proc.stderr, proc.stderr
    assert "unhealthy" in proc.stderr and "the previous version keeps serving" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert client.failures == [] and all("version 1" in b for b in client.bodies)
    assert get(url).startswith("Hello from the BEAM, version 1")
    svc = service(f"{stack}_app")
    assert svc["UpdateStatus"]["State"] == "rollback_completed"
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Labels"]["io.cri-tasks.version"] == "1"
    (entry,) = status(app)
    assert entry["active_version"] == 1 and entry["versions"] == [1]
    assert [t["version"] for t in entry["containers"]] == ["1"]


@pytest.mark.engine
def test_a_first_deploy_that_fails_leaves_nothing_running(swarm_project: Path) -> None:
    app = swarm_project
    edit(app / "zerops.yml", "      start: ./entrypoint.sh run\n", "      start: echo bye-from-start && exit 3\n")
    proc, doc = deploy(app)
    assert proc.returncode == 1
    assert "[app] DEPLOY_FAILED: task" in proc.stderr and "of version 1 failed" in proc.stderr, proc.stderr
    assert "bye-from-start" in proc.stderr and "Traceback" not in proc.stderr
    assert (doc["setups"][0]["status"], doc["setups"][0]["error"]) == ("failed", "DEPLOY_FAILED")
    stack = stack_of(app)
    label = f"label=com.docker.stack.namespace={stack}"
    assert _docker("service", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert _docker("network", "ls", "-q", "--filter", label).stdout.strip() == ""
    (entry,) = status(app)
    assert entry["active_version"] is None and entry["containers"] == [] and entry["service"] is None


TWO_SETUPS = """
zerops:
  - setup: app
    build: &build
      base: gleam@1.5
      os: ubuntu
      buildCommands:
        - mkdir -p build/erlang-shipment/hello/ebin
        - erlc -o build/erlang-shipment/hello/ebin src/hello.erl
        - cp entrypoint.sh build/erlang-shipment/
      deployFiles: build/erlang-shipment/~
    run: &run
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - sudo apt-get update -qq
        - sudo apt-get install -y -qq --no-install-recommends curl
      ports:
        - port: 8000
          httpSupport: true
      envVariables:
        GREETING: hello
      start: ./entrypoint.sh run
    deploy:
      readinessCheck:
        httpGet: {port: 8000, path: /}
        retryPeriod: 1
  - setup: api
    build: *build
    run: *run
    deploy:
      readinessCheck:
        httpGet: {port: 8000, path: /}
        retryPeriod: 1
"""


@pytest.mark.engine
def test_two_setups_deploy_all_or_nothing(swarm_project: Path, engine_settings: dict[str, Any]) -> None:
    proj = swarm_project
    (proj / "zerops.yml").write_text(TWO_SETUPS.lstrip())
    # ports: auto finds out once whether the routing mesh works here (it does not on kernels
    # without IPVS, where the front proxy is used) and remembers it.
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"cri": swarm_settings(engine_settings, ports="auto")}))
    proc, doc = deploy(proj)
    assert proc.returncode == 0, proc.stderr
    assert "swarm.ports auto:" in proc.stderr and proc.stderr.count("checking once") == 1
    urls = {r["setup"]: r["urls"][0] for r in doc["setups"]}
    assert all(r["version"] == 1 for r in doc["setups"])
    assert all(get(u).startswith("Hello from the BEAM, version 1") for u in urls.values())

    # Version 2 of both; api's never gets ready: Swarm rolls api back, cri-tasks returns app.
    edit(proj / "src" / "hello.erl", "version 1", "version 2")
    text = (proj / "zerops.yml").read_text()
    api_at = text.index("  - setup: api")
    text = text[:api_at] + text[api_at:].replace(
        "httpGet: {port: 8000, path: /}\n        retryPeriod: 1",
        "httpGet: {port: 8001, path: /}\n        retryPeriod: 1\n        failureTimeout: 2",
    )
    (proj / "zerops.yml").write_text(text)
    with Client(urls["app"]) as client:
        proc, doc = deploy(proj)
    assert proc.returncode == 1
    assert "checking once" not in proc.stderr  # the answer was remembered
    results = {r["setup"]: r for r in doc["setups"]}
    assert (results["api"]["status"], results["api"]["error"]) == ("failed", "DEPLOY_FAILED")
    assert results["app"]["status"] == "rolled back" and results["app"]["version"] == 1
    assert "[api] DEPLOY_FAILED: Swarm rolled the update of" in proc.stderr
    assert "[app] returned to version 1 because api failed" in proc.stderr
    assert client.failures == []
    assert client.bodies[-1].startswith("Hello from the BEAM, version 1")
    for u in urls.values():
        assert get(u).startswith("Hello from the BEAM, version 1")
    assert {e["setup"]: e["active_version"] for e in status(proj)} == {"app": 1, "api": 1}
