"""The build container as Zerops describes it, on the real engine (issue 15, items 6, 7, 8, 10, 12, 13):
the source in /build/source before build.prepareCommands, which a source change does not re-run;
.deployignore filtering the artifact only; deployFiles "/" and "/~"; build.cache patterns kept
between builds and dropped with the base layer; bash and Erlang/OTP 26+ in the build container
(``ubuntu`` mapped to Debian 12, as in every engine test here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cri_tasks import api

pytestmark = pytest.mark.engine

BUILD = """\
zerops:
  - setup: app
    build:
      base: gleam@1.5
      os: ubuntu
      prepareCommands:
        - cat /build/source/VERSION > /home/zerops/prepared-from
        - date +%s%N > /home/zerops/prepare-stamp
      buildCommands:
        - bash -c 'shopt -s extglob; echo bash ok' > bash.txt
        - cat src/main.txt > out.txt
        - erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' > otp.txt
        - cp /home/zerops/prepared-from /home/zerops/prepare-stamp .
        - mkdir -p deps sub && (cat deps/n 2>/dev/null || echo 0) > prev.txt && echo $(( $(cat prev.txt) + 1 )) > deps/n
        - (cat sub/a.txt 2>/dev/null || echo none) > prev-sub.txt; (test -e sub/b.md && echo yes || echo no) > had-md.txt
        - echo kept > sub/a.txt && echo not-matched > sub/b.md
      deployFiles: {deploy_files}
      cache:
        - ./deps/
        - "sub/*.txt"
"""


def _project(root: Path, settings: dict[str, Any], deploy_files: str = "/") -> Path:
    import yaml

    root.mkdir()
    (root / "zerops.yml").write_text(BUILD.format(deploy_files=deploy_files))
    (root / "invoke.yaml").write_text(yaml.safe_dump({"cri": settings}))
    (root / "VERSION").write_text("1\n")
    (root / "src").mkdir()
    (root / "src" / "main.txt").write_text("v1\n")
    (root / ".deployignore").write_text("src/\n")
    return root


def _build(root: Path, settings: dict[str, Any], lines: list[str]) -> dict[str, str]:
    (result,) = api.build(root / "zerops.yml", settings=settings, report=lines.append)
    art = Path(result.artifact)
    return {p.relative_to(art).as_posix(): p.read_text() for p in art.rglob("*") if p.is_file()}


def test_the_source_is_there_for_prepare_commands_which_a_source_change_does_not_rerun(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    root = _project(tmp_path / "p", engine_settings)
    lines: list[str] = []
    first = _build(root, engine_settings, lines)
    assert first["prepared-from"] == "1\n"  # item 6: /build/source is there for build.prepareCommands
    assert first["out.txt"] == "v1\n"  # item 7: ".deployignore: src/" did not hide src/ from the build
    assert not any(k.startswith("src/") for k in first)  # ... but it filters the artifact
    assert first["bash.txt"] == "bash ok\n"  # item 12: bash in the build container
    assert int(first["otp.txt"]) >= 26  # item 13: the Erlang/OTP Zerops ships with gleam@1.5, or newer
    assert (first["prev.txt"], first["prev-sub.txt"], first["had-md.txt"]) == ("0\n", "none\n", "no\n")
    assert {"VERSION", "zerops.yml", "deps/n"} <= first.keys()  # item 8: "/" is the whole build folder

    (root / "VERSION").write_text("2\n")
    (root / "src" / "main.txt").write_text("v2\n")
    lines.clear()
    second = _build(root, engine_settings, lines)
    assert second["out.txt"] == "v2\n"
    # the base layer was reused: prepareCommands did not run again for a source change
    assert second["prepared-from"] == "1\n" and second["prepare-stamp"] == first["prepare-stamp"]
    assert any("base layer up to date" in line for line in lines), lines
    # item 10: "./deps/" and "sub/*.txt" were kept, sub/b.md (not matched) was not
    assert (second["prev.txt"], second["prev-sub.txt"], second["had-md.txt"]) == ("1\n", "kept\n", "no\n")

    # a prepareCommands change invalidates both layers, as on Zerops: prepare runs again (on
    # today's source) and the cache starts empty
    text = (
        (root / "zerops.yml").read_text().replace("        - date +%s%N", "        - echo again\n        - date +%s%N")
    )
    (root / "zerops.yml").write_text(text)
    third = _build(root, engine_settings, lines)
    assert third["prepared-from"] == "2\n" and third["prepare-stamp"] != first["prepare-stamp"]
    assert (third["prev.txt"], third["prev-sub.txt"]) == ("0\n", "none\n")


def test_deploy_files_slash_tilde_is_the_whole_build_folder_and_cache_false_keeps_no_source(
    tmp_path: Path, engine_settings: dict[str, Any]
) -> None:
    root = _project(tmp_path / "p", engine_settings, deploy_files="/~")
    text = (root / "zerops.yml").read_text()
    (root / "zerops.yml").write_text(text[: text.index("      cache:")] + "      cache: false\n")
    lines: list[str] = []
    first = _build(root, engine_settings, lines)
    assert {"VERSION", "out.txt", "deps/n", "sub/a.txt"} <= first.keys()
    second = _build(root, engine_settings, lines)
    assert (second["prev.txt"], second["prev-sub.txt"]) == ("0\n", "none\n")
    assert second["prepare-stamp"] == first["prepare-stamp"]  # the base layer stays cached
