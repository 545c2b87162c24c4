"""Unit tests of cri_tasks.loader: zerops.yml reading, YAML 1.2 scalars, validation, extends."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cri_tasks import loader
from cri_tasks.errors import ConfigError, Location, Problem
from cri_tasks.loader import find_config, load_data, load_project, parse_duration
from cri_tasks.model import Project

GLEAM = """\
zerops:
  - setup: app
    build:
      base: gleam@1.5
      buildCommands:
        - gleam export erlang-shipment
      deployFiles: build/erlang-shipment/~
    run:
      base: gleam@1.5
      start: ./entrypoint.sh run
"""


class Yml:
    """Writes zerops.yml files into a temporary project directory (the current directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, text: str, name: str = "zerops.yml") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def load(self, text: str) -> Project:
        self.write(text)
        return load_project("zerops.yml")

    def problems(self, text: str) -> list[Problem]:
        self.write(text)
        with pytest.raises(ConfigError) as caught:
            load_project("zerops.yml")
        return list(caught.value.problems)

    def problem(self, text: str) -> Problem:
        found = self.problems(text)
        assert len(found) == 1, [str(p) for p in found]
        return found[0]


@pytest.fixture
def yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Yml:
    monkeypatch.chdir(tmp_path)
    return Yml(tmp_path)


def at(problem: Problem) -> tuple[int, int]:
    assert problem.location is not None, str(problem)
    return problem.location.line, problem.location.column


# --------------------------------------------------------------------------------------------
# Finding the file
# --------------------------------------------------------------------------------------------


def test_find_config_prefers_zerops_yaml_over_zerops_yml(yml: Yml) -> None:
    yml.write(GLEAM, "zerops.yml")
    yml.write(GLEAM, "zerops.yaml")
    assert find_config(None, cwd=yml.root) == yml.root / "zerops.yaml"


def test_find_config_falls_back_to_zerops_yml(yml: Yml) -> None:
    yml.write(GLEAM, "zerops.yml")
    assert find_config(None, cwd=yml.root) == yml.root / "zerops.yml"
    assert find_config(None) == Path.cwd() / "zerops.yml"


def test_find_config_names_what_it_looked_for_when_nothing_is_there(yml: Yml) -> None:
    with pytest.raises(ConfigError, match=r"no zerops\.yaml or zerops\.yml in"):
        find_config(None, cwd=yml.root)


def test_find_config_looks_inside_a_directory_given_as_path(yml: Yml) -> None:
    (yml.root / "svc").mkdir()
    yml.write(GLEAM, "svc/zerops.yml")
    assert find_config("svc") == Path("svc/zerops.yml")
    with pytest.raises(ConfigError, match=r"^empty: no zerops\.yaml or zerops\.yml in this directory$"):
        (yml.root / "empty").mkdir()
        find_config("empty")


def test_find_config_resolves_a_relative_path_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "custom.yml").write_text(GLEAM)
    assert find_config("custom.yml", cwd=tmp_path) == tmp_path / "custom.yml"


def test_a_missing_file_is_a_config_error(yml: Yml) -> None:
    with pytest.raises(ConfigError, match=r"^nope\.yml: no such file$"):
        load_project("nope.yml")


def test_locations_show_the_path_as_the_user_gave_it(yml: Yml) -> None:
    bad = GLEAM.replace("start: ./entrypoint.sh run", "start: 1")
    yml.write(bad)
    (yml.root / "svc").mkdir()
    yml.write(bad, "svc/zerops.yml")
    for given, shown in [(None, "zerops.yml"), ("zerops.yml", "zerops.yml"), ("svc", "svc/zerops.yml")]:
        with pytest.raises(ConfigError) as caught:
            load_project(given)
        assert caught.value.problems[0].location == Location(shown, 10, 14)
        assert str(caught.value).startswith(f"{shown}:10:14: zerops[0].run.start: expected a string")


def test_the_project_file_is_absolute_and_its_folder_is_the_root(yml: Yml) -> None:
    project = yml.load(GLEAM)
    assert project.file == yml.root / "zerops.yml"
    assert project.root == yml.root


# --------------------------------------------------------------------------------------------
# Files that are not zerops.yml at all
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n   \n", "# only\n# comments\n", "---\n"])
def test_an_empty_file_or_one_with_only_comments_is_empty(yml: Yml, content: str) -> None:
    (yml.root / "zerops.yml").write_text(content)
    with pytest.raises(ConfigError, match=r"^zerops\.yml: is empty"):
        load_project("zerops.yml")


