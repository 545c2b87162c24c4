"""The bench's own logic: verdicts, the interleaving, reading BuildKit logs, its projects.

The measures themselves need a Docker engine and minutes; `bench/run` runs them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cri_tasks.loader import load_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cri_bench", ROOT / "bench" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cri_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_ratio_is_met_missed_or_only_reported(bench: ModuleType) -> None:
    F, R = bench.Figure, bench.Result
    met = R("1a", "hit", F("hit", [0.150, 0.156, 0.160]), F("floor", [0.135, 0.135, 0.140]), 1.2)
    assert met.met is True and met.verdict() == "met" and met.ratio_text() == "1.16x"
    missed = R("3a", "cold", F("prepare", [5.06]), F("buildx", [4.39]), 1.05)
    assert missed.met is False and missed.verdict() == "MISSED by 10%"
    reported = R("3b", "echo", F("prepare", [0.8]), F("buildx", [0.3]))
    assert reported.met is None and reported.verdict() == "(reported)"


def test_a_faster_target_and_its_floor_read_as_times_faster(bench: ModuleType) -> None:
    F, R = bench.Figure, bench.Result
    r = R("4b", "tree", F("sig", [0.023]), F("cold", [0.213]), 1 / 20, faster=True, floor=F("bare", [0.0156]))
    assert r.met is False
    assert r.ratio_text() == "0.108x (9x faster)"
    assert r.verdict() == "MISSED (only 9.3x faster); floor: bare 16 ms (n=1), 13.7x faster"
    assert R("4b", "tree", F("sig", [0.010]), F("cold", [0.213]), 1 / 20, faster=True).verdict() == "met"


def test_a_check_without_figures_says_met_or_missed(bench: ModuleType) -> None:
    ok = bench.Result("1c", "imports", note="neither is imported", ok=True)
    bad = bench.Result("1c", "imports", note="imported: jinja2", ok=False)
    assert ok.cells()[-1] == "met" and bad.cells()[-1] == "MISSED" and bad.met is False


def test_sides_alternate_their_order_and_the_warm_up_is_dropped(bench: ModuleType) -> None:
    calls: list[str] = []
    clock = iter(range(100))

    def side(name: str):  # type: ignore[no-untyped-def]
        return lambda: calls.append(name) or float(next(clock))

    out = bench.interleaved({"a": side("a"), "b": side("b")}, warmup=1, reps=3)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert out == {"a": [3.0, 4.0, 7.0], "b": [2.0, 5.0, 6.0]}


def test_the_spread_is_half_the_interquartile_range(bench: ModuleType) -> None:
    f = bench.Figure("x", [1.0, 2.0, 3.0, 4.0, 5.0])
    assert f.median == 3.0 and f.spread == 1.0 and f.text() == "3.00±1.00 s"
    assert bench.Figure("x", [0.1, 0.3]).spread == pytest.approx(0.1)


LOG_NOOP = """#1 [internal] load build definition from Dockerfile
#5 [1/4] FROM docker.io/cri-local/debian:bookworm
#6 [2/4] RUN apt-get update
#6 CACHED
#7 [3/4] COPY files/ /home/zerops/
#7 CACHED
#8 [4/4] RUN ["/bin/sh", "-c", "echo bench-small"]
#8 CACHED
#9 exporting to image
"""


def test_a_buildx_log_tells_a_no_op_from_a_build(bench: ModuleType) -> None:
    assert bench.all_cached(LOG_NOOP)
    built = LOG_NOOP.replace("#8 CACHED\n", "#8 0.212 bench-small\n#8 DONE 0.3s\n")
    assert not bench.all_cached(built)
    assert bench.steps_run(built) == (3, ['RUN ["/bin/sh", "-c", "echo bench-small"]'])
    assert not bench.all_cached("#1 [internal] load build definition\n")  # no step at all is no proof


def test_the_bench_projects_are_valid_zerops_yml(bench: ModuleType, tmp_path: Path) -> None:
    specs = [*bench.Bench.cold_apt_setups("first"), *bench.Bench.cold4_setups({n: "t" for n in bench.FOUR})]
    (tmp_path / "zerops.yml").write_text(bench.zerops_yml(specs))
    project = load_project(tmp_path / "zerops.yml")
    assert [s.name for s in project.setups] == ["app", *bench.FOUR]
    app = project.setups[0]
    assert [c.text for c in app.run.prepare_commands] == ["echo bench-first", *bench.APT_STEPS]
    assert [r.value for r in app.build.add_to_run_prepare] == bench.SMALL_REFS
