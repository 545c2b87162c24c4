"""Dockerfile rendering: exec-form commands, the templates, and commands surviving the trip."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import make_project, only, prepare_json
from hypothesis import given, settings
from hypothesis import strategies as st

from cri_tasks import api
from cri_tasks.dockerfile import exec_form, render
from cri_tasks.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden"

ALPINE = """
zerops:
  - setup: app
    build:
      deployFiles: build/erlang-shipment/~
      addToRunPrepare:
        - gleam.toml
        - manifest.toml
    run:
      base: gleam@1.5
      prepareCommands:
        - sudo apk add imagemagick
        - gleam deps download
        - |
          cat > notes.txt <<EOF
          a "quoted" $HOME \\ line
          EOF
"""

TRICKY = [
    "echo \"double  quoted\" 'single $HOME' $HOME",
    "printf '%s\\n' back\\\\slash",
    "false && echo no || echo yes",
    "cat <<EOF\nheredoc $HOME\nEOF",
    "echo one \\\ntwo",
    "echo trailing \\",
    'echo "$(whoami)" `id -un`; echo semi; echo amp &',
    "echo '\"]\nRUN echo injected'",
]


@pytest.mark.parametrize("command", TRICKY)
def test_a_command_in_exec_form_decodes_to_exactly_itself(command: str) -> None:
    line = exec_form(command)
    assert json.loads(line) == ["/bin/sh", "-c", command]
    assert "\n" not in line and not line.endswith("\\")
    assert "<" not in line  # no heredoc marker the Dockerfile frontend could read


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_stays_one_dockerfile_line_and_round_trips(command: str) -> None:
    line = exec_form(command)
    assert json.loads(line) == ["/bin/sh", "-c", command]
    assert len(line.splitlines()) == 1 and line.isascii()


def test_jinja_does_not_escape_shell_operators() -> None:
    out = render("_prepare.j2", {"add_files": False, "commands": ["a && b > c"]})
    assert 'RUN ["/bin/sh", "-c", "a && b > c"]' in out


def _render_alpine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("cri_tasks.runtimes.gleam_arch", lambda machine=None: "x86_64")
    proj = make_project(tmp_path / "p", ALPINE, files={"gleam.toml": "", "manifest.toml": ""})
    settings = {"cache_dir": str(tmp_path / "cache")}
    return api.render(proj / "zerops.yml", settings=settings)["app"]


def test_the_alpine_template_matches_its_golden_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _render_alpine(tmp_path, monkeypatch)
    golden = GOLDEN / "alpine.Dockerfile"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()


def test_every_alpine_shell_step_passes_sh_n(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _render_alpine(tmp_path, monkeypatch)
    joined = out.replace("\\\n", " ")
    scripts = []
    for line in joined.splitlines():
        if line.startswith("RUN "):
            body = line[4:]
            scripts.append(json.loads(body)[2] if body.startswith("[") else body)
    assert len(scripts) >= 5
    for i, script in enumerate(scripts):
        path = tmp_path / f"step{i}.sh"
        path.write_text(script)
        check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, (script, check.stderr)


def test_an_unsupported_run_base_names_the_supported_ones(tmp_path: Path) -> None:
    proj = make_project(tmp_path / "p", "zerops:\n  - setup: app\n    run:\n      base: nodejs@20\n")
    with pytest.raises(ConfigError) as err:
        api.render(proj / "zerops.yml", settings={"cache_dir": str(tmp_path / "c")})
    message = str(err.value)
    assert "zerops.yml:4:" in message and "unsupported base 'nodejs@20'" in message
    assert "gleam@1, gleam@1.5, gleam@1.5.1, gleam@latest" in message


@pytest.mark.engine
def test_commands_run_exactly_as_written_in_a_real_build(tmp_path: Path, engine_settings: dict[str, Any]) -> None:
    commands = [
        "echo \"double  quoted\" 'single $HOME' $HOME > out1",
        "printf '%s\\n' 'back\\slash' > out2",
        "false && echo no > out3 || echo yes > out3",
        "|\n          cat > out4 <<EOF\n          heredoc $HOME\n          EOF",
        "echo one \\\n          two > out5",
        "|\n          echo first > out6\n          echo second >> out6",
        "echo '\"]' > out7 # RUN echo injected",
    ]
    items = "".join(f"        - {c}\n" for c in commands)
    yml = f"zerops:\n  - setup: app\n    run:\n      base: gleam@1.5\n      os: ubuntu\n      prepareCommands:\n{items}"
    proj = make_project(tmp_path / "p", "")
    (proj / "zerops.yml").write_text(yml)
    (proj / "invoke.yaml").write_text(json.dumps({"cri": engine_settings}))
    image = only(prepare_json(proj))["image"]
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "never",
            image,
            "sh",
            "-c",
            "cd /home/zerops && for f in out1 out2 out3 out4 out5 out6 out7; do cat $f; done",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (
        "double  quoted single $HOME /home/zerops\n"
        "back\\slash\n"
        "yes\n"
        "heredoc /home/zerops\n"
        "one  two\n"  # YAML folds the plain scalar's line break into a space: `one \ two`
        "first\nsecond\n"
        '"]\n'
    )
