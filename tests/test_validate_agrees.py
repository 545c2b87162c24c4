"""``validate`` refuses what a deploy would refuse for the same file and settings, in the same
words at the same place: every check of a zerops.yml value or a ``cri`` setting runs in the
loader, in ``settings.resolve`` or in the pre-flight that both tasks run, never only after a
build. The phases' second walls word a refused path as the loader does. One duration grammar for
zerops.yml and the settings."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import make_project
from test_entry_points import OFFLINE, cri

from cri_tasks import api, artifact, build_phase, deploy_phase, fingerprint, loader
from cri_tasks.errors import ConfigError
from cri_tasks.model import Setup
from cri_tasks.settings import SWARM_NEEDS_REGISTRY, SwarmSettings, resolve

GOOD_RUN = "    run:\n      base: gleam@1.5\n      start: ./app\n"
GOOD_BUILD = "    build:\n      base: gleam@1.5\n      deployFiles: ./\n"


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages name zerops.yml as given: relative to here


def never(*_a: object, **_k: object) -> None:
    raise AssertionError("the deploy started although the file or the settings should have been refused")


def write(text: str) -> Path:
    Path("zerops.yml").write_text(textwrap.dedent(text).lstrip())
    return Path("zerops.yml")


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as caught:
        call()
    return str(caught.value)


def validate_and_deploy(monkeypatch: pytest.MonkeyPatch, file: Path, settings: Any = None) -> tuple[str, str]:
    """What ``validate`` and ``deploy`` say about ``file``; the deploy never reaches its phases."""
    monkeypatch.setattr(deploy_phase, "deploy", never)
    return refusal(lambda: api.validate(file, settings=settings)), refusal(lambda: api.deploy(file, settings=settings))


# -- zerops.yml values: the loader, and the phases' second walls in the same words -----------------

#: (zerops.yml, the message, the phase's own check of the value handed the loaded setup)
PATHS: list[tuple[str, str, Callable[[Setup], object]]] = [
    (
        "  - setup: app\n" + GOOD_BUILD + "      cache: [deps, ../x]\n" + GOOD_RUN,
        'zerops.yml:6:21: zerops[0].build.cache[1]: "../x" must stay inside /build/source',
        build_phase.cache_paths,
    ),
    (
        "  - setup: app\n" + GOOD_BUILD + GOOD_RUN + "      envReplace: {delimiter: '%%', target: [ok, /etc/passwd]}\n",
        'zerops.yml:9:50: zerops[0].run.envReplace.target[1]: "/etc/passwd" must stay inside /var/www',
        deploy_phase.check_env_replace_targets,
    ),
    (
        "  - setup: app\n    build:\n      base: gleam@1.5\n      deployFiles: [./, ../up]\n" + GOOD_RUN,
        "zerops.yml:5:25: zerops[0].build.deployFiles[1]: \"../up\" leaves the project folder ('..')",
        lambda setup: [artifact.parse_deploy_path(ref) for ref in setup.build.deploy_files] if setup.build else None,
    ),
    (
        "  - setup: app\n" + GOOD_BUILD + "      addToRunPrepare: ['~/.ssh']\n" + GOOD_RUN,
        'zerops.yml:6:25: zerops[0].build.addToRunPrepare[0]: "~/.ssh" is absolute; paths are relative to the '
        "project folder",
        lambda setup: (
            [fingerprint.check_inside(Path.cwd(), ref) for ref in setup.build.add_to_run_prepare]
            if setup.build
            else None
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "message", "phase_check"), PATHS, ids=["cache", "envReplace", "deployFiles", "addToRunPrepare"]
)
def test_a_path_value_is_refused_by_validate_deploy_and_the_phase_alike(
    monkeypatch: pytest.MonkeyPatch, text: str, message: str, phase_check: Callable[[Setup], object]
) -> None:
    file = write("zerops:\n" + text)
    assert validate_and_deploy(monkeypatch, file) == (message, message)
    # The phase's second wall, handed the very setup the loader would have built had it let the
    # value through, says the same at the same place.
    with monkeypatch.context() as m:
        m.setattr(loader, "path_refusal", lambda _raw, _kind: None)
        (setup,) = api.load(file, None).setups
    assert refusal(lambda: phase_check(setup)) == message


def test_an_env_reference_cycle_is_refused_by_validate_as_by_build_and_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    file = write("""
        zerops:
          - setup: app
            build:
              base: gleam@1.5
              deployFiles: ./
              envVariables: {B: "${C}", C: "x${B}"}
            run:
              base: gleam@1.5
              start: ./app
              envVariables: {A: "${A}", OTHER: "${db_hostname}"}
        """)
    expected = (
        "zerops.yml:6:25: zerops[0].build.envVariables.B: reference cycle B -> C -> B\n"
        "zerops.yml:6:36: zerops[0].build.envVariables.C: reference cycle C -> B -> C\n"
        "zerops.yml:10:25: zerops[0].run.envVariables.A: reference cycle A -> A"
    )
    assert validate_and_deploy(monkeypatch, file) == (expected, expected)
    monkeypatch.setattr(build_phase, "build", never)
    built = "\n".join(expected.splitlines()[:2])  # the build resolves its own variables only
    assert refusal(lambda: api.build(file)) == built


def test_a_cycle_through_the_project_env_file_and_an_unreadable_env_file_are_refused_by_validate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = write("zerops:\n  - setup: app\n" + GOOD_BUILD + GOOD_RUN + "      envVariables: {A: '${P}'}\n")
    Path("project.env").write_text("P=${A}\n")
    settings = {"env_file": "project.env"}
    validated, deployed = validate_and_deploy(monkeypatch, file, settings)
    assert validated == deployed
    assert "zerops.yml:9:25: zerops[0].run.envVariables.A: reference cycle A -> P -> A" in validated.splitlines()
    os.unlink("project.env")
    validated, deployed = validate_and_deploy(monkeypatch, file, settings)
    assert validated == deployed and validated.startswith("cri.env_file: cannot read ")


def test_a_reference_that_names_nothing_is_no_error_for_validate() -> None:
    file = write("zerops:\n  - setup: app\n" + GOOD_BUILD + GOOD_RUN + "      envVariables: {A: '${db_hostname}'}\n")
    assert api.validate(file).project.setup_names() == ["app"]


def test_a_bad_cron_timing_is_refused_by_validate_and_deploy_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(
        "zerops:\n  - setup: app\n"
        + GOOD_BUILD
        + GOOD_RUN
        + "      crontab: [{timing: '61 * * * *', command: date, allContainers: false}]\n"
    )
    validated, deployed = validate_and_deploy(monkeypatch, file)
    assert validated == deployed
    assert validated.startswith("zerops.yml:9:16: zerops[0].run.crontab[0].timing: minute value 61 is outside 0-59")


def test_what_only_the_deploy_needs_is_still_no_error_for_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setup others extend without start, a Node.js base, a swarm target without a registry:
    valid zerops.yml and settings (docs/zerops-decisions.md); the deploy refuses them before the build."""
    file = write("zerops:\n  - setup: app\n    build: {deployFiles: ./, base: nodejs@20}\n    run: {base: nodejs@20}\n")
    settings = {"target": "swarm"}
    assert api.validate(file, settings=settings).project.setup_names() == ["app"]
    monkeypatch.setattr(deploy_phase, "deploy", never)
    lines = refusal(lambda: api.deploy(file, settings=settings)).splitlines()
    assert lines[0] == SWARM_NEEDS_REGISTRY
    places = [line.split(": ")[1] for line in lines[1:]]
    assert places == ["zerops[0].build.base", "zerops[0].run", "zerops[0].run.base"]


