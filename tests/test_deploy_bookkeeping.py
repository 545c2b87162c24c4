"""The deploy phase's bookkeeping against a fake target, without the engine: which versions are
kept, which one a rollback chooses, what an all-or-nothing deploy does after a failure, and the
readiness and health check commands the targets build. The engine tests (test_deploy_engine.py,
test_swarm_engine.py) show the same with real containers.

The fake target implements :class:`cri_tasks.targets.Target`; the engine's few image questions
are answered from the test's own table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from helpers import make_project

from cri_tasks import deploy_phase, engine
from cri_tasks.deploy_phase import DeployFailed, DeployResult, HealthTimings, Version, check_command, deploy_error
from cri_tasks.errors import CriError
from cri_tasks.loader import load_project
from cri_tasks.model import HttpGet, Project, Setup
from cri_tasks.settings import Settings, resolve
from cri_tasks.store import Store
from cri_tasks.targets import Activation, Target
from cri_tasks.targets.local import LocalTarget
from cri_tasks.targets.swarm import SwarmTarget

NO_SELF = cast(Any, None)  # the health check builders read only the setup

THREE_SETUPS = "zerops:\n" + "".join(f"  - setup: {name}\n    run:\n      start: ./run\n" for name in ("a", "b", "c"))


class FakeTarget:
    """A target that runs nothing and remembers what it was asked (class-wide: deploy_phase
    creates a fresh instance per call)."""

    all_or_nothing: ClassVar[bool] = False
    calls: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, project: Project, settings: Settings, report: Any, workspace: Any = None) -> None:
        self.project = project

    def activate(self, setup: Setup, version: Version, env: dict[str, str], *, previous: Version | None) -> Activation:
        self.calls.append(("activate", setup.name, version.number, previous.number if previous else None))
        return Activation(containers=[f"{setup.name}-v{version.number}"], urls=[], switch=None)

    def running_version(self, setup: Setup, recorded: int | None) -> int | None:
        return None  # cannot tell: the records stay as they are

    def status(self, setup: Setup) -> dict[str, Any]:
        return {}

    def container_names(self, setup: Setup) -> list[str]:
        return []

    def logs(self, setup: Setup, *, tail: int | None = 100) -> list[tuple[str, str]]:
        return []

    def follow_logs(self, setup: Setup, *, tail: int = 50) -> int:
        return 0

    def stop(self, setup: Setup) -> list[str]:
        self.calls.append(("stop", setup.name))
        return [f"{setup.name}-container"]


class AllOrNothingTarget(FakeTarget):
    all_or_nothing: ClassVar[bool] = True


def _is_a_target(cls: type[Target]) -> type[Target]:
    """mypy reads this as a check that the fakes have the protocol's members."""
    return cls


_is_a_target(FakeTarget)
_is_a_target(AllOrNothingTarget)


