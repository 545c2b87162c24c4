"""deployFiles with the ~ rule, .deployignore, and the build's view of the source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_tasks.artifact import assemble, ignore_spec, parse_deploy_path, stage_source
from cri_tasks.errors import ConfigError, Location
from cri_tasks.model import PathRef


def ref(value: str) -> PathRef:
    return PathRef(value, "zerops[0].build.deployFiles[0]", Location("zerops.yml", 8, 20))


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.rglob("*"))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    root = tmp_path / "built"
    for rel in [
        "build/erlang-shipment/entrypoint.sh",
        "build/erlang-shipment/hello/ebin/hello.beam",
        "src/assets/fonts/a.ttf",
        "src/assets/img/b.png",
        "src/app.erl",
        "debug.log",
        "README.md",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


def test_tilde_after_a_folder_puts_its_contents_at_the_root(built: Path, tmp_path: Path) -> None:
    assemble(built, tmp_path / "a", [ref("build/erlang-shipment/~")], ignore=ignore_spec(built))
    assert files(tmp_path / "a") == ["entrypoint.sh", "hello/", "hello/ebin/", "hello/ebin/hello.beam"]


def test_tilde_inside_a_path_strips_only_the_prefix_before_it(built: Path, tmp_path: Path) -> None:
    assemble(built, tmp_path / "a", [ref("./src/assets/~fonts")], ignore=ignore_spec(built))
    assert files(tmp_path / "a") == ["fonts/", "fonts/a.ttf"]


def test_a_plain_path_keeps_its_path_and_dot_is_everything(built: Path, tmp_path: Path) -> None:
    assemble(built, tmp_path / "a", [ref("src/app.erl"), ref("src/assets")], ignore=ignore_spec(built))
    assert files(tmp_path / "a") == [
        "src/",
        "src/app.erl",
        "src/assets/",
        "src/assets/fonts/",
        "src/assets/fonts/a.ttf",
        "src/assets/img/",
        "src/assets/img/b.png",
    ]
    assemble(built, tmp_path / "b", [ref("./")], ignore=ignore_spec(built))
    assert "README.md" in files(tmp_path / "b") and "build/erlang-shipment/entrypoint.sh" in files(tmp_path / "b")


def test_deployignore_filters_the_artifact(built: Path, tmp_path: Path) -> None:
    (built / ".deployignore").write_text("*.log\nimg/\n")
    assemble(built, tmp_path / "a", [ref(".")], ignore=ignore_spec(built, ".deployignore"))
    got = files(tmp_path / "a")
    assert "debug.log" not in got and "src/assets/img/b.png" not in got and "src/app.erl" in got


@pytest.mark.parametrize(
    ("value", "why"), [("../x", "leaves the project"), ("/etc", "is absolute"), ("a/~b/~c", "more than one '~'")]
)
def test_deploy_paths_that_escape_or_are_malformed_are_refused(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as err:
        parse_deploy_path(ref(value))
    assert str(err.value).startswith("zerops.yml:8:20: zerops[0].build.deployFiles[0]:")


def test_a_deploy_path_missing_after_the_build_is_named(built: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dist does not exist after the build"):
        assemble(built, tmp_path / "a", [ref("dist/~")], ignore=ignore_spec(built))


def test_a_deploy_path_through_a_symlink_pointing_outside_is_refused(built: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, built / "escape")
    with pytest.raises(ConfigError, match="points outside"):
        assemble(built, tmp_path / "a", [ref("escape")], ignore=ignore_spec(built))


def test_the_build_source_leaves_out_gitignored_files_git_and_the_cache_but_not_deployignored(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel in ["src/a.erl", "build/old.beam", ".git/HEAD", ".cri/records/x", "notes.tmp", "keep.tmp"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text("build/\n*.tmp\n!keep.tmp\n")
    (root / ".deployignore").write_text("secret.txt\n")
    (root / "secret.txt").write_text("s")
    (root / "project.env").write_text("TOKEN=x")
    stage_source(root, tmp_path / "src", cache_dir=root / ".cri", private=[root / "project.env"])
    # .deployignore filters the artifact only: the build sees secret.txt (issue 15, item 7)
    assert files(tmp_path / "src") == [".deployignore", ".gitignore", "keep.tmp", "secret.txt", "src/", "src/a.erl"]


@pytest.mark.parametrize("target", ["../etc/passwd", "/etc/passwd"])
def test_env_replace_targets_outside_var_www_are_refused(target: str) -> None:
    from cri_tasks.deploy_phase import check_env_replace_targets
    from cri_tasks.model import Deploy, EnvReplace, Run, Setup

    setup = Setup(
        "app",
        0,
        Run(
            env_replace=EnvReplace(
                ("%%",), (PathRef(target, "zerops[0].run.envReplace.target[0]", Location("zerops.yml", 12, 17)),)
            )
        ),
        Deploy(),
    )
    with pytest.raises(ConfigError, match="must stay inside /var/www") as err:
        check_env_replace_targets(setup)
    assert str(err.value).startswith("zerops.yml:12:17: zerops[0].run.envReplace.target[0]:")


@pytest.mark.parametrize("value", ["/", "/~"])
def test_slash_and_slash_tilde_deploy_the_whole_build_folder_like_dot_slash(
    built: Path, tmp_path: Path, value: str
) -> None:
    # Official recipes write "deployFiles: /": the whole build folder, not the host's root.
    assemble(built, tmp_path / "dot", [ref("./")], ignore=ignore_spec(built))
    assemble(built, tmp_path / "slash", [ref(value)], ignore=ignore_spec(built))
    assert files(tmp_path / "slash") == files(tmp_path / "dot")
    assert "build/erlang-shipment/entrypoint.sh" in files(tmp_path / "slash")
    assert (tmp_path / "slash" / "README.md").read_text() == "README.md"


@pytest.mark.parametrize(
    ("value", "why"),
    [("/etc", "is absolute"), ("//", "is absolute"), ("/~/x", "is absolute"), ("a\nb", "control character")],
)
def test_other_absolute_deploy_paths_stay_refused(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_deploy_path(ref(value))