def test_a_binary_file_is_not_a_text_file(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    with pytest.raises(ConfigError, match=r"^zerops\.yml:1:8: not a text file \(it contains NUL bytes\)"):
        load_project("zerops.yml")


def test_invalid_utf8_is_not_a_text_file_and_points_at_the_byte(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_bytes(b"zerops:\n  - setup: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_project("zerops.yml")
    (problem,) = caught.value.problems
    assert at(problem) == (2, 15)
    assert "not a text file (invalid UTF-8 byte 0xe9)" in problem.message


def test_a_utf16_file_is_asked_to_be_saved_as_utf8(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_bytes(GLEAM.encode("utf-16"))
    with pytest.raises(ConfigError, match="UTF-16 encoded; save it as UTF-8"):
        load_project("zerops.yml")


def test_a_control_character_is_reported_with_its_line_and_column(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_text("zerops:\n  - setup: a\x1bpp\n")
    with pytest.raises(ConfigError) as caught:
        load_project("zerops.yml")
    (problem,) = caught.value.problems
    assert at(problem) == (2, 13)
    assert problem.message.startswith("unacceptable character U+001B")


def test_a_byte_order_mark_is_accepted(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_bytes(b"\xef\xbb\xbf" + GLEAM.encode())
    assert load_project("zerops.yml").setup_names() == ["app"]


def test_a_file_over_one_mebibyte_is_refused_without_parsing(yml: Yml, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed a file that is too large")

    monkeypatch.setattr(loader.yaml, "compose", no_parsing)
    size = 1024 * 1024 + 1
    (yml.root / "zerops.yml").write_text("#" * (size - 1) + "\n")
    with pytest.raises(ConfigError, match=rf"^zerops\.yml: too large \({size} bytes, limit 1 MiB\)$"):
        load_project("zerops.yml")


def test_a_directory_where_the_file_was_expected_is_reported(yml: Yml) -> None:
    (yml.root / "zerops.yml").mkdir()
    with pytest.raises(ConfigError, match=r"^zerops\.yml: is a directory"):
        load_project(None)


def test_an_unreadable_file_is_a_config_error(yml: Yml, monkeypatch: pytest.MonkeyPatch) -> None:
    yml.write(GLEAM)

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ConfigError, match=r"^zerops\.yml: cannot read it: permission denied$"):
        load_project("zerops.yml")


def test_malformed_yaml_reports_the_problem_mark(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            run:
              start: [unclosed
        """
    )
    assert at(problem) == (5, 1)
    assert problem.message.startswith("invalid YAML: ")


def test_a_tab_in_indentation_is_malformed_yaml(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n\trun: {}\n")
    assert at(problem) == (3, 1)
    assert "invalid YAML" in problem.message


def test_a_second_document_is_an_error(yml: Yml) -> None:
    problem = yml.problem(GLEAM + "---\n" + GLEAM)
    assert at(problem) == (11, 1)
    assert "single document" in problem.message


def test_an_unsupported_tag_is_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: !!binary YXBw\n")
    assert str(problem) == "zerops.yml:2:12: zerops[0].setup: unsupported YAML tag !!binary"


def test_a_yaml_bomb_is_refused(yml: Yml) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[level]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    problem = yml.problem("\n".join(lines) + "\n")
    assert "more than 100000 nodes (aliases expanded)" in problem.message


def test_a_recursive_alias_is_refused(yml: Yml) -> None:
    problem = yml.problem("zerops: &loop\n  - *loop\n")
    assert problem.message == "recursive alias: this node contains itself"
    assert at(problem) == (1, 9)  # the anchor


def test_deep_nesting_is_refused(yml: Yml) -> None:
    problem = yml.problem("zerops: " + "[" * 200 + "]" * 200 + "\n")
    assert "nested" in problem.message and "deep" in problem.message


def test_anchors_and_merge_keys_are_allowed_and_keep_their_locations(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: prod
            run: &run
              base: gleam@1.5
              initCommands:
                - migrate
              start: ./entrypoint.sh run
          - setup: dev
            run:
              <<: *run
              start: zsc noop
        """
    )
    dev = project.select("dev")[0]
    assert dev.run.base == "gleam@1.5"
    assert dev.run.start is not None and dev.run.start.text == "zsc noop"
    (migrate,) = dev.run.init_commands
    # written on line 6, used (and named) in the second entry
    assert (migrate.location.line, migrate.path) == (6, "zerops[1].run.initCommands[0]")


# --------------------------------------------------------------------------------------------
# YAML 1.2 scalars
# --------------------------------------------------------------------------------------------


def test_yes_no_on_off_y_n_are_strings(yml: Yml) -> None:
    words = ["yes", "No", "ON", "off", "y", "N"]
    project = yml.load(
        "zerops:\n  - setup: yes\n    run:\n      initCommands: [" + ", ".join(words) + "]\n"
        "      envVariables: {" + ", ".join(f"V{i}: {w}" for i, w in enumerate(words)) + "}\n"
    )
    (setup,) = project.setups
    assert setup.name == "yes"
    assert [c.text for c in setup.run.init_commands] == words
    assert list(setup.run.env_variables.values()) == words


def test_true_and_false_in_their_three_spellings_are_booleans(yml: Yml) -> None:
    path = yml.write("[true, True, TRUE, false, False, FALSE, tRUE]\n")
    assert load_data(path) == [True, True, True, False, False, False, "tRUE"]


def test_0755_is_decimal_and_0o755_is_octal(yml: Yml) -> None:
    path = yml.write("[0755, 0o755, 0x1F, -12, +3, 1_000]\n")
    assert load_data(path) == [755, 0o755, 31, -12, 3, "1_000"]


def test_sexagesimal_numbers_and_dates_stay_strings(yml: Yml) -> None:
    path = yml.write("[22:22, 2026-01-02, 2026-01-02T10:00:00Z, 190:20:30.15]\n")
    assert load_data(path) == ["22:22", "2026-01-02", "2026-01-02T10:00:00Z", "190:20:30.15"]


def test_1e3_is_a_number(yml: Yml) -> None:
    path = yml.write("[1e3, 1.0e3, .5, 1., -.inf, .NaN, 1.5e+3]\n")
    values = load_data(path)
    assert values[:4] == [1000.0, 1000.0, 0.5, 1.0]
    assert values[4] == float("-inf") and values[5] != values[5] and values[6] == 1500.0


def test_null_has_its_spellings_and_the_empty_value(yml: Yml) -> None:
    path = yml.write("a: null\nb: ~\nc:\nd: NULL\ne: nULL\n")
    assert load_data(path) == {"a": None, "b": None, "c": None, "d": None, "e": "nULL"}


def test_load_data_keys_are_their_source_text(yml: Yml) -> None:
    path = yml.write("1: a\ntrue: b\n~: c\n")
    assert load_data(path) == {"1": "a", "true": "b", "~": "c"}


def test_load_data_reports_duplicate_keys(yml: Yml) -> None:
    path = yml.write("a: 1\nb: 2\na: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_data(path)
    assert at(caught.value.problems[0]) == (3, 1)


def test_an_integer_with_thousands_of_digits_is_an_error_not_a_crash(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    run:\n      envVariables:\n        A: " + "1" * 5000 + "\n")
    assert (problem.path, at(problem)) == ("zerops[0].run.envVariables.A", (5, 12))
    assert problem.message.endswith("has too many digits")


def test_env_values_become_strings_and_numbers_keep_their_source_text(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: app
            run:
              envVariables:
                PORT: 4000
                MODE: 0755
                HEX: 0x1F
                BIG: 1e3
                RATIO: 0.50
                DEBUG: true
                OFF: False
                TEXT: "quoted"
                REF: ${db_hostname}
        """
    )
    assert dict(project.setups[0].run.env_variables) == {
        "PORT": "4000",
        "MODE": "0755",
        "HEX": "0x1F",
        "BIG": "1e3",
        "RATIO": "0.50",
        "DEBUG": "true",
        "OFF": "false",
        "TEXT": "quoted",
        "REF": "${db_hostname}",
    }


def test_a_null_env_value_warns_and_becomes_an_empty_string(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: app
            run:
              envVariables:
                A: null
                B:
        """
    )
    assert dict(project.setups[0].run.env_variables) == {"A": "", "B": ""}
    first, second = _besides_base(project.warnings)
    assert str(first) == "zerops.yml:5:12: warning: zerops[0].run.envVariables.A: null value, used as an empty string"
    assert first.severity == "warning"
    assert at(second) == (6, 9)


def test_an_env_value_that_is_a_list_is_an_error(yml: Yml) -> None:
    problem = yml.problem(
        "zerops:\n  - setup: app\n    build:\n      deployFiles: ./\n      envVariables:\n        A: [1]\n"
    )
    assert at(problem) == (6, 12)
    assert problem.message == "expected a string, number or boolean, got a list"
    assert problem.path == "zerops[0].build.envVariables.A"


# --------------------------------------------------------------------------------------------
# Types, one test per kind of error, each at its exact place
# --------------------------------------------------------------------------------------------


def test_a_string_given_for_a_port_names_the_field_and_the_place(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            run:
              ports:
                - port: http
        """
    )
    assert str(problem) == 'zerops.yml:5:17: zerops[0].run.ports[0].port: expected an integer 10..65435, got "http"'


@pytest.mark.parametrize("port", ["9", "65436", "-1", "3000.0", "true", '"3000"'])
def test_a_port_outside_10_to_65435_or_not_an_integer_is_an_error(yml: Yml, port: str) -> None:
    problem = yml.problem(f"zerops:\n  - setup: app\n    run:\n      ports:\n        - port: {port}\n")
    assert at(problem) == (5, 17)
    assert problem.message.startswith("expected an integer 10..65435, got")


@pytest.mark.parametrize(
    ("snippet", "path", "column", "message"),
    [
        ("setup: 12", "zerops[0].setup", 12, 'expected a non-empty string, got the number 12 (quote it: "12")'),
        ('setup: ""', "zerops[0].setup", 12, 'expected a non-empty string, got ""'),
        ("extends: {a: 1}", "zerops[0].extends", 14, "expected a string or a list of strings, got a mapping"),
        ("build: [x]", "zerops[0].build", 12, "expected a mapping, got a list"),
        ("run: null", "zerops[0].run", 10, "expected a mapping, got null"),
        ("run: {os: debian}", "zerops[0].run.os", 15, 'expected one of "alpine", "ubuntu", got "debian"'),
        ("run: {start: [a]}", "zerops[0].run.start", 18, "expected a string, got a list"),
        ("run: {start: 3.20}", "zerops[0].run.start", 18, 'expected a string, got the number 3.20 (quote it: "3.20")'),
        ("run: {initCommands: x}", "zerops[0].run.initCommands", 25, 'expected a list of strings, got "x"'),
        (
            "run: {initCommands: [ok, 7]}",
            "zerops[0].run.initCommands[1]",
            30,
            'expected a string, got the number 7 (quote it: "7")',
        ),
        ("run: {ports: {port: 80}}", "zerops[0].run.ports", 18, "expected a list of ports, got a mapping"),
        (
            "run: {ports: [{port: 80, httpSupport: yes}]}",
            "zerops[0].run.ports[0].httpSupport",
            43,
            'expected true or false, got "yes"',
        ),
        (
            "run: {ports: [{port: 80, protocol: http}]}",
            "zerops[0].run.ports[0].protocol",
            40,
            'expected one of "tcp", "udp", got "http"',
        ),
        (
            "run: {envVariables: [A]}",
            "zerops[0].run.envVariables",
            25,
            "expected a mapping of variable names to values, got a list",
        ),
        (
            "run: {crontab: [{timing: '* * * * *', command: x, allContainers: 1}]}",
            "zerops[0].run.crontab[0].allContainers",
            70,
            "expected true or false, got the number 1",
        ),
        (
            "deploy: {temporaryShutdown: no}",
            "zerops[0].deploy.temporaryShutdown",
            33,
            'expected true or false, got "no"',
        ),
        (
            "run: {envReplace: {delimiter: [1], target: x}}",
            "zerops[0].run.envReplace.delimiter[0]",
            36,
            'expected a string, got the number 1 (quote it: "1")',
        ),
        (
            "run: {routing: {redirects: [{from: /a, to: /b, status: x}]}}",
            "zerops[0].run.routing.redirects[0].status",
            60,
            'expected an integer, got "x"',
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_at_its_place(
    yml: Yml, snippet: str, path: str, column: int, message: str
) -> None:
    if snippet.startswith("setup"):
        text, line = "zerops:\n  - " + snippet + "\n", 2
    else:
        text, line = "zerops:\n  - setup: app\n    " + snippet + "\n", 3
    problem = yml.problem(text)
    assert (problem.path, problem.message, at(problem)) == (path, message, (line, column))


def test_a_null_zerops_list_is_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops:\n")
    assert (problem.path, problem.message) == ("zerops", "expected a list of setups, got null")


def test_an_empty_zerops_list_is_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops: []\n")
    assert at(problem) == (1, 9)
    assert "the list is empty" in problem.message


def test_the_root_must_be_a_mapping_with_zerops(yml: Yml) -> None:
    assert yml.problem("- setup: app\n").message == 'expected a mapping with the key "zerops", got a list'
    missing = yml.problem("{}\n")
    assert missing.message.startswith('missing required key "zerops"')


def test_the_root_holds_only_zerops(yml: Yml) -> None:
    problem = yml.problem(GLEAM + "zerop: 1\n")
    assert at(problem) == (11, 1)
    assert problem.message == 'unknown key "zerop" (did you mean "zerops"?); the root holds only "zerops"'


def test_an_entry_must_be_a_mapping_with_setup(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - app\n")
    assert (problem.path, at(problem)) == ("zerops[0]", (2, 5))
    assert problem.message == 'expected a mapping with "setup", got "app"'


def test_a_missing_setup_is_reported_at_the_entry(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - run:\n      start: x\n")
    assert str(problem) == 'zerops.yml:2:5: zerops[0]: missing required key "setup"'


def test_a_missing_required_key_is_reported_at_the_parent_key(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            deploy:
              readinessCheck:
                httpGet:
                  port: 8080
        """
    )
    assert str(problem) == 'zerops.yml:5:9: zerops[0].deploy.readinessCheck.httpGet: missing required key "path"'


def test_unknown_key_suggests_the_nearest_known_one(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            build:
              deployFiles: ./
              prepareCommand:
                - apk add git
        """
    )
    assert str(problem) == (
        'zerops.yml:5:7: zerops[0].build: unknown key "prepareCommand" (did you mean "prepareCommands"?)'
    )


def test_unknown_key_suggestion_ignores_case(yml: Yml) -> None:
    problems = yml.problems("zerops:\n  - setup: app\n    build:\n      deployfiles: ./\n")
    assert [p.message for p in problems] == [
        'missing required key "deployFiles"',
        'unknown key "deployfiles" (did you mean "deployFiles"?)',
    ]


def test_unknown_key_without_a_close_match_has_no_suggestion(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    run:\n      banana: 1\n")
    assert problem.message == 'unknown key "banana"'
    assert at(problem) == (4, 7)


def test_a_duplicate_key_is_reported_at_the_second_key(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            run:
              start: a
              base: gleam@1.5
              start: b
        """
    )
    assert str(problem) == 'zerops.yml:6:7: zerops[0].run: duplicate key "start" (first written at line 4)'


def test_duplicate_setup_names_are_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n  - setup: api\n  - setup: app\n")
    assert str(problem) == 'zerops.yml:4:12: zerops[2].setup: duplicate setup "app" (first defined at zerops.yml:2:12)'


def test_an_unknown_base_suggests_a_known_one(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    run:\n      base: gleam@1.6\n")
    assert problem.message == 'unknown run base "gleam@1.6" (did you mean "gleam@1.5"?)'
    assert at(problem) == (4, 13)


def test_build_base_accepts_a_list_of_toolchains(yml: Yml) -> None:
    project = yml.load(
        GLEAM.replace("base: gleam@1.5\n      buildCommands", "base: [gleam@1.5, nodejs@22]\n      buildCommands")
    )
    build = project.setups[0].build
    assert build is not None and build.base == ("gleam@1.5", "nodejs@22")


def test_os_defaults_to_alpine(yml: Yml) -> None:
    setup = yml.load(GLEAM).setups[0]
    assert setup.build is not None
    assert (setup.build.os, setup.run.os) == ("alpine", "alpine")


def test_a_build_without_deploy_files_is_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    build:\n      base: gleam@1.5\n")
    assert str(problem) == 'zerops.yml:3:5: zerops[0].build: missing required key "deployFiles"'


def test_deprecated_build_deploy_is_used_as_deploy_files_with_a_warning(yml: Yml) -> None:
    project = yml.load("zerops:\n  - setup: app\n    build:\n      deploy: [app/~hello.py]\n")
    build = project.setups[0].build
    assert build is not None and [p.value for p in build.deploy_files] == ["app/~hello.py"]
    (warning,) = _besides_base(project.warnings)
    assert (warning.path, at(warning), warning.severity) == ("zerops[0].build.deploy", (4, 7), "warning")
    assert "deprecated" in warning.message and "deployFiles" in warning.message


def test_build_deploy_and_deploy_files_together_is_an_error(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    build:\n      deployFiles: a\n      deploy: b\n")
    assert at(problem) == (5, 7)
    assert problem.message == '"deployFiles" and "deploy" are mutually exclusive; keep one'


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("vendor", ("vendor",)), ("[deps, _build]", ("deps", "_build"))],
)
def test_cache_accepts_a_boolean_a_path_or_a_list(yml: Yml, value: str, expected: object) -> None:
    build = (
        yml.load(f"zerops:\n  - setup: app\n    build:\n      deployFiles: ./\n      cache: {value}\n").setups[0].build
    )
    assert build is not None
    cache = build.cache if isinstance(build.cache, bool) else tuple(p.value for p in build.cache)
    assert cache == expected


def test_deploy_files_and_add_to_run_prepare_keep_their_locations(yml: Yml) -> None:
    build = (
        yml.load(
            """\
        zerops:
          - setup: app
            build:
              deployFiles: [build/erlang-shipment/~, migrate.sh]
              addToRunPrepare: gleam.toml
        """
        )
        .setups[0]
        .build
    )
    assert build is not None
    assert [(p.value, p.path, p.location.line, p.location.column) for p in build.deploy_files] == [
        ("build/erlang-shipment/~", "zerops[0].build.deployFiles[0]", 4, 21),
        ("migrate.sh", "zerops[0].build.deployFiles[1]", 4, 46),
    ]
    assert [(p.value, p.path) for p in build.add_to_run_prepare] == [("gleam.toml", "zerops[0].build.addToRunPrepare")]


def test_ports_protocol_is_case_insensitive(yml: Yml) -> None:
    project = yml.load(
        "zerops:\n  - setup: app\n    run:\n      ports:\n        - {port: 53, protocol: UDP}\n"
        "        - {port: 80, protocol: Tcp, httpSupport: true, description: web}\n        - port: 81\n"
    )
    ports = project.setups[0].run.ports
    assert [(p.port, p.protocol, p.http_support) for p in ports] == [
        (53, "udp", False),
        (80, "tcp", True),
        (81, "tcp", False),
    ]
    assert ports[1].description == "web"
    assert ports[2].location is not None and ports[2].location.line == 7


def test_http_support_needs_tcp(yml: Yml) -> None:
    problem = yml.problem(
        "zerops:\n  - setup: app\n    run:\n      ports:\n        - {port: 53, protocol: udp, httpSupport: true}\n"
    )
    assert (problem.path, at(problem)) == ("zerops[0].run.ports[0].httpSupport", (5, 37))


def test_start_and_start_commands_are_mutually_exclusive(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: app
            run:
              start: a
              startCommands:
                - command: b
        """
    )
    assert str(problem) == (
        'zerops.yml:5:7: zerops[0].run: "start" and "startCommands" are mutually exclusive; keep one'
    )


def test_start_commands_are_parsed(yml: Yml) -> None:
    run = (
        yml.load(
            """\
        zerops:
          - setup: app
            run:
              startCommands:
                - command: npm run start:prod
                  name: server
                - command: litestream replicate
                  name: replication
                  workingDir: /var/www
                  initCommands:
                    - litestream restore
        """
        )
        .setups[0]
        .run
    )
    first, second = run.start_commands
    assert (first.command.text, first.name, first.working_dir, first.init_commands) == (
        "npm run start:prod",
        "server",
        None,
        (),
    )
    assert second.working_dir == "/var/www"
    assert [c.text for c in second.init_commands] == ["litestream restore"]
    assert second.command.path == "zerops[0].run.startCommands[1].command"


def test_a_start_command_needs_a_command(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n    run:\n      startCommands:\n        - name: x\n")
    assert (problem.path, problem.message, at(problem)) == (
        "zerops[0].run.startCommands[0]",
        'missing required key "command"',
        (5, 11),
    )


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            "exec: {command: x}\n        httpGet: {port: 80, path: /}",
            '"httpGet" and "exec" are mutually exclusive; keep one',
        ),
        ("retryPeriod: 3", 'needs one of "httpGet" or "exec"'),
    ],
)
def test_readiness_check_needs_exactly_one_of_http_get_or_exec(yml: Yml, probe: str, message: str) -> None:
    problem = yml.problem(f"zerops:\n  - setup: app\n    deploy:\n      readinessCheck:\n        {probe}\n")
    assert (problem.path, problem.message) == ("zerops[0].deploy.readinessCheck", message)
    assert at(problem) == ((6, 9) if "exec" in probe else (4, 7))


def test_readiness_check_defaults_are_5_and_300_seconds(yml: Yml) -> None:
    deploy = (
        yml.load(
            "zerops:\n  - setup: app\n    deploy:\n      readinessCheck:\n        httpGet: {port: 3000, path: /, host: a.b, scheme: https}\n"
        )
        .setups[0]
        .deploy
    )
    check = deploy.readiness_check
    assert check is not None and check.http_get is not None and check.exec is None
    assert (check.retry_period, check.failure_timeout) == (5.0, 300.0)
    assert (check.http_get.port, check.http_get.path, check.http_get.host, check.http_get.scheme) == (
        3000,
        "/",
        "a.b",
        "https",
    )
    assert deploy.temporary_shutdown is False


def test_readiness_exec_keeps_its_command_and_durations(yml: Yml) -> None:
    deploy = (
        yml.load(
            """\
        zerops:
          - setup: app
            deploy:
              temporaryShutdown: true
              readinessCheck:
                exec:
                  command: |
                    curl -f localhost:3000
                retryPeriod: 2s
                failureTimeout: 1m30s
        """
        )
        .setups[0]
        .deploy
    )
    check = deploy.readiness_check
    assert deploy.temporary_shutdown is True
    assert check is not None and check.exec is not None
    assert check.exec.text == "curl -f localhost:3000\n"
    assert check.exec.path == "zerops[0].deploy.readinessCheck.exec.command"
    assert (check.retry_period, check.failure_timeout) == (2.0, 90.0)


def test_health_check_needs_exactly_one_probe_and_accepts_durations(yml: Yml) -> None:
    health = (
        yml.load(
            """\
        zerops:
          - setup: app
            run:
              healthCheck:
                exec: {command: ./check}
                failureTimeout: 60
                disconnectTimeout: 30s
                recoveryTimeout: 500ms
                execPeriod: 1h
        """
        )
        .setups[0]
        .run.health_check
    )
    assert health is not None and health.exec is not None and health.http_get is None
    assert (health.failure_timeout, health.disconnect_timeout, health.recovery_timeout, health.exec_period) == (
        60.0,
        30.0,
        0.5,
        3600.0,
    )
    problem = yml.problem("zerops:\n  - setup: app\n    run:\n      healthCheck: {failureTimeout: 5}\n")
    assert (problem.path, problem.message) == ("zerops[0].run.healthCheck", 'needs one of "httpGet" or "exec"')


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30", None),
        ("0", "a duration must be positive, got the number 0"),
        ("-5", "a duration cannot be negative, got -5"),
        ('"30"', 'missing unit in duration "30" (write "30s" or the integer 30)'),
        ("5x", 'invalid duration "5x" (use e.g. "30s", "5m", "1h30m", "500ms")'),
        ("1.5", 'expected a duration: whole seconds or a string like "30s", "5m", got the number 1.5'),
        ("true", 'expected a duration: whole seconds or a string like "30s", "5m", got the boolean true'),
    ],
)
def test_durations_are_whole_seconds_or_go_strings(yml: Yml, value: str, message: str | None) -> None:
    text = f"zerops:\n  - setup: app\n    deploy:\n      readinessCheck:\n        exec: {{command: x}}\n        retryPeriod: {value}\n"
    if message is None:
        check = yml.load(text).setups[0].deploy.readiness_check
        assert check is not None and check.retry_period == 30.0
        return
    problem = yml.problem(text)
    assert (problem.path, problem.message, at(problem)) == (
        "zerops[0].deploy.readinessCheck.retryPeriod",
        message,
        (6, 22),
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (0, 0.0),
        ("0", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2h3m4s", 7384.0),
        ("100us", 0.0001),
        ("10µs", 0.00001),
        ("7ns", 7e-9),
        (".5m", 30.0),
    ],
)
def test_parse_duration_reads_seconds_and_go_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "30",
        "s",
        "5 m",
        "1d",
        "-5s",
        "5m-",
        "1h 30m",
        "\u0663s",
        "9" * 400 + "h",
        10**400,
        True,
        1.5,
        None,
        -1,
        [30],
    ],
)
def test_parse_duration_rejects_anything_else_with_a_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_vertical_autoscaling_and_mount_warn_and_are_ignored(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: app
            run:
              start: x
              verticalAutoscaling:
                minRam: 0.25
                anything: [goes, {here: 1}]
              mount: [storage]
        """
    )
    first, second = _besides_base(project.warnings)
    assert (first.path, at(first)) == ("zerops[0].run.verticalAutoscaling", (5, 7))
    assert first.message == "has no local meaning (a Zerops scaling setting); ignored"
    assert (second.path, at(second)) == ("zerops[0].run.mount", (8, 7))


def test_crontab_entries_need_timing_command_and_all_containers(yml: Yml) -> None:
    run = (
        yml.load(
            """\
        zerops:
          - setup: app
            run:
              crontab:
                - timing: "0 * * * *"
                  command: php artisan schedule:run
                  allContainers: false
                  workingDir: /var/www/html
        """
        )
        .setups[0]
        .run
    )
    (cron,) = run.crontab
    assert (cron.timing, cron.command.text, cron.all_containers, cron.working_dir) == (
        "0 * * * *",
        "php artisan schedule:run",
        False,
        "/var/www/html",
    )
    problems = yml.problems("zerops:\n  - setup: app\n    run:\n      crontab:\n        - timing: x\n")
    assert [(p.path, p.message, at(p)) for p in problems] == [
        ("zerops[0].run.crontab[0]", 'missing required key "command"', (5, 11)),
        ("zerops[0].run.crontab[0]", 'missing required key "allContainers"', (5, 11)),
    ]


def test_env_replace_accepts_strings_or_lists(yml: Yml) -> None:
    run = (
        yml.load(
            "zerops:\n  - setup: app\n    run:\n      envReplace:\n        delimiter: ['%%', '@@']\n        target: config/\n"
        )
        .setups[0]
        .run
    )
    assert run.env_replace is not None
    assert run.env_replace.delimiters == ("%%", "@@")
    assert [t.value for t in run.env_replace.targets] == ["config/"]


def test_webserver_keys_are_kept_and_routing_as_plain_data(yml: Yml) -> None:
    run = (
        yml.load(
            """\
        zerops:
          - setup: web
            run:
              base: static
              documentRoot: public
              siteConfigPath: site.conf.tmpl
              routing:
                cors: "'*' always"
                redirects:
                  - {from: /old, to: /new, status: 301, preservePath: true}
                headers:
                  - for: /*
                    values: {X-Frame-Options: DENY}
        """
        )
        .setups[0]
        .run
    )
    assert (run.document_root, run.site_config_path) == ("public", "site.conf.tmpl")
    assert run.routing == {
        "cors": "'*' always",
        "redirects": [{"from": "/old", "to": "/new", "status": 301, "preservePath": True}],
        "headers": [{"for": "/*", "values": {"X-Frame-Options": "DENY"}}],
    }
    problem = yml.problem("zerops:\n  - setup: web\n    run:\n      routing: {redirect: []}\n")
    assert problem.message == 'unknown key "redirect" (did you mean "redirects"?)'


def test_multiple_errors_are_reported_together_in_file_order(yml: Yml) -> None:
    problems = yml.problems(
        """\
        zerops:
          - setup: app
            build:
              base: gleam@1.5
              buildCommand: [x]
            run:
              ports:
                - port: http
              start: 3
          - setup: app
        """
    )
    assert [(at(p), p.path) for p in problems] == [
        ((3, 5), "zerops[0].build"),
        ((5, 7), "zerops[0].build"),
        ((8, 17), "zerops[0].run.ports[0].port"),
        ((9, 14), "zerops[0].run.start"),
        ((10, 12), "zerops[1].setup"),
    ]


# --------------------------------------------------------------------------------------------
# extends
# --------------------------------------------------------------------------------------------

FAMILY = """\
zerops:
  - setup: base
    build:
      base: gleam@1.5
      buildCommands: [gleam build]
      deployFiles: ./
      envVariables: {A: "1", B: "2"}
    run:
      base: gleam@1.5
      os: ubuntu
      start: gleam run
      envVariables: {X: "1", Y: "2"}
  - setup: prod
    extends: base
    build:
      envVariables: {A: "9"}
      deployFiles: build/erlang-shipment/~
    run:
      start: ./entrypoint.sh run
"""


def test_extends_merges_one_level_deep_inside_each_section(yml: Yml) -> None:
    prod = yml.load(FAMILY).select("prod")[0]
    assert prod.extends == ("base",)
    assert prod.build is not None
    assert [c.text for c in prod.build.build_commands] == ["gleam build"]
    assert [p.value for p in prod.build.deploy_files] == ["build/erlang-shipment/~"]
    assert (prod.run.base, prod.run.os) == ("gleam@1.5", "ubuntu")
    assert prod.run.start is not None and prod.run.start.text == "./entrypoint.sh run"


def test_extends_replaces_nested_maps_such_as_env_variables(yml: Yml) -> None:
    prod = yml.load(FAMILY).select("prod")[0]
    assert prod.build is not None
    assert dict(prod.build.env_variables) == {"A": "9"}
    assert dict(prod.run.env_variables) == {"X": "1", "Y": "2"}


def test_inherited_values_keep_the_location_where_they_were_written(yml: Yml) -> None:
    prod = yml.load(FAMILY).select("prod")[0]
    assert prod.build is not None
    (command,) = prod.build.build_commands
    assert (command.path, command.location) == ("zerops[0].build.buildCommands[0]", Location("zerops.yml", 5, 23))
    assert prod.run.start is not None and prod.run.start.location.line == 19


def test_later_parents_override_earlier_ones(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: one
            run: {start: one, base: gleam@1, os: ubuntu}
          - setup: two
            run: {start: two, base: gleam@1.5}
          - setup: child
            extends: [one, two]
            run: {initCommands: [hi]}
        """
    )
    run = project.select("child")[0].run
    assert run.start is not None
    assert (run.start.text, run.base, run.os, [c.text for c in run.init_commands]) == (
        "two",
        "gleam@1.5",
        "ubuntu",
        ["hi"],
    )


def test_extends_works_over_several_levels_in_any_order(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: c
            extends: b
            run: {start: c}
          - setup: b
            extends: a
            run: {os: ubuntu}
          - setup: a
            run: {base: gleam@1.5, start: a}
        """
    )
    c = project.select("c")[0]
    assert c.run.start is not None
    assert (c.run.base, c.run.os, c.run.start.text) == ("gleam@1.5", "ubuntu", "c")
    assert project.setup_names() == ["c", "b", "a"]


def test_a_child_start_commands_replace_an_inherited_start(yml: Yml) -> None:
    project = yml.load(
        "zerops:\n  - setup: a\n    run: {start: x}\n  - setup: b\n    extends: a\n    run:\n      startCommands: [{command: y}]\n"
    )
    run = project.select("b")[0].run
    assert run.start is None and [s.command.text for s in run.start_commands] == ["y"]


def test_a_child_build_may_inherit_deploy_files(yml: Yml) -> None:
    project = yml.load(
        "zerops:\n  - setup: a\n    build: {deployFiles: ./}\n  - setup: b\n    extends: a\n    build: {buildCommands: [make]}\n"
    )
    build = project.select("b")[0].build
    assert build is not None and [p.value for p in build.deploy_files] == ["./"]


def test_an_extends_cycle_is_an_error_that_lists_the_chain(yml: Yml) -> None:
    problem = yml.problem(
        """\
        zerops:
          - setup: a
            extends: c
          - setup: b
            extends: a
          - setup: c
            extends: [b]
        """
    )
    # reported where the chain closes: b's "extends: a"
    assert str(problem) == "zerops.yml:5:14: zerops[1].extends: extends cycle: a -> c -> b -> a"


def test_extending_itself_is_a_cycle(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: a\n    extends: a\n")
    assert (problem.message, at(problem)) == ("extends cycle: a -> a", (3, 14))


def test_an_unknown_parent_suggests_a_setup_name(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: base\n  - setup: app\n    extends: bsae\n")
    assert str(problem) == (
        'zerops.yml:4:14: zerops[1].extends: unknown setup "bsae" in extends (did you mean "base"?);'
        " setups in this file: base, app"
    )


# --------------------------------------------------------------------------------------------
# Legacy files, whole model, selection
# --------------------------------------------------------------------------------------------


def test_a_legacy_file_gives_one_error_naming_the_new_keys(yml: Yml) -> None:
    problem = yml.problem(
        """\
        # hostname: settings
        api:
          build:
            base: [go@1]
            build:
              - go build -o app
            deploy: [app]
          run:
            start: ./app
        """
    )
    assert at(problem) == (2, 1)
    for word in [
        '"zerops:"',
        "setup",
        "build.prepareCommands",
        "build.buildCommands",
        "build.deployFiles",
        "run.start",
        "api",
    ]:
        assert word in problem.message


def test_a_full_gleam_setup_builds_the_model(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: api
            build:
              os: ubuntu
              base: gleam@1.5
              prepareCommands:
                - zsc add gleam@1.5
              buildCommands:
                - |
                  gleam deps download
                  gleam export erlang-shipment
              deployFiles: build/erlang-shipment/~
              addToRunPrepare: [gleam.toml, manifest.toml]
            run:
              os: ubuntu
              base: gleam@1.5
              prepareCommands:
                - sudo apt-get update
                - sudo apt-get install -y imagemagick
              initCommands:
                - zsc execOnce ${appVersionId} -- sh migrate.sh
              ports:
                - port: 3000
                  httpSupport: true
              start: ./entrypoint.sh run
        """
    )
    assert project.warnings == ()
    (api,) = project.setups
    assert (api.name, api.index, api.location) == ("api", 0, Location("zerops.yml", 2, 5))
    build, run = api.build, api.run
    assert build is not None
    assert (build.os, build.base) == ("ubuntu", ("gleam@1.5",))
    assert build.location == Location("zerops.yml", 4, 7)  # where the section's content starts
    (shell,) = build.build_commands
    assert shell.text == "gleam deps download\ngleam export erlang-shipment\n"
    assert (shell.path, shell.location) == ("zerops[0].build.buildCommands[0]", Location("zerops.yml", 9, 11))
    assert [p.value for p in build.add_to_run_prepare] == ["gleam.toml", "manifest.toml"]
    assert [c.text for c in run.prepare_commands] == ["sudo apt-get update", "sudo apt-get install -y imagemagick"]
    assert run.prepare_commands[1].location == Location("zerops.yml", 19, 11)
    assert run.location == Location("zerops.yml", 15, 7)
    assert api.deploy.readiness_check is None and api.run.health_check is None


def test_select_returns_the_named_setup_or_lists_the_available_ones(yml: Yml) -> None:
    project = yml.load(FAMILY)
    assert [s.name for s in project.select("prod")] == ["prod"]
    assert [s.name for s in project.select()] == ["base", "prod"]
    with pytest.raises(ConfigError, match="no setup named 'nope'; available: base, prod"):
        project.select("nope")


# --------------------------------------------------------------------------------------------
# Setup names, paths and env values: refused at the door (issue 12)
# --------------------------------------------------------------------------------------------

SETUP_RULE = "use 1 to 25 lowercase letters a-z, digits or '-', starting with a letter or digit"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ('"../x"', '"../x"'),
        ('"/abs"', '"/abs"'),
        ('"a/b"', '"a/b"'),
        ('"."', '"."'),
        ('".."', '".."'),
        ('"a\\0b"', '"a\\u0000b"'),
        ('"a\\nb"', '"a\\nb"'),
        ('"-rf"', '"-rf"'),
        ('"x' + "x" * 25 + '"', '"' + "x" * 26 + '"'),
        ('"\uff0e\uff0e"', '"\\uff0e\\uff0e"'),
        ('"a b"', '"a b"'),
        ('"app_1"', '"app_1"'),
    ],
)
def test_a_setup_name_outside_the_safe_set_is_refused_at_its_value(yml: Yml, written: str, shown: str) -> None:
    problem = yml.problem(f"zerops:\n  - setup: {written}\n")
    assert at(problem) == (2, 12)
    assert problem.path == "zerops[0].setup"
    assert problem.message == f"invalid setup name {shown}: {SETUP_RULE}"


def test_a_300_character_setup_name_is_refused_and_clipped_in_the_message(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: " + "a" * 300 + "\n")
    assert at(problem) == (2, 12)
    assert problem.message.startswith('invalid setup name "' + "a" * 40 + '"…: use')
    assert len(str(problem)) < 200


def test_an_upper_case_setup_name_is_refused_with_the_lower_case_suggested(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: App\n")
    assert (
        str(problem)
        == f'zerops.yml:2:12: zerops[0].setup: invalid setup name "App": {SETUP_RULE} (did you mean "app"?)'
    )


def test_two_setups_that_differ_only_in_case_are_refused(yml: Yml) -> None:
    problems = yml.problems("zerops:\n  - setup: app\n  - setup: App\n")
    assert [str(p) for p in problems] == [
        f'zerops.yml:3:12: zerops[1].setup: invalid setup name "App": {SETUP_RULE} (did you mean "app"?)',
        'zerops.yml:3:12: zerops[1].setup: setup "App" differs only in case from "app" (defined at zerops.yml:2:12); '
        "setup names are compared without case",
    ]


@pytest.mark.parametrize("name", ["app", "api", "prod", "dev", "base", "helloworld", "app-dev", "1st", "a" * 25])
def test_names_in_the_safe_set_load(yml: Yml, name: str) -> None:
    assert yml.load(f"zerops:\n  - setup: {name}\n").setup_names() == [name]


def test_an_extends_target_follows_the_same_rule(yml: Yml) -> None:
    problem = yml.problem("zerops:\n  - setup: app\n  - setup: web\n    extends: [app, ../x]\n")
    assert str(problem) == f'zerops.yml:4:20: zerops[1].extends[1]: invalid setup name "../x": {SETUP_RULE}'


@pytest.mark.parametrize(
    ("section", "value", "path", "column", "message"),
    [
        (
            "build: {deployFiles: ../x}",
            "",
            "zerops[0].build.deployFiles",
            26,
            "\"../x\" leaves the project folder ('..')",
        ),
        (
            "build: {deployFiles: [./, /etc]}",
            "",
            "zerops[0].build.deployFiles[1]",
            31,
            "\"/etc\" is absolute; deployFiles are relative to the project folder ('/' alone means all of it)",
        ),
        (
            "build: {deployFiles: ./, addToRunPrepare: /etc/passwd}",
            "",
            "zerops[0].build.addToRunPrepare",
            47,
            '"/etc/passwd" is absolute; paths are relative to the project folder',
        ),
        (
            "build: {deployFiles: ./, addToRunPrepare: [a, '../b']}",
            "",
            "zerops[0].build.addToRunPrepare[1]",
            51,
            "\"../b\" leaves the project folder ('..')",
        ),
        ("build: {deployFiles: ./, addToRunPrepare: ''}", "", "zerops[0].build.addToRunPrepare", 47, '"" is empty'),
        (
            'build: {deployFiles: "a\\0b"}',
            "",
            "zerops[0].build.deployFiles",
            26,
            '"a\\u0000b" holds a control character (a NUL, a line break...): not a usable path',
        ),
        (
            "build: {deployFiles: ./, cache: [deps, /root]}",
            "",
            "zerops[0].build.cache[1]",
            44,
            '"/root" must stay inside /build/source',
        ),
        (
            "build: {deployFiles: ./, cache: ../x}",
            "",
            "zerops[0].build.cache",
            37,
            '"../x" must stay inside /build/source',
        ),
        (
            "run: {envReplace: {delimiter: '%%', target: /etc/passwd}}",
            "",
            "zerops[0].run.envReplace.target",
            49,
            '"/etc/passwd" must stay inside /var/www',
        ),
        (
            "run: {envReplace: {delimiter: '%%', target: [ok, ../../etc]}}",
            "",
            "zerops[0].run.envReplace.target[1]",
            54,
            '"../../etc" must stay inside /var/www',
        ),
        (
            'run: {envReplace: {delimiter: "%\\n", target: ok}}',
            "",
            "zerops[0].run.envReplace.delimiter",
            35,
            '"%\\n" holds a control character (a NUL, a line break...)',
        ),
        (
            'run: {envVariables: {A: "x\\ny"}}',
            "",
            "zerops[0].run.envVariables.A",
            29,
            "a NUL or a line break in a value is not supported (env files carry one variable per line)",
        ),
        (
            'build: {deployFiles: ./, envVariables: {A: "x\\0y"}}',
            "",
            "zerops[0].build.envVariables.A",
            48,
            "a NUL or a line break in a value is not supported (env files carry one variable per line)",
        ),
        (
            'run: {envVariables: {"A\\0": x}}',
            "",
            "zerops[0].run.envVariables",
            26,
            'invalid variable name "A\\u0000" (empty, "=", spaces or control characters)',
        ),
    ],
)
def test_values_a_later_phase_would_refuse_are_refused_at_their_place(
    yml: Yml, section: str, value: str, path: str, column: int, message: str
) -> None:
    problem = yml.problem(f"zerops:\n  - setup: app\n    {section}{value}\n")
    assert (at(problem), problem.path, problem.message) == ((3, column), path, message)


def test_a_multi_line_block_env_value_is_refused_at_its_first_line(yml: Yml) -> None:
    problem = yml.problem(
        "zerops:\n  - setup: app\n    run:\n      envVariables:\n        KEY: |\n          a\n          b\n"
    )
    assert (at(problem), problem.path) == ((5, 14), "zerops[0].run.envVariables.KEY")


@pytest.mark.parametrize("value", ["/", "/~", "./", ".", "'~'", "dist/~", "./dist/~", "build/erlang-shipment"])
def test_deploy_files_that_mean_the_build_folder_or_a_part_of_it_load(yml: Yml, value: str) -> None:
    project = yml.load(f"zerops:\n  - setup: app\n    build:\n      deployFiles: {value}\n")
    build = project.setups[0].build
    assert build is not None and [r.value for r in build.deploy_files] == [value.strip("'")]


def test_a_nul_byte_in_the_file_is_located(yml: Yml) -> None:
    (yml.root / "zerops.yml").write_bytes(b"zerops:\n  - setup: a\0b\n")
    with pytest.raises(ConfigError) as caught:
        load_project("zerops.yml")
    assert str(caught.value) == "zerops.yml:2:13: not a text file (it contains NUL bytes)"


def _besides_base(warnings: tuple[Problem, ...]) -> list[Problem]:
    """The warnings other than the one for a missing run.base (these files leave it out)."""
    return [w for w in warnings if not w.message.startswith("no run.base")]


@pytest.mark.parametrize(
    "base",
    [
        "ubuntu/gleam@1.5",
        "alpine/bun@1.3",
        "ubuntu/nodejs@22",
        "alpine@3.23",
        "ruby@3.4",
        "elixir@1.16",
        "dotnet@10",
        "alpine/ruby@latest",
    ],
)
def test_os_qualified_and_current_bases_validate(yml: Yml, base: str) -> None:
    project = yml.load(
        f"""\
        zerops:
          - setup: app
            build:
              base: {base}
              deployFiles: /
            run:
              base: {base}
              start: x
        """
    )
    setup = project.setups[0]
    assert setup.run.base == base and setup.build is not None and setup.build.base == (base,)
    if "/" in base:  # the qualified OS is the section's OS when "os" is left out
        assert setup.run.os == setup.build.os == base.split("/")[0]


def test_a_qualified_base_must_agree_with_os_and_name_a_known_os(yml: Yml) -> None:
    err = "\n".join(
        str(p)
        for p in yml.problems(
            """\
        zerops:
          - setup: app
            build:
              os: alpine
              base: [ubuntu/gleam@1.5]
              deployFiles: /
            run:
              base: windows/gleam@1.5
              start: x
        """
        )
    )
    assert (
        'zerops.yml:5:14: zerops[0].build.base[0]: base "ubuntu/gleam@1.5" runs on ubuntu, but "os" says alpine' in err
    )
    assert 'zerops.yml:8:13: zerops[0].run.base: unknown OS "windows" in base "windows/gleam@1.5"' in err


def test_no_run_base_warns_which_gleam_runtime_is_assumed(yml: Yml) -> None:
    project = yml.load(
        """\
        zerops:
          - setup: api
            build:
              base: go@1
              deployFiles: /
            run:
              os: ubuntu
              start: ./app
          - setup: web
            run:
              base: gleam@1.5
              start: x
        """
    )
    (warning,) = project.warnings
    assert warning.path == "zerops[0].run" and warning.location is not None and warning.location.line == 7
    assert warning.message == (
        "no run.base: Zerops keeps the service's current runtime; cri-tasks assumes gleam@1.5 (Gleam 1.5.1) "
        "on ubuntu, although build.base is go@1"
    )
