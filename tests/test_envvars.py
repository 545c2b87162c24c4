"""``${name}`` references (envvars.resolve): what Zerops resolves, what it keeps as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_tasks.envvars import resolve
from cri_tasks.errors import ConfigError, Location, Problem


def test_a_reference_that_names_nothing_stays_as_written_with_a_warning() -> None:
    warnings: list[Problem] = []
    where = Location("zerops.yml", 7, 18)
    env = resolve(
        {"DB_HOST": "${db_hostname}", "URL": "pg://${DB_HOST}:${db_port}/x", "A": "${missing"},
        project={},
        builtins={"hostname": "app"},
        where="zerops[0].run.envVariables",
        locations={"DB_HOST": where},
    )
    assert env["DB_HOST"] == "${db_hostname}"
    assert env["URL"] == "pg://${db_hostname}:${db_port}/x"
    assert env["A"] == "${missing"  # not a reference at all
    assert [str(w) for w in warnings] == []  # no list given: nothing collected, nothing raised
    resolve(
        {"DB_HOST": "${db_hostname}", "URL": "${DB_HOST}:${db_port}"},
        project={},
        builtins={},
        where="zerops[0].run.envVariables",
        locations={"DB_HOST": where},
        warnings=warnings,
    )
    assert [w.severity for w in warnings] == ["warning", "warning"]
    assert str(warnings[0]).startswith(
        "zerops.yml:7:18: warning: zerops[0].run.envVariables.DB_HOST: "
        "${db_hostname} names no variable: it stays as written"
    )
    assert "${db_port}" in str(warnings[1])


def test_build_and_runtime_prefixes_reach_the_other_phase() -> None:
    build = {"API": "https://${hostname}/api", "TOKEN": "${RUNTIME_SECRET}"}
    run = {"SECRET": "s3", "FROM_BUILD": "${BUILD_API}", "BUILD_OWN": "mine", "MINE": "${BUILD_OWN}"}
    env = resolve(run, project={}, builtins={"hostname": "app"}, other=build, other_prefix="BUILD_")
    assert env["FROM_BUILD"] == "https://app/api"
    assert env["MINE"] == "mine"  # a variable of this phase with that name wins
    assert "BUILD_API" not in env  # the other phase's variables are only reachable, not copied
    benv = resolve(build, project={}, builtins={"hostname": "app"}, other=run, other_prefix="RUNTIME_")
    assert benv["TOKEN"] == "s3"


def test_a_cycle_can_never_resolve_and_is_an_error_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(
            {"A": "${B}", "B": "${A}"},
            project={},
            builtins={},
            where="w",
            locations={"A": Location("z.yml", 3, 4), "B": Location("z.yml", 4, 4)},
        )
    assert str(caught.value).splitlines()[0] == "z.yml:3:4: w.A: reference cycle A -> B -> A"


def test_zerops_prefixed_builtins_exist_for_every_builtin(tmp_path: Path) -> None:
    from cri_tasks.deploy_phase import Version, builtins_for
    from cri_tasks.loader import load_project

    (tmp_path / "zerops.yml").write_text("zerops:\n  - setup: app\n    run: {start: x}\n")
    project = load_project(tmp_path / "zerops.yml")
    b = builtins_for(project, project.setups[0], Version(3, "img:v3", "sha256:" + "ab" * 32, "rt"))
    assert b["ZEROPS_appVersionId"] == b["appVersionId"] == "app-v3-abababababab"
    assert b["ZEROPS_hostname"] == "app"
    env = resolve({"KEY": "${ZEROPS_appVersionId}"}, project={}, builtins=b)
    assert env["KEY"] == "app-v3-abababababab"


def test_a_versions_recorded_run_configuration_round_trips_through_json(tmp_path: Path) -> None:
    import json

    from cri_tasks.deployed import as_deployed, record
    from cri_tasks.loader import load_project

    (tmp_path / "zerops.yml").write_text(
        "zerops:\n  - setup: app\n    build: {deployFiles: ./, envVariables: {B: b}}\n"
        "    deploy: {readinessCheck: {exec: {command: 'true'}, retryPeriod: 2}}\n"
        "    run:\n      start: ./app\n      ports: [{port: 8000, httpSupport: true}]\n"
        "      envVariables: {A: '${B}'}\n      healthCheck: {httpGet: {port: 8000, path: /}, execPeriod: 3}\n"
        "      crontab: [{timing: '*/5 * * * *', command: date, allContainers: false}]\n"
    )
    (s,) = load_project(tmp_path / "zerops.yml").setups
    saved = json.loads(json.dumps(record(s)))
    assert as_deployed(s, saved) == s
    assert as_deployed(s, None) is s and as_deployed(s, {"format": 999}) is s