@pytest.fixture
def images(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """tag -> image id, as the engine would answer; no app image carries the project's labels."""
    table: dict[str, str] = {}
    monkeypatch.setattr(engine, "image_ids", lambda refs: {r: table.get(r) for r in refs})
    monkeypatch.setattr(engine, "list_images", lambda labels: [])
    monkeypatch.setattr(engine, "image_references", lambda repo: [])
    FakeTarget.calls = []
    return table


def _project(tmp_path: Path, yml: str = THREE_SETUPS) -> Project:
    return load_project(make_project(tmp_path / "p", yml) / "zerops.yml")


def _versions(
    settings: Settings, project: Project, setup: str, numbers: list[int], active: int | None, images: dict[str, str]
) -> None:
    """The setup's deploy record with these versions, their tags known to the fake engine."""
    kept = []
    for n in numbers:
        version = Version(n, f"cri/p/{setup}:v{n}", f"sha256:{setup}{n}", "rt")
        images[version.image] = version.image_id
        kept.append(version.as_json())
    with Store(settings.cache_path(project.root)) as store:
        store.set(f"deploy/{setup}", {"next": max(numbers, default=0) + 1, "versions": kept, "active": active})


def _record(settings: Settings, project: Project, setup: str) -> dict[str, Any]:
    with Store(settings.cache_path(project.root)) as store:
        return dict(store.get(f"deploy/{setup}") or {})


def _use(monkeypatch: pytest.MonkeyPatch, target: type[FakeTarget]) -> None:
    monkeypatch.setattr(deploy_phase, "get", lambda name: target)


# -- which versions are kept ------------------------------------------------------------------


def _rec(numbers: list[int], active: int | None) -> dict[str, Any]:
    return {"versions": [Version(n, f"img:v{n}", f"sha256:{n}", "rt").as_json() for n in numbers], "active": active}


def test_trimming_keeps_the_newest_versions_and_the_active_one() -> None:
    rec = _rec([5, 1, 3, 2, 4], active=2)
    assert deploy_phase._trim(rec, 2) == ["img:v1", "img:v3"]
    assert [v["version"] for v in rec["versions"]] == [2, 4, 5]  # the active one stays, though older


def test_trimming_drops_nothing_while_the_versions_fit() -> None:
    rec = _rec([1, 2, 3], active=3)
    assert deploy_phase._trim(rec, 3) == [] and [v["version"] for v in rec["versions"]] == [1, 2, 3]
    assert deploy_phase._trim(rec, 1) == ["img:v1", "img:v2"] and [v["version"] for v in rec["versions"]] == [3]


# -- which version a rollback activates -------------------------------------------------------


def test_a_rollback_activates_the_version_before_the_active_one(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, FakeTarget)
    _versions(settings, project, "a", [1, 2, 4], active=4, images=images)
    result = deploy_phase.rollback(project, settings, setup="a", version=None, report=lambda _line: None)
    assert (result.status, result.version, result.image, result.containers) == ("ACTIVE", 2, "cri/p/a:v2", ["a-v2"])
    assert FakeTarget.calls == [("activate", "a", 2, 4)]
    assert _record(settings, project, "a")["active"] == 2
    # and an explicit version, even a newer one than the active
    deploy_phase.rollback(project, settings, setup="a", version=4, report=lambda _line: None)
    assert FakeTarget.calls[-1] == ("activate", "a", 4, 2) and _record(settings, project, "a")["active"] == 4


@pytest.mark.parametrize(
    ("numbers", "active", "version", "message"),
    [
        ([], None, None, r"\[a\] nothing deployed yet"),
        ([1, 2], 1, None, r"\[a\] no version before the active one \(1\) is kept"),
        ([1, 2], 2, 9, r"\[a\] version 9 is not kept \(kept: 1, 2\)"),
    ],
)
def test_a_rollback_without_that_version_says_what_is_kept(
    tmp_path: Path,
    images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    numbers: list[int],
    active: int | None,
    version: int | None,
    message: str,
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, FakeTarget)
    _versions(settings, project, "a", numbers, active=active, images=images)
    with pytest.raises(CriError, match=message):
        deploy_phase.rollback(project, settings, setup="a", version=version, report=lambda _line: None)
    assert FakeTarget.calls == [] and _record(settings, project, "a").get("active") == active


def test_a_rollback_refuses_a_version_whose_tag_moved(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, FakeTarget)
    _versions(settings, project, "a", [1, 2], active=2, images=images)
    images["cri/p/a:v1"] = "sha256:other"
    with pytest.raises(CriError, match="the tag cri/p/a:v1 points at sha256:other"):
        deploy_phase.rollback(project, settings, setup="a", version=1, report=lambda _line: None)
    assert FakeTarget.calls == [] and _record(settings, project, "a")["active"] == 2


# -- all or nothing ---------------------------------------------------------------------------


def _deploy_one_failing(failing: str, settings: Settings, project: Project, images: dict[str, str]) -> Any:
    """The deploy of one setup, faked: ``failing`` fails as an activation does; any other setup
    gets a new version recorded as active, as a successful deploy leaves it."""

    def deploy_one(*args: Any, **kwargs: Any) -> DeployResult:
        setup = next(a for a in (*args, *kwargs.values()) if isinstance(a, Setup))
        if setup.name == failing:
            raise deploy_error(setup, "container x exited (code 1) before it was ready", "boom")
        with Store(settings.cache_path(project.root)) as store:
            rec = store.get(f"deploy/{setup.name}") or {"next": 1, "versions": [], "active": None}
            version = Version(int(rec["next"]), f"cri/p/{setup.name}:v{rec['next']}", f"sha256:new-{setup.name}", "rt")
            images[version.image] = version.image_id
            rec = {
                "next": version.number + 1,
                "versions": [*rec["versions"], version.as_json()],
                "active": version.number,
            }
            store.set(f"deploy/{setup.name}", rec)
        return DeployResult(setup.name, "ACTIVE", version.number, version.image, "rt")

    return deploy_one


def test_an_all_or_nothing_target_returns_the_setups_it_activated_and_skips_the_rest(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, AllOrNothingTarget)
    _versions(settings, project, "a", [1, 2], active=2, images=images)
    monkeypatch.setattr(deploy_phase, "_deploy_one", _deploy_one_failing("b", settings, project, images))
    said: list[str] = []
    with pytest.raises(DeployFailed) as failed:
        deploy_phase.deploy(project, settings, report=said.append)
    by_setup = {r.setup: r for r in failed.value.results}
    assert [r.setup for r in failed.value.results] == ["a", "b", "c"]
    assert (by_setup["a"].status, by_setup["a"].version) == ("ROLLED_BACK", 2)
    assert by_setup["a"].error == "[a] returned to version 2 because b failed"
    assert by_setup["b"].status == "DEPLOY_FAILED" and by_setup["b"].version is None
    assert by_setup["c"].status == "SKIPPED"
    assert by_setup["c"].error == "not deployed: DEPLOY_FAILED in an earlier setup of this deploy"
    assert AllOrNothingTarget.calls == [("activate", "a", 2, 3)]  # back from the new v3 to v2
    assert _record(settings, project, "a")["active"] == 2 and _record(settings, project, "c") == {}
    assert [e.status for e in failed.value.errors] == ["DEPLOY_FAILED", "DEPLOY_FAILED"]
    assert "[a] b failed: returning a to version 2" in said


def test_an_all_or_nothing_target_removes_a_setup_that_had_no_version_before(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, AllOrNothingTarget)
    monkeypatch.setattr(deploy_phase, "_deploy_one", _deploy_one_failing("c", settings, project, images))
    with pytest.raises(DeployFailed) as failed:
        deploy_phase.deploy(project, settings, report=lambda _line: None)
    statuses = [(r.setup, r.status, r.version) for r in failed.value.results]
    assert statuses == [("a", "ROLLED_BACK", None), ("b", "ROLLED_BACK", None), ("c", "DEPLOY_FAILED", None)]
    assert AllOrNothingTarget.calls == [("stop", "b"), ("stop", "a")]  # the last activated first
    assert failed.value.results[0].error == "[a] removed again: no version of it was active before and c failed"
    assert _record(settings, project, "a")["active"] is None and _record(settings, project, "b")["active"] is None


def test_another_target_keeps_what_succeeded_and_goes_on(
    tmp_path: Path, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, settings = _project(tmp_path), resolve({})
    _use(monkeypatch, FakeTarget)
    monkeypatch.setattr(deploy_phase, "_deploy_one", _deploy_one_failing("b", settings, project, images))
    with pytest.raises(DeployFailed) as failed:
        deploy_phase.deploy(project, settings, report=lambda _line: None)
    assert [(r.setup, r.status, r.version) for r in failed.value.results] == [
        ("a", "ACTIVE", 1),
        ("b", "DEPLOY_FAILED", None),
        ("c", "ACTIVE", 1),
    ]
    assert FakeTarget.calls == [] and len(failed.value.errors) == 1


def test_the_targets_declare_whether_a_deploy_is_all_or_nothing() -> None:
    from cri_tasks.targets import get

    assert get("swarm").all_or_nothing is True and get("local").all_or_nothing is False


# -- readiness and health check commands ------------------------------------------------------


def test_an_http_check_is_one_curl_command_inside_the_container() -> None:
    assert check_command(HttpGet(8000, "/up"), None) == (
        "curl -fsS -o /dev/null -L --max-time 5 'http://127.0.0.1:8000/up'"
    )
    assert check_command(HttpGet(8443, "/health", host="example.com", scheme="https"), None) == (
        "curl -fsS -o /dev/null -L --max-time 5 -H 'Host: example.com' 'https://127.0.0.1:8443/health'"
    )
    assert check_command(None, "test -f /tmp/ok") == "test -f /tmp/ok"


def _setup(tmp_path: Path, run: str = "", deploy: str = "") -> Setup:
    yml = (
        "zerops:\n  - setup: app\n    run:\n      start: ./app\n      ports: [{port: 8000, httpSupport: true}]\n"
        + run
        + ("    deploy:\n" + deploy if deploy else "")
    )
    return _project(tmp_path, yml).setups[0]


def test_health_timings_default_as_cri_tasks_documents(tmp_path: Path) -> None:
    check = _setup(tmp_path, "      healthCheck:\n        exec: {command: test -f /tmp/ok}\n").run.health_check
    assert check is not None
    timings = HealthTimings.of(check)
    assert timings == HealthTimings(period=5.0, failure=30.0, disconnect=10.0, recovery=5.0)
    assert (timings.checks(10), timings.checks(11), timings.checks(0.5)) == (2, 3, 1)


def test_the_local_target_gives_docker_the_health_check_in_whole_seconds(tmp_path: Path) -> None:
    setup = _setup(
        tmp_path,
        "      healthCheck:\n        httpGet: {port: 8000, path: /health}\n"
        "        execPeriod: 2\n        failureTimeout: 9\n",
    )
    health = LocalTarget._health(NO_SELF, setup)
    assert health == {
        "health_cmd": "curl -fsS -o /dev/null -L --max-time 5 'http://127.0.0.1:8000/health'",
        "health_interval": 2,
        "health_timeout": 5,
        "health_retries": 4,
    }
    assert LocalTarget._health(NO_SELF, _setup(tmp_path / "none")) == {}


def test_the_swarm_check_runs_the_readiness_check_until_it_passed_then_the_health_check(tmp_path: Path) -> None:
    setup = _setup(
        tmp_path,
        "      healthCheck:\n        exec: {command: test -f /tmp/ok}\n        failureTimeout: 9\n",
        "      readinessCheck:\n        httpGet: {port: 8000, path: /ready}\n"
        "        retryPeriod: 2\n        failureTimeout: 60\n",
    )
    health = SwarmTarget._health(NO_SELF, setup)
    assert health is not None
    ready = "curl -fsS -o /dev/null -L --max-time 5 'http://127.0.0.1:8000/ready'"
    test = f"if [ -e /tmp/.cri-ready ]; then (\ntest -f /tmp/ok\n); else (\n{ready}\n) && touch /tmp/.cri-ready; fi"
    assert json.loads(health["test"]) == ["CMD-SHELL", test]
    assert (health["_interval"], health["_start"], health["_retries"]) == (2.0, 60.0, 5)  # ceil(9 / 2)
    only_ready = SwarmTarget._health(
        NO_SELF, _setup(tmp_path / "r", deploy="      readinessCheck:\n        exec: {command: test -f /tmp/up}\n")
    )
    assert only_ready is not None and only_ready["_retries"] == 1
    assert json.loads(only_ready["test"]) == [
        "CMD-SHELL",
        "[ -e /tmp/.cri-ready ] || { (\ntest -f /tmp/up\n) && touch /tmp/.cri-ready; }",
    ]