# -- cri settings: resolve refuses them for every task; per-setup ones in the pre-flight ----------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"swarm": {"monitor": "15"}},
            'cri.swarm.monitor: missing unit in duration "15" (write "15s" or the integer 15)',
        ),
        (
            {"swarm": {"timeout": "2 m"}},
            'cri.swarm.timeout: invalid duration "2 m" (use e.g. "30s", "5m", "1h30m", "500ms")',
        ),
        ({"swarm": {"monitor": 1.5}}, 'cri.swarm.monitor: expected whole seconds or a duration like "30s", got 1.5'),
        ({"swarm": {"ports": "ipvs"}}, "cri.swarm.ports: expected one of auto, mesh, proxy, got 'ipvs'"),
        ({"swarm": {"stack": "-x"}}, "cri.swarm.stack: '-x' is not a valid stack name"),
        ({"swarm": {"parallelism": "two"}}, "cri.swarm.parallelism: expected a number, got 'two'"),
        ({"swarm": {"parallelism": -1}}, "cri.swarm.parallelism: expected 0 (all at once) or more"),
        ({"swarm": {"wait": "later"}}, "cri.swarm.wait: expected true or false, got 'later'"),
        (
            {"swarm": {"proxy_constraints": "node.role == manager"}},
            "cri.swarm.proxy_constraints: expected a list of placement constraints (node.labels.app == true), "
            "got 'node.role == manager'",
        ),
        (
            {"swarm": {"constraints": {"app": "node.role == manager"}}},
            "cri.swarm.constraints.app: expected a list of placement constraints (node.labels.app == true), "
            "got 'node.role == manager'",
        ),
        ({"replicas": {"app": 0}}, "cri.replicas for app: expected at least 1, got 0"),
        (
            {"publish": {"app": {"8000": "eighty"}}},
            "cri.publish for app, port 8000: expected a host port number, got 'eighty'",
        ),
    ],
)
def test_a_bad_setting_is_refused_by_validate_and_deploy_alike(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], message: str
) -> None:
    file = write("zerops:\n  - setup: app\n" + GOOD_BUILD + GOOD_RUN + "      ports: [{port: 8000}]\n")
    assert validate_and_deploy(monkeypatch, file, settings) == (message, message)


