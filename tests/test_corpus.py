"""Every real zerops.yml of the shared corpus loads (with its documented warnings) or, for the
three pre-2023 files, fails with the single legacy-format error.

The corpus is not part of the project: it lives in ``shared/`` beside the clone
(``<root>/main`` and ``<root>/shared``), or wherever ``CRI_SHARED_DIR`` points.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_tasks.errors import ConfigError
from cri_tasks.loader import load_project


def _corpus_dir() -> Path | None:
    shared = os.environ.get("CRI_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    corpus = base / "corpus" / "zerops-yml"
    return corpus if corpus.is_dir() else None


CORPUS = _corpus_dir()
SKIP_REASON = "zerops.yml corpus not found: put shared/ beside the project or set CRI_SHARED_DIR"
FILES = sorted(CORPUS.glob("*.yml")) if CORPUS else []

LEGACY = {
    "zeropsio__recipe-es-golang-basic__zerops.yml",
    "zeropsio__recipe-golang-postgres-api__zerops.yml",
    "MichalSalon__zerops-saleor__zerops.yml",
}

# file -> the exact warnings (line, field path, message) it must produce; absent = none.
NULL_ENV = "null value, used as an empty string"
WARNINGS: dict[str, list[tuple[int, str, str]]] = {
    "zeropsio__recipe-python-hello-world__zerops.yml": [
        (5, "zerops[0].build.deploy", 'deprecated name of "deployFiles"; used as deployFiles, rename it'),
        # no run.base: the runtime cri-tasks assumes is said (issue 15, item 16)
        (
            10,
            "zerops[0].run",
            "no run.base: Zerops keeps the service's current runtime; cri-tasks assumes gleam@1.5 (Gleam 1.5.1) on alpine, although build.base is python@3.11",
        ),
    ],
    "zeropsio__recipe-laravel-minimal__zerops.yml": [
        (46, "zerops[0].run.envVariables.MAIL_USERNAME", NULL_ENV),
        (47, "zerops[0].run.envVariables.MAIL_PASSWORD", NULL_ENV),
        (48, "zerops[0].run.envVariables.MAIL_ENCRYPTION", NULL_ENV),
        (56, "zerops[0].run.envVariables.SESSION_DOMAIN", NULL_ENV),
    ],
    "zerops-recipe-apps__nodejs-hello-world-app__zerops.yaml.yml": [
        (73, "zerops[0].run.verticalAutoscaling", "has no local meaning (a Zerops scaling setting); ignored"),
    ],
}


def _params() -> list[object]:
    if not FILES:
        return [pytest.param(None, marks=pytest.mark.skip(reason=SKIP_REASON), id="no-corpus")]
    return [pytest.param(path, id=path.name) for path in FILES]


@pytest.mark.parametrize("path", _params())
def test_a_corpus_file_loads_with_only_its_documented_warnings_or_is_legacy(path: Path) -> None:
    if path.name in LEGACY:
        with pytest.raises(ConfigError) as caught:
            load_project(path)
        (problem,) = caught.value.problems
        assert "pre-2023 zerops.yml format" in problem.message
        assert '"zerops:"' in problem.message and "build.deployFiles" in problem.message
        assert problem.location is not None and problem.location.file == str(path)
        return
    project = load_project(path)
    assert project.setups
    found = [(w.location.line if w.location else 0, w.path, w.message) for w in project.warnings]
    assert found == WARNINGS.get(path.name, [])
    assert all(w.severity == "warning" for w in project.warnings)


@pytest.mark.skipif(CORPUS is None, reason=SKIP_REASON)
def test_the_corpus_holds_the_22_files_the_readme_lists() -> None:
    names = {path.name for path in FILES}
    assert len(names) == 22
    assert LEGACY <= names and set(WARNINGS) <= names


@pytest.mark.skipif(CORPUS is None, reason=SKIP_REASON)
def test_the_gleam_recipe_builds_an_erlang_shipment_on_ubuntu() -> None:
    assert CORPUS is not None
    project = load_project(CORPUS / "zerops-recipe-apps__gleam-hello-world-app__zerops.yaml.yml")
    prod, dev = project.setups
    assert (prod.name, dev.name) == ("prod", "dev")
    assert prod.build is not None
    assert (prod.build.os, prod.build.base) == ("ubuntu", ("gleam@1.5",))
    assert [c.text for c in prod.build.prepare_commands] == ["zsc add gleam@1.5"]
    assert [p.value for p in prod.build.deploy_files] == ["build/erlang-shipment/~"]
    assert not isinstance(prod.build.cache, bool)
    assert [p.value for p in prod.build.cache] == ["build/packages"]
    check = prod.deploy.readiness_check
    assert (
        check is not None and check.http_get is not None and (check.http_get.port, check.http_get.path) == (3000, "/")
    )
    assert prod.run.start is not None and prod.run.start.text == "./entrypoint.sh run"
    assert [(p.port, p.http_support) for p in prod.run.ports] == [(3000, True)]
    assert dev.build is not None and [c.text for c in dev.build.build_commands] == ["true"]
    assert [c.text for c in dev.run.prepare_commands] == ["zsc add gleam@1.5"]


@pytest.mark.skipif(CORPUS is None, reason=SKIP_REASON)
def test_the_wordpress_app_inherits_everything_from_base_with_base_locations() -> None:
    assert CORPUS is not None
    project = load_project(CORPUS / "zeropsio__recipe-wordpress__zerops.yml")
    base, app = project.setups
    assert app.extends == ("base",)
    assert app.build is not None and base.build is not None
    assert app.build.build_commands == base.build.build_commands
    assert app.run.init_commands == base.run.init_commands
    assert app.run.init_commands[0].location.line == 33  # written in base
    assert dict(app.run.env_variables) == dict(base.run.env_variables)
    assert app.run.site_config_path == "site.conf.tmpl"
