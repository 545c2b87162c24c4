"""Runtime prepare against the real Docker engine and BuildKit (section 2 of the reference)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helpers
import pytest
import yaml
from helpers import invoke, make_project, only, prepare_json

pytestmark = pytest.mark.engine

APP = """
zerops:
  - setup: app
    build:
      base: gleam@1.5
      os: ubuntu
      buildCommands:
        - echo building
      deployFiles: build/erlang-shipment/~
      addToRunPrepare:
        - gleam.toml
        - priv
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - whoami > whoami.txt
        - ls -A /var/www | wc -l > www-count.txt
      envVariables:
        GREETING: hello
      initCommands:
        - echo init
      start: ./entrypoint.sh run
"""

FILES = {"gleam.toml": 'name = "app"\n', "priv/static/app.css": "body {}\n", "priv/notes.txt": "n\n"}


def docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def in_image(image: str, script: str) -> str:
    return docker("run", "--rm", "--pull", "never", image, "/bin/sh", "-c", script)


@pytest.fixture
def project(tmp_path: Path, engine_settings: dict[str, Any]) -> Path:
    return make_project(tmp_path / "proj", APP, files=FILES, settings=engine_settings)


def edit(project: Path, old: str, new: str) -> None:
    helpers.edit(project / "zerops.yml", old, new)


def test_the_ubuntu_runtime_is_built_for_real_with_the_prepare_commands(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    app = APP.replace(
        "        - whoami > whoami.txt\n",
        "        - whoami > whoami.txt\n"
        "        - sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends jq\n",
    )
    proj = make_project(tmp_path / "proj", app, files=FILES, settings=engine_settings)
    entry = only(prepare_json(proj))
    assert entry["status"] == "built" and entry["cached"] is False
    image = entry["image"]
    assert in_image(image, "cat /home/zerops/whoami.txt") == "zerops"
    assert in_image(image, "cat /home/zerops/www-count.txt") == "0"  # /var/www empty
    assert in_image(image, "ls -A /var/www") == ""
    assert in_image(image, "jq --version").startswith("jq-")
    assert in_image(image, "cat /home/zerops/gleam.toml /home/zerops/priv/static/app.css") == 'name = "app"\nbody {}'
    assert in_image(image, "stat -c %U /home/zerops/priv/notes.txt") == "zerops"
    assert in_image(
        image, "erl -noshell -eval 'io:format(\"~s\", [erlang:system_info(otp_release)]), halt().'"
    ).isdigit()
    assert in_image(image, "rebar3 version").startswith("rebar")
    assert in_image(image, "git --version").startswith("git version")
    assert in_image(image, "gleam --version") == "gleam 1.5.1"  # from the local archive
    assert in_image(image, "whoami; pwd") == "zerops\n/var/www"
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image))
    assert labels["io.cri-tasks.fingerprint"] == entry["fingerprint"]
    assert json.loads(labels["io.cri-tasks.inputs"])["prepareCommands"] == 3
    assert Path(entry["log"]).is_file()


def test_a_second_prepare_with_nothing_changed_is_up_to_date(project: Path) -> None:
    first = only(prepare_json(project))
    proc = invoke(project, "prepare")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr
    assert f"app: up to date {first['image']}" in proc.stdout


def test_a_cache_hit_never_calls_the_builder_nor_imports_it(project: Path) -> None:
    only(prepare_json(project))
    # A builder that does not exist: any buildx call would fail.
    broken = {"BUILDX_BUILDER": "no-such-builder-cri-test"}
    proc = invoke(project, "prepare", env=broken)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    settings = yaml.safe_load((project / "invoke.yaml").read_text())["cri"]
    code = (
        f"import sys, cri_tasks.api as api; api.prepare(settings={settings!r}); "
        "print(sorted(m for m in ('python_on_whales', 'jinja2') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env={**os.environ, **broken}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def hit_index_path(project: Path) -> Path:
    return Path(yaml.safe_load((project / "invoke.yaml").read_text())["cri"]["cache_dir"]) / "hits.json"


def hit_index(project: Path) -> dict[str, Any]:
    """The cache-hit index of a test project (empty when there is none)."""
    path = hit_index_path(project)
    return json.loads(path.read_text()) if path.exists() else {}  # type: ignore[no-any-return]


def imported_by(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``invoke ARGS`` under ``-X importtime``; the process and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "invoke", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc, modules


#: what a prepare that the hit index answers never imports
FULL_PATH = {
    "cri_tasks.loader",
    "cri_tasks.model",
    "cri_tasks.runtime_image",
    "cri_tasks.store",
    "diskcache",
    "python_on_whales",
    "jinja2",
}


def test_an_unchanged_project_is_answered_from_the_hit_index_alone(project: Path) -> None:
    first = only(prepare_json(project))
    assert len(hit_index(project)["entries"]) == 1
    proc, modules = imported_by(project, "prepare", "--json")
    assert proc.returncode == 0, proc.stderr
    hit = only(json.loads(proc.stdout))
    assert (hit["status"], hit["image_id"], hit["fingerprint"]) == (
        "up to date",
        first["image_id"],
        first["fingerprint"],
    )
    assert "cri_tasks.hitindex" in modules and not modules & FULL_PATH, modules & FULL_PATH
    # A touched file: the full path hashes it again (same content: up to date) and refreshes the index.
    os.utime(project / "gleam.toml", (1, 1))
    proc, modules = imported_by(project, "prepare")
    assert proc.returncode == 0 and f"app: up to date {first['image']}" in proc.stdout
    assert "cri_tasks.loader" in modules
    proc, modules = imported_by(project, "prepare")
    assert proc.returncode == 0 and f"app: up to date {first['image']}" in proc.stdout
    assert not modules & FULL_PATH


def test_going_back_to_an_earlier_state_makes_its_image_current_again(project: Path) -> None:
    first = only(prepare_json(project))
    edit(project, "whoami > whoami.txt", "whoami > who.txt")
    assert only(prepare_json(project))["status"] == "built"
    edit(project, "whoami > who.txt", "whoami > whoami.txt")
    again = only(prepare_json(project))
    assert (again["status"], again["image_id"]) == ("up to date", first["image_id"])
    # The record of the setup follows (explain compares with it), and so does the index.
    explained = only(prepare_json(project, "--explain"))
    assert explained["reasons"] == ["up to date: nothing that invalidates the runtime image changed"]
    proc, modules = imported_by(project, "prepare")
    assert proc.returncode == 0 and f"app: up to date {first['image']}" in proc.stdout
    assert not modules & FULL_PATH


def test_a_damaged_hit_index_costs_a_full_prepare_and_nothing_else(project: Path) -> None:
    first = only(prepare_json(project))
    hit_index_path(project).write_text('{"v": 1, "entries": {"x": [')
    proc = invoke(project, "prepare", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert only(json.loads(proc.stdout))["image_id"] == first["image_id"]
    assert len(hit_index(project)["entries"]) == 1


REBUILDS = {
    "run.base": (
        lambda p: edit(p, "    run:\n      base: gleam@1.5", "    run:\n      base: gleam@1"),
        "run.base changed: 'gleam@1.5' -> 'gleam@1'",
    ),
    "run.prepareCommands": (
        lambda p: edit(p, "whoami > whoami.txt", "whoami > who.txt"),
        "run.prepareCommands[0] changed: 'whoami > whoami.txt' -> 'whoami > who.txt'",
    ),
    "a prepare command added": (
        lambda p: edit(p, "        - ls -A", "        - echo more\n        - ls -A"),
        "run.prepareCommands[2] added",
    ),
    "the addToRunPrepare list": (
        lambda p: edit(p, "        - priv\n", "        - priv\n        - extra.txt\n"),
        "build.addToRunPrepare changed",
    ),
    "a listed file's content": (
        lambda p: (p / "priv/static/app.css").write_text("body { color: red }\n"),
        "addToRunPrepare: priv/static/app.css content changed",
    ),
    "a file added to a listed folder": (
        lambda p: (p / "priv/new.txt").write_text("x"),
        "addToRunPrepare: priv/new.txt added",
    ),
    "a listed file's mode": (
        lambda p: os.chmod(p / "gleam.toml", 0o755),
        "addToRunPrepare: gleam.toml mode changed: 644 -> 755",
    ),
}


@pytest.mark.parametrize("change", list(REBUILDS))
def test_a_change_that_matters_rebuilds_and_explain_names_it(project: Path, change: str) -> None:
    (project / "extra.txt").write_text("extra\n")
    os.chmod(project / "gleam.toml", 0o644)
    first = only(prepare_json(project))
    mutate, reason = REBUILDS[change]
    mutate(project)
    explained = only(prepare_json(project, "--explain"))
    assert explained["status"] == "would build"
    assert any(reason in r for r in explained["reasons"]), explained["reasons"]
    second = only(prepare_json(project))
    assert second["status"] == "built"
    assert second["fingerprint"] != first["fingerprint"]


def test_changing_run_os_is_explained_as_a_rebuild(project: Path) -> None:
    # Alpine cannot be fetched on an offline machine: --explain alone shows the invalidation.
    only(prepare_json(project))
    edit(
        project,
        "    run:\n      base: gleam@1.5\n      os: ubuntu",
        "    run:\n      base: gleam@1.5\n      os: alpine",
    )
    explained = only(prepare_json(project, "--explain"))
    assert explained["status"] == "would build"
    assert "run.os changed: 'ubuntu' -> 'alpine'" in explained["reasons"]


NO_REBUILD = {
    "touch": lambda p: os.utime(p / "gleam.toml", (1, 1)),
    "buildCommands": lambda p: edit(p, "echo building", "echo building again"),
    "deployFiles": lambda p: edit(p, "deployFiles: build/erlang-shipment/~", "deployFiles: ./"),
    "run.envVariables": lambda p: edit(p, "GREETING: hello", "GREETING: bonjour"),
    "start": lambda p: edit(p, "start: ./entrypoint.sh run", "start: ./entrypoint.sh start"),
    "initCommands": lambda p: edit(p, "echo init", "echo init twice"),
    "build.base": lambda p: edit(p, "    build:\n      base: gleam@1.5", "    build:\n      base: gleam@1"),
}


@pytest.mark.parametrize("change", list(NO_REBUILD))
def test_a_change_that_does_not_matter_keeps_the_image(project: Path, change: str) -> None:
    first = only(prepare_json(project))
    NO_REBUILD[change](project)
    explained = only(prepare_json(project, "--explain"))
    assert explained["status"] == "up to date", explained["reasons"]
    proc = invoke(project, "prepare", "--json", env={"BUILDX_BUILDER": "no-such-builder-cri-test"})
    assert proc.returncode == 0, proc.stderr
    second = only(json.loads(proc.stdout))
    assert second["status"] == "up to date" and second["image_id"] == first["image_id"]


def test_force_rebuilds_with_the_layer_cache_and_no_cache_without_it(project: Path) -> None:
    first = only(prepare_json(project))
    forced = only(prepare_json(project, "--force"))
    assert (forced["status"], forced["fingerprint"]) == ("built", first["fingerprint"])
    assert "CACHED" in Path(forced["log"]).read_text()  # BuildKit's layer cache still applies
    fresh = only(prepare_json(project, "--no-cache"))
    assert (fresh["status"], fresh["fingerprint"]) == ("built", first["fingerprint"])
    log = Path(fresh["log"]).read_text()
    steps = set(re.findall(r"^#(\d+) \[\s*\d+/\d+\] (?!FROM )", log, re.M))
    assert len(steps) > 5 and not steps & set(re.findall(r"^#(\d+) CACHED", log, re.M))
    assert "whoami > whoami.txt" in log
    assert in_image(fresh["image"], "cat /home/zerops/whoami.txt") == "zerops"
    again = only(prepare_json(project))  # the rebuilt image is the current one now
    assert (again["status"], again["image_id"]) == ("up to date", fresh["image_id"])


def test_an_image_removed_behind_the_cache_is_detected_and_rebuilt(project: Path) -> None:
    first = only(prepare_json(project))
    docker("image", "rm", "-f", first["image"])
    explained = only(prepare_json(project, "--explain"))
    assert explained["reasons"] == [f"image {first['image']} was removed"]
    assert only(prepare_json(project))["status"] == "built"


def test_a_failing_prepare_command_names_its_line_exit_code_output_and_log(project: Path) -> None:
    edit(
        project,
        "        - ls -A /var/www | wc -l > www-count.txt\n",
        "        - ls -A /var/www | wc -l > www-count.txt\n        - |\n          echo about to fail\n          exit 3\n",
    )
    proc = invoke(project, "prepare")
    assert proc.returncode == 1
    err = proc.stderr
    assert "[app] PREPARING_RUNTIME_FAILED: zerops.yml:18: run.prepareCommands[2] failed with exit code 3" in err
    assert "  command: |\n    echo about to fail\n    exit 3\n" in err
    assert "about to fail" in err.split("last lines of its output:")[1]
    assert "Traceback" not in err
    log = Path(err.split("full log: ")[1].split()[0])
    assert "about to fail" in log.read_text()
    # Nothing recorded as a good image: the next explain still wants a build.
    assert only(prepare_json(project, "--explain"))["status"] == "would build"
    shown = invoke(project, "logs", "--setup", "app", "--prepare")
    assert shown.returncode == 0 and "about to fail" in shown.stdout


def test_prepare_json_failure_lists_the_status(project: Path) -> None:
    edit(project, "whoami > whoami.txt", "exit 5")
    proc = invoke(project, "prepare", "--json")
    assert proc.returncode == 1
    entry = only(json.loads(proc.stdout))
    assert (entry["status"], entry["error"]) == ("failed", "PREPARING_RUNTIME_FAILED") and entry["image"] is None
    assert Path(entry["log"]).is_file()
    (error,) = json.loads(proc.stdout)["errors"]
    assert (error["kind"], error["exit_code"], error["log"]) == ("PREPARING_RUNTIME_FAILED", 5, entry["log"])
    assert error["file"].endswith("zerops.yml") and error["step"] == "run.prepareCommands"


def test_debug_opens_a_shell_in_the_state_before_the_failing_command(project: Path) -> None:
    edit(
        project,
        "        - ls -A /var/www | wc -l > www-count.txt\n",
        "        - ls -A /var/www | wc -l > www-count.txt\n        - cat missing-file\n",
    )
    proc = invoke(project, "prepare", "--debug", input="whoami; pwd; cat www-count.txt; exit\n")
    assert proc.returncode == 1
    assert "zerops\n/home/zerops\n0\n" in proc.stdout  # the previous commands ran, as zerops
    assert "cat missing-file" in proc.stderr


def test_clean_forgets_the_record_and_images_removes_the_image(project: Path) -> None:
    first = only(prepare_json(project))
    proc = invoke(project, "clean", "--setup", "app")
    assert proc.returncode == 0 and "forgot 1 record(s)" in proc.stdout
    explained = only(prepare_json(project, "--explain"))
    assert explained["status"] == "would build"
    assert only(prepare_json(project))["status"] == "built"
    proc = invoke(project, "clean", "--images")
    assert proc.returncode == 0 and first["image"] in proc.stdout
    assert subprocess.run(["docker", "image", "inspect", first["image"]], capture_output=True).returncode != 0


def test_concurrent_prepares_of_the_same_image_build_once(project: Path) -> None:
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "invoke", "prepare", "--json"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    entries = [only(json.loads(o[0])) for o in outs]
    assert sorted(e["status"] for e in entries) == ["built", "up to date", "up to date"]
    assert len({e["image_id"] for e in entries}) == 1


def test_several_setups_build_in_one_call(tmp_path: Path, engine_settings: dict[str, Any]) -> None:
    two = (
        APP
        + """
  - setup: worker
    run:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - echo worker > role.txt
"""
    )
    proj = make_project(tmp_path / "proj", two, files=FILES, settings=engine_settings)
    doc = prepare_json(proj)
    assert [(e["setup"], e["status"]) for e in doc["setups"]] == [("app", "built"), ("worker", "built")]
    assert in_image(doc["setups"][1]["image"], "cat /home/zerops/role.txt") == "worker"
    only_worker = prepare_json(proj, "--setup", "worker")
    assert [(e["setup"], e["status"]) for e in only_worker["setups"]] == [("worker", "up to date")]


def test_a_setup_without_prepare_commands_gets_the_default_runtime(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    plain = """
zerops:
  - setup: app
    run:
      base: gleam@1.5
      os: ubuntu
      start: ./entrypoint.sh run
"""
    proj = make_project(tmp_path / "proj", plain, settings=engine_settings)
    entry = only(prepare_json(proj))
    assert entry["status"] == "built"
    assert in_image(entry["image"], "whoami; pwd; ls -A /var/www | wc -l") == "zerops\n/var/www\n0"
    assert in_image(entry["image"], "erl -noshell -eval 'io:format(\"ok\"), halt().'") == "ok"
    assert only(prepare_json(proj))["status"] == "up to date"