def test_a_gleam_archive_that_is_no_file_is_refused_by_every_task_before_any_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = write("zerops:\n  - setup: app\n" + GOOD_BUILD + GOOD_RUN)
    settings = {"gleam": {"source": "gleam.tar.gz"}}
    validated, deployed = validate_and_deploy(monkeypatch, file, settings)
    assert (
        validated
        == deployed
        == (
            f"cri.gleam.source: 'gleam.tar.gz' is neither 'release', 'none' nor an existing "
            f"file ({Path.cwd() / 'gleam.tar.gz'})"
        )
    )
    monkeypatch.setattr(build_phase, "build", never)
    assert refusal(lambda: api.build(file, settings=settings)) == validated
    assert refusal(lambda: api.prepare(file, settings=settings)) == validated
    assert not Path(".cri").exists()


def test_the_swarm_settings_are_read_as_the_target_uses_them() -> None:
    swarm = resolve(
        {
            "swarm": {
                "ports": "MESH",
                "parallelism": "2",
                "monitor": "1m30s",
                "timeout": 600,
                "wait": "no",
                "stack": "shop",
                "constraints": {"web": ["node.labels.web == true"]},
                "proxy_constraints": ["node.role == manager"],
            }
        }
    ).swarm
    assert swarm == (
        ("mesh", 2, 90.0, "shop", False, 600.0, {"web": ["node.labels.web == true"]}, ("node.role == manager",))
    )
    defaults = resolve(None).swarm
    assert defaults == SwarmSettings() and defaults.monitor == 15.0 and defaults.timeout is None
    # the values Invoke hands over from INVOKE_CRI_SWARM_* variables are strings
    assert resolve({"swarm": {"monitor": "0", "timeout": "", "parallelism": "0", "wait": "True"}}).swarm[1:6] == (
        0,
        0.0,
        None,
        True,
        None,
    )


# -- one duration grammar -------------------------------------------------------------------------

DURATIONS: list[Any] = [
    30,
    "30s",
    "5m",
    "1h30m",
    "500ms",
    "1.5s",
    ".5m",
    "100us",
    "7ns",
    "2h3m4s",  # accepted
    "30",
    "15 s",
    " 15s",
    "1d",
    "-5s",
    1.5,
    True,
    "soon",
    "9" * 400 + "h",
]  # refused


@pytest.mark.parametrize("value", DURATIONS, ids=[repr(v)[:12] for v in DURATIONS])
def test_zerops_yml_and_the_swarm_settings_read_a_duration_alike(value: Any) -> None:
    import json

    write(
        "zerops:\n  - setup: app\n" + GOOD_RUN + f"      healthCheck:\n        exec: {{command: x}}\n"
        f"        failureTimeout: {json.dumps(value)}\n"
    )
    in_file: float | None = None
    try:
        health = api.load(Path("zerops.yml"), None).setups[0].run.health_check
        in_file = health.failure_timeout if health is not None else None
    except ConfigError:
        pass
    try:
        in_settings: float | None = resolve({"swarm": {"monitor": value}}).swarm.monitor
    except ConfigError:
        in_settings = None
    assert in_file == in_settings


# -- the real programs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ("      envVariables: {A: '${A}'}\n", {}, "zerops[0].run.envVariables.A: reference cycle A -> A"),
        ("", {"swarm": {"monitor": "15"}}, "cri.swarm.monitor: missing unit in duration"),
    ],
    ids=["cycle", "swarm.monitor"],
)
def test_cri_validate_and_cri_deploy_refuse_alike(tmp_path: Path, bad: tuple[str, dict[str, Any], str]) -> None:
    line, settings, message = bad
    project = make_project(
        tmp_path / "proj", "zerops:\n  - setup: app\n" + GOOD_BUILD + GOOD_RUN + line, settings={**OFFLINE, **settings}
    )
    validated, deployed = cri(project, "validate"), cri(project, "deploy")
    assert validated.returncode == deployed.returncode == 1
    assert message in validated.stderr and "Traceback" not in validated.stderr + deployed.stderr
    assert validated.stderr == deployed.stderr
