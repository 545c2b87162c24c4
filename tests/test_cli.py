"""The command line as users of invoke and docker expect it: ``cri``'s own options, one meaning per
short flag, check mode, ``--json`` documents, clean errors for whatever a user can cause."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cri_tasks.cli import KEPT_CORE, program
from cri_tasks.tasks import SHORT_FLAGS, TASKS
from helpers import invoke
from test_entry_points import cri, offline_project

TASKS_PY = "from cri_tasks import collection\nns = collection()\n"


# --- item 1: the cri program's own options ------------------------------------------------------

def test_cri_dash_f_before_the_task_is_the_zerops_yml_of_the_task(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    (project / "zerops.yml").rename(project / "other.yml")
    for flag in ("-f", "--file"):
        proc = cri(project, flag, "other.yml", "validate")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"{project / 'other.yml'}: valid, 1 setup(s)")


def test_cri_with_a_missing_zerops_yml_or_config_file_fails_and_names_it(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    missing = cri(project, "-f", "missing.yml", "validate")
    assert missing.returncode == 1 and "missing.yml" in missing.stderr and "Traceback" not in missing.stderr
    for args, env in ((["--config", "nope.yaml"], {}), ([], {"INVOKE_RUNTIME_CONFIG": "nope.yaml"})):
        proc = cri(project, *args, "validate", env=env)
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr.strip().endswith("nope.yaml: no such file")


def test_cri_config_names_a_settings_file_read_after_invoke_yaml(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj")
    (project / "ci.yaml").write_text("cri:\n  images:\n    ubuntu: from-config:3\n")
    proc = cri(project, "--config", "ci.yaml", "render")
    assert proc.returncode == 0, proc.stderr
    assert "FROM from-config:3" in proc.stdout


def test_cri_help_lists_only_the_core_options_that_mean_something(tmp_path: Path) -> None:
    proc = cri(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    core = proc.stdout.split("Core options:")[1].split("Subcommands:")[0]
    shown = sorted(word.split("=")[0].split("[")[0][2:] for word in core.split() if word.startswith("--"))
    assert shown == sorted([*KEPT_CORE, "config", "file"])


@pytest.mark.parametrize("flag", ["--dry", "--echo", "--hide=both", "--pty", "--warn-only",
                                  "--prompt-for-sudo-password", "--write-pyc", "--debug", "-d"])
def test_cri_refuses_invokes_run_options_before_doing_anything(tmp_path: Path, flag: str) -> None:
    project = offline_project(tmp_path / "proj")
    cache = project / ".cri"
    proc = cri(project, flag, "clean")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert not cache.exists()  # clean never ran


# --- item 2: one meaning per short flag ---------------------------------------------------------

def _names(arguments: Any) -> list[tuple[str, list[str]]]:
    return [(arg.name, [n for n in arg.names if len(n) == 1]) for arg in arguments]


def _task_arguments(task: Any) -> Any:
    fresh = copy.copy(task)
    fresh.help = dict(task.help)  # get_arguments() consumes the help dict
    return fresh.get_arguments()


def test_no_short_flag_means_two_things_across_tasks_and_cris_core_options() -> None:
    meaning: dict[str, set[str]] = {}
    for task in TASKS:
        for name, letters in _names(_task_arguments(task)):
            for letter in letters:
                meaning.setdefault(letter, set()).add(name.replace("-", "_"))
    for name, letters in _names(program().core_args()):
        for letter in letters:
            meaning.setdefault(letter, set()).add(name.replace("-", "_"))
    clashes = {letter: names for letter, names in meaning.items() if len(names) > 1}
    assert clashes == {}
    task_letters = {letter: name for task in TASKS for name, letters in _names(_task_arguments(task))
                    for letter in letters}
    assert task_letters == {v: k for k, v in SHORT_FLAGS.items() if k in task_letters.values()}


def test_the_short_flags_are_the_documented_ones(tmp_path: Path) -> None:
    project = offline_project(tmp_path / "proj", TASKS_PY)
    logs = invoke(project, "--help", "logs")
    assert "-n INT, --tail=INT" in logs.stdout and "-f STRING, --file=STRING" in logs.stdout
    assert "  --follow " in logs.stdout and "  --target=STRING" in logs.stdout
    prepare = invoke(project, "--help", "prepare")
    assert "  --debug " in prepare.stdout and "  --force " in prepare.stdout
    assert "-s STRING, --setup=STRING" in prepare.stdout and "-j, --json" in prepare.stdout
