#!/usr/bin/env python3
"""cri-tasks benchmarks (issue 7): the product against what a user would otherwise run.

Every measure times the product and its baseline in the same run, interleaved (A B, B A, ...),
and reports the ratio of the medians: on a shared machine absolute times are noise, ratios much
less so. Results go to stdout, one line per measure; progress goes to stderr.

It makes its own temporary projects and images (a random repository name) and removes them at
the end; measure 6 deploys a copy of examples/hello, and the end stops it and removes its
network. The last stage runs ``docker builder prune -af`` (skip it with ``--no-prune``), which
empties BuildKit's cache for every user of this engine: read bench/README.md first.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BASE_IMAGE = os.environ.get("CRI_BENCH_BASE_IMAGE", "cri-local/debian:bookworm")
SMALL_REFS = ["a.txt", "b.txt"]
BIG_REFS = ["data"]
BIG_FILES, BIG_BYTES = 5_000, 200_000_000
FOUR = ["one", "two", "three", "four"]
# measure 3a's prepare: what examples/hello and most of the corpus' prepareCommands do
APT_STEPS = ["sudo apt-get update -qq", "sudo apt-get install -y -qq --no-install-recommends jq"]
IMPORT_FREE = ("python_on_whales", "jinja2")  # a cache hit must import neither (the check)
# ...nor, answered from the hit index, the zerops.yml loader and model, nor the diskcache records
FULL_PATH = ("cri_tasks.loader", "cri_tasks.model", "cri_tasks.runtime_image", "diskcache")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello"  # the app measure 6 deploys
LOAD_RATE = 100  # requests per second during each deploy of measure 6
MESSAGE = re.compile(r'-define\(MESSAGE, "[^"]*"\)\.')  # the example's answer, changed every round

# Measure 6's client: a separate process sending LOAD_RATE requests per second at the published
# URL, one new connection each, until its stdin closes (or its bounds are reached). It prints one
# line when its first request has been answered, then a JSON summary. Times are
# time.monotonic() values (CLOCK_MONOTONIC, the same clock in the bench's process).
LOAD_PY = r"""
import http.client, json, sys, threading, time

host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate, max_seconds = float(sys.argv[4]), float(sys.argv[5])
done = []  # (slot, sent, answered, error, new body)
lock = threading.Lock()
stop = threading.Event()


def once(slot):
    sent, error, new = time.monotonic(), None, False
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Connection": "close", "User-Agent": "cri-bench-load"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            if response.status != 200:
                error = "HTTP %d" % response.status
            new = marker in body
        finally:
            conn.close()
    except Exception as exc:
        error = "%s: %s" % (type(exc).__name__, exc)
    with lock:
        done.append((slot, sent, time.monotonic(), error, new))


def until_stdin_closes():
    sys.stdin.read()
    stop.set()


once(time.monotonic())
print(json.dumps({"ready": done[0][3] is None, "error": done[0][3]}), flush=True)
del done[:]
threading.Thread(target=until_stdin_closes, daemon=True).start()
start, k, threads = time.monotonic(), 0, []
while not stop.is_set() and k < rate * max_seconds and time.monotonic() - start < max_seconds:
    slot = start + k / rate
    if slot > time.monotonic():
        stop.wait(slot - time.monotonic())
        if stop.is_set():
            break
    t = threading.Thread(target=once, args=(slot,), daemon=True)
    t.start()
    threads.append(t)
    k += 1
end = time.monotonic()
for t in threads:
    t.join(10)
with lock:
    rows = sorted(done, key=lambda r: r[2])
ok = [r[2] for r in rows if r[3] is None]
gaps = [b - a for a, b in zip(ok, ok[1:])]
errors = [r[3] for r in rows if r[3] is not None]
first_new = min((r[2] for r in rows if r[3] is None and r[4]), default=None)
late = sorted(r[1] - r[0] for r in rows)
latency = sorted(r[2] - r[1] for r in rows)
print(json.dumps({
    "sent": k, "answered": len(rows), "failed": len(errors) + k - len(rows),  # unanswered ones fail too
    "errors": sorted(set(errors))[:3] + (["%d unanswered after 10 s" % (k - len(rows))] if k > len(rows) else []),
    "seconds": end - start, "longest_gap_ms": max(gaps, default=0.0) * 1000,
    "first_new": first_new,
    "old_after_new": sum(1 for r in rows if first_new is not None and r[1] > first_new and r[3] is None and not r[4]),
    "latest_send_ms": (late[-1] if late else 0.0) * 1000,
    "latency_ms": {"median": (latency[len(latency) // 2] if latency else 0.0) * 1000,
                   "max": (latency[-1] if latency else 0.0) * 1000},
}), flush=True)
"""

# Measure 6: progress lines of `invoke deploy` that end a phase, in the order they come.
DEPLOY_MARKS = (
    ("start-up (Invoke, cri-tasks, reading the project)", re.compile(r"^\[\w+\] build: copying")),
    ("build phase (buildCommands, artifact)", re.compile(r"^\[\w+\] build: artifact of")),
    ("prepare check (runtime image up to date)", re.compile(r"^\[\w+\] (up to date|built) ")),
    ("app image (docker build)", re.compile(r"^\[\w+\] app image ")),
    ("container start (network, volume, docker run)", re.compile(r"^\[\w+\] started \d+ container")),
    ("readiness (a check at once, then one every retryPeriod: 5 s)", re.compile(r"^\[\w+\] ready$")),
    ("proxy switch (probe lead-in, config, reload)", re.compile(r"^\[\w+\] front proxy now sends traffic")),
    ("stopping the old container (and probe tail)", re.compile(r"^\[\w+\] switch: ")),
)

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# figures


@dataclass
class Figure:
    """The times of one side of a measure (seconds)."""

    label: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        """Half the interquartile range (half the range when there are fewer than 4 runs)."""
        if len(self.times) >= 4:
            q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
            return (q3 - q1) / 2
        return (max(self.times) - min(self.times)) / 2

    def text(self) -> str:
        m, s = self.median, self.spread
        if len(self.times) == 1:
            return f"{_time(m)} (n=1)"
        if m < 1:
            return f"{m * 1000:.0f}±{s * 1000:.0f} ms"
        if m < 10:
            return f"{m:.2f}±{s:.2f} s"
        return f"{m:.1f}±{s:.1f} s"


def _time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


@dataclass
class Result:
    key: str
    title: str
    a: Figure | None = None
    b: Figure | None = None
    target: float | None = None  # the highest acceptable a/b
    faster: bool = False  # present as "b/a times faster" (target given as a/b <= 1/N)
    note: str = ""  # replaces the figures (checks, skipped or failed measures)
    ok: bool | None = None  # for checks without figures
    floor: Figure | None = None  # the least any implementation can take (shown against b)

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or not self.a.times or not self.b.times:
            return None
        return self.a.median / self.b.median

    @property
    def met(self) -> bool | None:
        if self.ok is not None:
            return self.ok
        if self.ratio is None or self.target is None:
            return None
        return self.ratio <= self.target

    def ratio_text(self) -> str:
        r = self.ratio
        if r is None:
            return "-"
        return f"{r:.3f}x ({1 / r:.0f}x faster)" if self.faster else f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"

    def target_text(self) -> str:
        if self.target is None:
            return "no target"
        return f"≥{1 / self.target:.0f}x faster" if self.faster else f"≤{self.target:g}x"

    def verdict(self) -> str:
        return self._verdict() + self.floor_text()

    def floor_text(self) -> str:
        if self.floor is None or self.b is None or not self.floor.times:
            return ""
        return f"; floor: {self.floor.label} {self.floor.text()}, {self.b.median / self.floor.median:.1f}x faster"

    def _verdict(self) -> str:
        met = self.met
        if met is None:
            return "-" if self.note else "(reported)"
        if met:
            return "met"
        if self.ratio is None or self.target is None:
            return "MISSED"
        if self.faster:
            return f"MISSED (only {1 / self.ratio:.1f}x faster)"
        return f"MISSED by {(self.ratio / self.target - 1) * 100:.0f}%"

    def cells(self) -> list[str]:
        """id, measure, cri-tasks side, baseline side, ratio, target, verdict."""
        if self.a is None or self.b is None:
            mark = "-" if self.ok is None else ("met" if self.ok else "MISSED")
            return [self.key, self.title, self.note, "", "", "", mark]
        return [
            self.key,
            self.title,
            f"{self.a.label} {self.a.text()}",
            f"{self.b.label} {self.b.text()}",
            self.ratio_text(),
            self.target_text(),
            self.verdict(),
        ]

    def line(self) -> str:
        return "  ".join(c for c in self.cells() if c)


def table(results: Sequence[Result]) -> list[str]:
    """The results as aligned text: one line per measure."""
    rows = [["#", "measure", "cri-tasks", "baseline", "ratio", "target", ""]] + [r.cells() for r in results]
    framed = [r for r in rows if r[3]]  # rows with both figures set the widths
    widths = [max(len(r[i]) for r in framed) for i in range(7)]
    out = []
    for r in rows:
        if not r[3]:
            out.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" + (f"  {r[6]}" if r[6] != "-" else ""))
        else:
            out.append("  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=False)).rstrip())
    return out


def interleaved(sides: dict[str, Callable[[], float]], warmup: int, reps: int) -> dict[str, list[float]]:
    """Run every side once per round, alternating the order; keep the rounds after the warm-up."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + reps):
        for name in names if i % 2 == 0 else names[::-1]:
            seconds = sides[name]()
            if i >= warmup:
                out[name].append(seconds)
    return out


# ------------------------------------------------------------------------------------------------
# processes


def clean_env() -> dict[str, str]:
    """This environment without INVOKE_* settings, so only the projects' invoke.yaml applies, and
    without PYTHONDONTWRITEBYTECODE (the bench sets its own PYTHONPYCACHEPREFIX)."""
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    return {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_") and k not in drop}


ENV = clean_env()


def invoke_cmd() -> list[str]:
    script = Path(sys.executable).parent / "invoke"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "invoke"]


INVOKE = invoke_cmd()


class Failed(Exception):
    pass


class Rebuilt(Failed):
    """A run meant as a cache hit built: the inputs changed under the bench (e.g. an edited template)."""


def run(
    cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``cmd``; returns (wall seconds, process). A non-zero exit raises Failed."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise Failed(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{tail}")
    return seconds, proc


def import_times(project: Path, *args: str) -> dict[str, int]:
    """module -> self import time (µs) of ``python -X importtime -m invoke ARGS`` in ``project``."""
    _, proc = run([sys.executable, "-X", "importtime", "-m", "invoke", *args], cwd=project)
    out: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            name = parts[2].strip()
            out[name] = out.get(name, 0) + int(parts[0])
    return out


def docker(*args: str) -> str:
    return run(["docker", *args])[1].stdout.strip()


_STEP = re.compile(r"^#(\d+) \[\s*\d+/\d+\] (?!FROM )")
_CACHED = re.compile(r"^#(\d+) CACHED")


def steps_run(log: str) -> tuple[int, list[str]]:
    """(number of Dockerfile steps, the instructions of those that were not cache hits)."""
    steps: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        if m := _STEP.match(line):
            steps.setdefault(m.group(1), line[m.end() :].strip())
        elif m := _CACHED.match(line):
            cached.add(m.group(1))
    return len(steps), [text for vid, text in steps.items() if vid not in cached]


def all_cached(log: str) -> bool:
    """Whether every Dockerfile step (but FROM, never "CACHED") of a plain-progress buildx log was a cache hit."""
    steps = {m.group(1) for line in log.splitlines() if (m := _STEP.match(line))}
    cached = {m.group(1) for line in log.splitlines() if (m := _CACHED.match(line))}
    return bool(steps) and steps <= cached


# ------------------------------------------------------------------------------------------------
# projects


@dataclass
class SetupSpec:
    name: str
    refs: list[str]
    commands: list[str]


def zerops_yml(setups: Sequence[SetupSpec]) -> str:
    lines = ["zerops:"]
    for s in setups:
        lines += [
            f"  - setup: {s.name}",
            "    build:",
            "      base: gleam@1.5",
            "      buildCommands:",
            "        - echo building",
            "      deployFiles: ./",
            "      addToRunPrepare:",
            *(f"        - {r}" for r in s.refs),
            "    run:",
            "      base: gleam@1.5",
            "      os: ubuntu",
            "      prepareCommands:",
            *(f"        - {c}" for c in s.commands),
            "      start: ./entrypoint.sh run",
        ]
    return "\n".join(lines) + "\n"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="cri-bench-"))
        suffix = uuid.uuid4().hex[:10]
        self.repository = f"cri-bench-{suffix}"  # images prepare builds
        self.direct = f"cri-bench-{suffix}-direct"  # images the plain buildx runs build
        self.gleam = self.tmp / "gleam.tar.gz"
        # Bytecode of every module the measured processes import lives here, written once by the
        # setup runs (invoke --write-pyc), as a pip-installed package has it.
        ENV["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pyc")
        self.results: list[Result] = []
        self.profile: list[str] = []
        self.counter = 0
        self.floor = Figure("invoke --version")  # 1a's baseline, the floor the profile compares with
        self.floor_modules: set[str] = set()
        self.deployed: Path | None = None  # measure 6's project, stopped by cleanup()
        self.deploy_network = ""

    # -- setup ------------------------------------------------------------------------------------

    def make_gleam_archive(self) -> None:
        """A small stand-in for Gleam's release archive: a tar.gz with an executable ``gleam``."""
        body = b"#!/bin/sh\necho 'gleam 1.5.1 (cri-tasks bench)'\n"
        member = tarfile.TarInfo("gleam")
        member.size, member.mode = len(body), 0o755
        with tarfile.open(self.gleam, "w:gz") as archive:
            archive.addfile(member, io.BytesIO(body))

    def project(self, name: str, setups: Sequence[SetupSpec], big: bool = False) -> Path:
        root = self.tmp / name
        root.mkdir()
        (root / "zerops.yml").write_text(zerops_yml(setups))
        (root / "tasks.py").write_text("from cri_tasks import collection\n\nns = collection()\n")
        settings = {
            "cri": {
                "images": {"ubuntu": BASE_IMAGE},
                "gleam": {"source": str(self.gleam)},
                "repository": self.repository,
                "cache_dir": str(self.tmp / "cache" / name),
            }
        }
        (root / "invoke.yaml").write_text(json.dumps(settings, indent=2) + "\n")  # JSON is YAML
        (root / "a.txt").write_text('name = "bench"\n')
        (root / "b.txt").write_text("body { margin: 0 }\n")
        if big:
            self.make_big_tree(root / "data")
        return root

    @staticmethod
    def make_big_tree(root: Path) -> None:
        """200 MB of incompressible data in 5,000 files, 100 per folder."""
        size = BIG_BYTES // BIG_FILES
        for i in range(BIG_FILES):
            folder = root / f"d{i // 100:02d}"
            if i % 100 == 0:
                folder.mkdir(parents=True)
            (folder / f"f{i:04d}.bin").write_bytes(os.urandom(size))

    def prepare(self, project: Path, *args: str) -> tuple[float, dict]:
        seconds, proc = run([*INVOKE, "--write-pyc", "prepare", "--json", *args], cwd=project)
        return seconds, json.loads(proc.stdout)

    def prime_bytecode(self) -> None:
        """Write the bytecode of what the timed commands import (invoke itself never writes it)."""
        for project in (self.small, self.big, self.four):
            run([*INVOKE, "--write-pyc", "prepare"], cwd=project)
        for cmd in (INVOKE, [sys.executable, "-m", "invoke"]):
            run([*cmd, "--write-pyc", "--version"], cwd=self.small)
        run([sys.executable, "-m", "invoke", "--write-pyc", "prepare"], cwd=self.small)

    def stage(self, project: Path, setup: str, refs: Sequence[str], name: str) -> Path:
        """The build context prepare stages (Dockerfile, files/, gleam.tar.gz), made by hand.

        Files are hard links into ``files/<path>``, folders get their source's mode, as
        cri_tasks.runtime_build._staged does, so BuildKit sees the same content."""
        ctx = self.tmp / "ctx" / name
        files = ctx / "files"
        files.mkdir(parents=True)
        for ref in refs:
            src = project / ref
            if src.is_dir() and not src.is_symlink():
                for folder, _dirs, names in os.walk(src):
                    rel = Path(folder).relative_to(project)
                    (files / rel).mkdir(parents=True, exist_ok=True)
                    os.chmod(files / rel, stat.S_IMODE(os.stat(folder).st_mode))
                    for n in names:
                        _link(Path(folder) / n, files / rel / n)
            else:
                (files / ref).parent.mkdir(parents=True, exist_ok=True)
                _link(src, files / ref)
        _link(self.gleam, ctx / "gleam.tar.gz")
        _, proc = run([*INVOKE, "--write-pyc", "render", "--setup", setup], cwd=project)
        (ctx / "Dockerfile").write_text(proc.stdout)
        return ctx

    # -- the timed commands -------------------------------------------------------------------------

    def hit(self, project: Path, setups: int = 1) -> Callable[[], float]:
        def once() -> float:
            seconds, proc = run([*INVOKE, "prepare"], cwd=project)
            if proc.stdout.count(": up to date ") != setups:
                raise Rebuilt(f"expected a cache hit in {project.name}, got:\n{proc.stdout}{proc.stderr}")
            return seconds

        return once

    def version(self, project: Path) -> Callable[[], float]:
        return lambda: run([*INVOKE, "--version"], cwd=project)[0]

    def buildx_cmd(self, ctx: Path, tag: str) -> list[str]:
        return ["docker", "buildx", "build", "--progress=plain", "--load", "-t", tag, str(ctx)]

    def buildx_noop(self, ctxs: Sequence[Path]) -> Callable[[], float]:
        """One no-op ``docker buildx build`` per context, in sequence; checks every step was cached."""

        def once() -> float:
            total = 0.0
            for ctx in ctxs:
                seconds, proc = run(self.buildx_cmd(ctx, f"{self.direct}/{ctx.name}:noop"))
                if not all_cached(proc.stderr):
                    raise Failed(f"the buildx build of {ctx.name} was not a no-op:\n{proc.stderr[-2000:]}")
                total += seconds
            return total

        return once

    def token(self) -> str:
        self.counter += 1
        return f"{self.counter:03d}-{uuid.uuid4().hex[:12]}"

    # -- stages -------------------------------------------------------------------------------------

    def setup(self) -> None:
        say(f"temporary projects in {self.tmp}; images {self.repository}/* and {self.direct}/*")
        self.make_gleam_archive()
        self.small = self.project("small", [SetupSpec("app", SMALL_REFS, ["echo bench-small"])])
        self.big = self.project("big", [SetupSpec("app", BIG_REFS, ["echo bench-big"])], big=True)
        self.four = self.project("four", [SetupSpec(n, SMALL_REFS, [f"echo bench-{n}"]) for n in FOUR])
        self.cold1 = self.project("cold1", self.cold1_setups("first"))
        self.cold_apt = self.project("coldapt", self.cold_apt_setups("first"))
        self.cold4 = self.project("cold4", self.cold4_setups({n: "first" for n in FOUR}))
        self.prepare_all()
        self.prime_bytecode()

    def prepare_all(self) -> None:
        """Prepare every project (builds), then stage the contexts the plain buildx runs use."""
        for project in (self.small, self.big, self.four, self.cold1, self.cold_apt, self.cold4):
            seconds, doc = self.prepare(project)
            built = sum(1 for s in doc["setups"] if s["status"] == "built")
            say(f"prepare of {project.name}: {built} image(s) built in {seconds:.1f} s")
            if project is self.small:
                self.small_tag = doc["setups"][0]["image"]
        shutil.rmtree(self.tmp / "ctx", ignore_errors=True)
        self.ctx_small = self.stage(self.small, "app", SMALL_REFS, "small")
        self.ctx_big = self.stage(self.big, "app", BIG_REFS, "big")
        self.ctx_four = [self.stage(self.four, n, SMALL_REFS, f"four-{n}") for n in FOUR]
        self.ctx_cold1 = self.stage(self.cold1, "app", SMALL_REFS, "cold1")
        self.cold1_dockerfile = (self.ctx_cold1 / "Dockerfile").read_text()
        self.ctx_cold_apt = self.stage(self.cold_apt, "app", SMALL_REFS, "coldapt")
        self.cold_apt_dockerfile = (self.ctx_cold_apt / "Dockerfile").read_text()
        if "bench-first" not in self.cold1_dockerfile or "bench-first" not in self.cold_apt_dockerfile:
            raise Failed("a rendered Dockerfile of the cold projects does not hold its prepare command")

    @staticmethod
    def cold1_setups(token: str) -> list[SetupSpec]:
        return [SetupSpec("app", SMALL_REFS, ["echo bench-warm", f"echo bench-{token}"])]

    @staticmethod
    def cold_apt_setups(token: str) -> list[SetupSpec]:
        # The changed first step makes every step after it run again: the package installs are
        # the bulk of the build, as in a real runtime prepare.
        return [SetupSpec("app", SMALL_REFS, [f"echo bench-{token}", *APT_STEPS])]

    @staticmethod
    def cold4_setups(tokens: dict[str, str]) -> list[SetupSpec]:
        return [SetupSpec(n, SMALL_REFS, ["echo bench-warm", f"echo bench-{tokens[n]}"]) for n in FOUR]

    def measure_hits(self) -> None:
        w, n = self.args.warmup, self.args.reps
        for key1, key2, label, project, ctx in (
            ("1a", "2a", "2 small files", self.small, self.ctx_small),
            ("1b", "2b", "200 MB in 5,000 files", self.big, self.ctx_big),
        ):
            say(f"{key1}/{key2}: hit vs invoke --version vs buildx no-op ({label}), {w}+{n} rounds")
            t = interleaved(
                {"version": self.version(project), "hit": self.hit(project), "buildx": self.buildx_noop([ctx])}, w, n
            )
            hit = Figure("invoke prepare (hit)", t["hit"])
            self.results.append(
                Result(
                    key1,
                    f"cache hit overhead, {label}",
                    hit,
                    Figure("invoke --version", t["version"]),
                    1.2 if key1 == "1a" else 1.4,
                )
            )
            self.results.append(
                Result(
                    key2,
                    f"hit vs buildx no-op, 1 setup, {label}",
                    hit,
                    Figure("docker buildx build (no-op)", t["buildx"]),
                )
            )
            if key1 == "1a":
                self.floor = Figure("invoke --version", t["version"])
        say(f"2c: hit of 4 setups in one call vs 4 buildx no-ops, {w}+{n} rounds")
        t = interleaved({"hit": self.hit(self.four, setups=4), "buildx": self.buildx_noop(self.ctx_four)}, w, n)
        self.results.append(
            Result(
                "2c",
                "hit vs buildx no-op, 4 setups in one call",
                Figure("invoke prepare (4 hits)", t["hit"]),
                Figure("4x docker buildx build (no-op)", t["buildx"]),
                0.5,
            )
        )

    def check_imports(self) -> None:
        """-X importtime of the hit path: no python-on-whales nor jinja2, and what it imports."""
        say("1c: python -X importtime of the hits and of invoke --version")
        runs = max(3, self.args.reps // 3)
        floor = [import_times(self.small, "--version") for _ in range(runs)]
        hits = [import_times(self.small, "prepare") for _ in range(runs)]
        others = [import_times(self.big, "prepare"), import_times(self.four, "prepare")]
        if not all(hits) or not all(floor):
            raise Failed("python -X importtime printed nothing")

        def imported(names: tuple[str, ...]) -> list[str]:
            return sorted({n for p in hits + others for m in p for n in names if m == n or m.startswith(n + ".")})

        bad, full = imported(IMPORT_FREE), imported(FULL_PATH)
        self.results.append(
            Result(
                "1c",
                "a hit imports neither python-on-whales nor jinja2",
                note=(
                    f"imported: {', '.join(bad + full)}"
                    if bad or full
                    else "neither is imported, nor the zerops.yml loader nor diskcache (1a, 1b, 2c hits, -X importtime)"
                ),
                ok=not bad and not full,
            )
        )
        self.floor_modules = set().union(*floor)
        self.profile += self.import_summary("hit (a)", hits, 12)

    def import_summary(self, what: str, profiles: list[dict[str, int]], top: int) -> list[str]:
        """The modules ``what`` imports beyond `invoke --version`, by median self time."""
        extra = sorted(set().union(*profiles) - self.floor_modules)
        self_us = {m: statistics.median(p.get(m, 0) for p in profiles) for m in extra}
        total_ms = sum(self_us.values()) / 1000
        ranked = sorted(self_us.items(), key=lambda kv: -kv[1])[:top]
        runs = f"median of {len(profiles)} runs" if len(profiles) > 1 else "1 run"
        return [
            f"{what} imports {len(extra)} modules beyond `invoke --version`: {total_ms:.0f} ms of self time "
            f"(python -X importtime, {runs}); the top ones:",
            *(f"    {us / 1000:6.1f} ms  {m}" for m, us in ranked),
        ]

    def where_time_goes(self) -> None:
        """Figures to read 1a against: the hit's one engine call, and the interpreter alone."""
        from cri_tasks import engine

        reps = self.args.reps
        inspect = Figure(
            "docker image inspect",
            [
                run(["docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, self.small_tag])[0]
                for _ in range(reps)
            ],
        )
        api = Figure("engine.image_ids", [])
        for _ in range(reps):
            start = time.perf_counter()
            answered = engine.image_ids([BASE_IMAGE, self.small_tag])
            api.times.append(time.perf_counter() - start)
            if None in answered.values():
                raise Failed(f"engine.image_ids did not find the images: {answered}")
        bare = Figure("python -c pass", [run([sys.executable, "-c", "pass"])[0] for _ in range(reps)])
        imp = Figure(
            "import cri_tasks.tasks",
            [run([sys.executable, "-c", "import invoke, cri_tasks.tasks"])[0] for _ in range(reps)],
        )
        hit = next(r for r in self.results if r.key == "1a").a
        self.profile += [
            f"the hit's one question to the engine (base + image, GET /images/<ref>/json on its socket): "
            f"{api.text()}; the same with `docker image inspect`: {inspect.text()}",
            f"`python -c pass`: {bare.text()}; `python -c 'import invoke, cri_tasks.tasks'`: {imp.text()}",
            f"hit (a) {hit.text()} is {(hit.median - self.floor.median) * 1000:.0f} ms above "
            f"`invoke --version` ({self.floor.text()})",
        ]

    def profile_hits(self) -> None:
        """Where a hit spends its time: cProfile of one `invoke prepare` hit in (a) and in (b)."""
        import pstats

        for what, project in (("hit (a)", self.small), ("hit (b)", self.big)):
            out = self.tmp / f"{project.name}.prof"
            run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "invoke", "prepare"], cwd=project)
            stats = pstats.Stats(str(out))
            total = stats.total_tt  # type: ignore[attr-defined]
            funcs = stats.stats  # type: ignore[attr-defined]
            mine = [(k, v) for k, v in funcs.items() if "cri_tasks" in k[0] and not k[2].startswith("<")]
            ranked = sorted(mine, key=lambda kv: -kv[1][3])[:7]
            waits = sum(
                v[2]
                for k, v in funcs.items()
                if k[2]
                in (
                    "<method 'poll' of 'select.poll' objects>",
                    "<built-in method posix.read>",
                    "<built-in method _posixsubprocess.fork_exec>",
                    "<built-in method posix.waitpid>",
                )
            )
            self.profile += [
                f"{what} under cProfile: {total * 1000:.0f} ms profiled, {waits * 1000:.0f} ms of it waiting on "
                f"subprocesses (docker); cri_tasks functions by cumulative time:",
                *(f"    {v[3] * 1000:6.1f} ms  {Path(k[0]).name}:{k[1]}({k[2]})" for k, v in ranked),
            ]

    def measure_fingerprint(self) -> None:
        from cri_tasks import fingerprint

        w, n = self.args.warmup, max(5, self.args.reps // 2)
        refs = [fingerprint.Ref("data")]
        warm_cache: dict = {}
        recorded: list[str | None] = [None]

        def scan_cold() -> float:
            cache = fingerprint.StatCache()
            start = time.perf_counter()
            entries = fingerprint.scan(self.big, refs, cache)
            seconds = time.perf_counter() - start
            assert sum(e.kind == "file" for e in entries) == BIG_FILES
            warm_cache.clear()
            warm_cache.update(json.loads(json.dumps(cache.data)))  # as loaded from the store
            recorded[0] = fingerprint.recorded_signature(entries, warm_cache)
            return seconds

        def signature() -> float:
            start = time.perf_counter()
            now = fingerprint.stat_signature(self.big, refs)
            seconds = time.perf_counter() - start
            assert now == recorded[0], "the stat signature of the unchanged tree moved"
            return seconds

        def bare_walk() -> float:
            start = time.perf_counter()
            count = 0
            folders = [os.fspath(self.big / "data")]
            while folders:
                with os.scandir(folders.pop()) as it:
                    for e in it:
                        e.stat(follow_symlinks=False)
                        count += 1
                        if e.is_dir(follow_symlinks=False):
                            folders.append(e.path)
            seconds = time.perf_counter() - start
            assert count == BIG_FILES + BIG_FILES // 100
            return seconds

        def scan_warm() -> float:
            cache = fingerprint.StatCache(warm_cache)
            start = time.perf_counter()
            fingerprint.scan(self.big, refs, cache)
            seconds = time.perf_counter() - start
            assert not cache.changed
            return seconds

        find = ["bash", "-c", "find data -type f -print0 | xargs -0 sha256sum > /dev/null"]

        say(f"4a: scan with an empty StatCache vs find | xargs sha256sum over 200 MB, {w}+{n} rounds")
        t = interleaved({"scan": scan_cold, "sha": lambda: run(find, cwd=self.big)[0]}, w, n)
        cold = Figure("fingerprint.scan, empty StatCache", t["scan"])
        self.results.append(
            Result(
                "4a",
                "hashing 200 MB in 5,000 files (page cache warm)",
                cold,
                Figure("find | xargs -0 sha256sum", t["sha"]),
                1.2,
            )
        )
        say(f"4b/4c: the unchanged tree: a hit's stat check, a stat-cached scan, a cold scan, {w}+{n} rounds")
        t = interleaved({"sig": signature, "warm": scan_warm, "cold": scan_cold, "bare": bare_walk}, w, n)
        cold = Figure("scan, empty StatCache", t["cold"])
        bare = Figure("os.scandir + lstat alone", t["bare"])
        self.results.append(
            Result(
                "4b",
                "unchanged tree: a hit's stat check vs hashing it",
                Figure("fingerprint.stat_signature", t["sig"]),
                cold,
                1 / 20,
                faster=True,
                floor=bare,
            )
        )
        self.results.append(
            Result(
                "4c",
                "unchanged tree: a full prepare's stat-cached scan vs hashing it",
                Figure("scan with StatCache", t["warm"]),
                cold,
                faster=True,
                floor=bare,
            )
        )
        self.profile_warm_scan(lambda: fingerprint.scan(self.big, refs, fingerprint.StatCache(warm_cache)))

    def profile_warm_scan(self, scan: Callable[[], object]) -> None:
        """Where a stat-cached scan of 5,000 unchanged files spends its time (cProfile)."""
        import cProfile
        import pstats

        lstat = Figure("lstat", [])
        for _ in range(3):
            start = time.perf_counter()
            for folder, _dirs, names in os.walk(self.big / "data"):
                for n in names:
                    os.lstat(os.path.join(folder, n))
            lstat.times.append(time.perf_counter() - start)
        profiler = cProfile.Profile()
        profiler.runcall(scan)
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:6]  # type: ignore[attr-defined]
        self.profile += [
            f"4b: a stat-cached scan of 5,000 files under cProfile ({total * 1000:.0f} ms profiled; "
            f"os.walk + os.lstat of the same files alone: {_time(min(lstat.times))}); top self times:",
            *(
                f"    {tt * 1000:6.1f} ms  {calls:>6} calls  {Path(fn).name}:{line}({name})"
                for (fn, line, name), (_cc, calls, tt, _ct, _callers) in rows
            ),
        ]

    def measure_cold(self) -> None:
        """3a: a representative runtime prepare (package installs, as examples/hello and the corpus
        have them) with its first step changed; 3b: a one-step ``echo``, where the fixed cost of
        starting Invoke and importing python-on-whales shows whole."""
        for key, title, project, ctx, dockerfile, setups, reps, target in (
            (
                "3a",
                "cold prepare overhead, a package-installing prepare",
                self.cold_apt,
                self.ctx_cold_apt,
                self.cold_apt_dockerfile,
                self.cold_apt_setups,
                self.args.apt_reps,
                1.05,
            ),
            (
                "3b",
                "cold prepare overhead, 1 changed echo step",
                self.cold1,
                self.ctx_cold1,
                self.cold1_dockerfile,
                self.cold1_setups,
                self.args.cold_reps,
                None,
            ),
        ):
            self._cold(key, title, project, ctx, dockerfile, setups, reps, target)
        (self.cold1 / "zerops.yml").write_text(zerops_yml(self.cold1_setups(self.token())))
        self.profile += self.import_summary(
            "3: a cold prepare --force", [import_times(self.cold1, "prepare", "--force")], 8
        )

    def _cold(
        self,
        key: str,
        title: str,
        project: Path,
        ctx: Path,
        dockerfile: str,
        setups: Callable[[str], list[SetupSpec]],
        reps: int,
        target: float | None,
    ) -> None:
        def prepare_once() -> float:
            (project / "zerops.yml").write_text(zerops_yml(setups(self.token())))
            seconds, proc = run([*INVOKE, "prepare", "--force"], cwd=project)
            if ": built " not in proc.stdout:
                raise Failed(f"invoke prepare --force did not build:\n{proc.stdout}{proc.stderr}")
            return seconds

        def buildx_once() -> float:
            token = self.token()
            (ctx / "Dockerfile").write_text(dockerfile.replace("bench-first", f"bench-{token}"))
            seconds, proc = run(self.buildx_cmd(ctx, f"{self.direct}/{project.name}:{token}"))
            if f"bench-{token}" not in proc.stderr or all_cached(proc.stderr):
                raise Failed(f"the direct buildx build did not run the changed step:\n{proc.stderr[-2000:]}")
            return seconds

        say(f"{key}: {title} vs docker buildx build, 1+{reps} rounds")
        t = interleaved({"prepare": prepare_once, "buildx": buildx_once}, 1, reps)
        self.results.append(
            Result(
                key,
                title,
                Figure("invoke prepare --force", t["prepare"]),
                Figure("docker buildx build", t["buildx"]),
                target,
            )
        )

    def measure_four_cold(self) -> None:
        w, n = 1, self.args.cold4_reps

        def fresh() -> None:
            (self.cold4 / "zerops.yml").write_text(zerops_yml(self.cold4_setups({s: self.token() for s in FOUR})))

        def one_call() -> float:
            fresh()
            seconds, proc = run([*INVOKE, "prepare"], cwd=self.cold4)
            if proc.stdout.count(": built ") != len(FOUR):
                raise Failed(f"invoke prepare did not build the 4 setups:\n{proc.stdout}{proc.stderr}")
            return seconds

        def one_by_one() -> float:
            fresh()
            total = 0.0
            for s in FOUR:
                seconds, proc = run([*INVOKE, "prepare", "--setup", s], cwd=self.cold4)
                if ": built " not in proc.stdout:
                    raise Failed(f"invoke prepare --setup {s} did not build:\n{proc.stdout}{proc.stderr}")
                total += seconds
            return total

        say(f"5: 4 cold setups in one call vs one after another, {w}+{n} rounds")
        t = interleaved({"one": one_call, "seq": one_by_one}, w, n)
        self.results.append(
            Result(
                "5",
                "4 setups cold: one call vs one by one",
                Figure("invoke prepare (4 setups)", t["one"]),
                Figure("4x invoke prepare --setup", t["seq"]),
                0.6,
            )
        )

    def measure_deploy(self) -> None:
        """Issue 7, part 6: a code change deployed under a steady load, against its unavoidable parts.

        The example app is deployed once (runtime image, proxy image, front proxy: untimed), then
        each round changes its message and runs `invoke deploy` while a separate process sends
        LOAD_RATE requests per second at the published URL. Timed: from starting `invoke deploy`
        until that client first gets the new body (and until `invoke deploy` exits). Baseline,
        right after, with the app image that deploy built: `docker run -d` on the same network
        plus the same readiness check (curl inside the container), polled back to back."""
        from cri_tasks import api

        if not callable(getattr(api, "deploy", None)):
            self.results.append(Result("6", "deploy", note="not measured: deploy is not implemented"))
            return
        from cri_tasks.model import Project
        from cri_tasks.runtime_plan import project_id

        n = self.args.deploy_reps
        root = self.tmp / "deploy"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".cri", "build"))
        settings = {
            "cri": {
                "images": {"ubuntu": BASE_IMAGE},
                "gleam": {"source": "none"},
                "repository": self.repository,
                "cache_dir": str(self.tmp / "cache" / "deploy"),
                "env_file": "project.env",
            }
        }
        (root / "invoke.yaml").write_text(json.dumps(settings, indent=2) + "\n")
        (root / "project.env").write_text("")
        self.deployed = root
        self.deploy_network = f"cri-{project_id(Project(root / 'zerops.yml', ()))}"
        (self.tmp / "load.py").write_text(LOAD_PY)

        say("6: a first deploy of the example (runtime image, proxy image, front proxy; untimed)")
        self.set_message(root, "Hello from the BEAM, bench warm-up")
        seconds, proc = run([*INVOKE, "--write-pyc", "deploy", "--json"], cwd=root, timeout=900)
        (first,) = json.loads(proc.stdout)["setups"]
        if first["status"] != "active" or not first["urls"]:
            raise Failed(f"the first deploy did not activate the example:\n{proc.stdout}")
        url = first["urls"][0]
        say(f"    deployed in {seconds:.1f} s: {url}")

        say(
            f"6: {n} deploys of a changed message under {LOAD_RATE} requests/s, each followed by "
            f"docker run + readiness of its app image"
        )
        rounds = []
        for i in range(1, n + 1):
            r = self.deploy_round(root, url, i)
            r["baseline"] = self.start_and_ready(r["image"], i)
            rounds.append(r)
            say(
                f"    round {i}: new version answers after {_time(r['new'])}, deploy exits after "
                f"{_time(r['exit'])}; docker run + readiness {_time(r['baseline']['total'])}; load "
                f"{r['load']['failed']} failed of {r['load']['sent']}; deploy's probe: {r['switch_text']}"
            )
        base = Figure("docker run -d + readiness", [r["baseline"]["total"] for r in rounds])
        self.results.append(
            Result(
                "6a",
                "deploy until the new version answers vs its unavoidable parts",
                Figure("invoke deploy until the new body", [r["new"] for r in rounds]),
                base,
            )
        )
        self.results.append(
            Result(
                "6b",
                "the whole deploy (until invoke deploy exits) vs the same",
                Figure("invoke deploy", [r["exit"] for r in rounds]),
                base,
            )
        )
        sent = sum(r["load"]["sent"] for r in rounds)
        failed = sum(r["load"]["failed"] for r in rounds)
        gap = max(r["load"]["longest_gap_ms"] for r in rounds)
        probe_req = sum(r["switch"]["requests"] for r in rounds)
        probe_failed = sum(r["switch"]["failed"] for r in rounds)
        probe_gap = max(r["switch"]["longest_gap_ms"] for r in rounds)
        self.results.append(
            Result(
                "6c",
                f"failed requests during {n} deploys at {LOAD_RATE} requests/s (target 0)",
                note=(
                    f"{failed} failed of {sent:,} requests, longest gap {gap:.0f} ms; the deploy's own switch report: "
                    f"{probe_failed} failed of {probe_req:,}, longest gap {probe_gap:.0f} ms"
                ),
                ok=failed == 0,
            )
        )
        self.profile += self.deploy_profile(rounds)

    @staticmethod
    def set_message(root: Path, message: str) -> None:
        source = root / "src" / "hello.erl"
        text, count = MESSAGE.subn(f'-define(MESSAGE, "{message}").', source.read_text())
        if count != 1:
            raise Failed("the example's hello.erl has no -define(MESSAGE, ...) to change")
        source.write_text(text)

    def deploy_round(self, root: Path, url: str, i: int) -> dict[str, Any]:
        """One timed deploy of a changed message with the load process running."""
        import threading

        marker = f"bench round {i} {uuid.uuid4().hex[:8]}"
        self.set_message(root, f"Hello from the BEAM, {marker}")
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        if host != "127.0.0.1":
            raise Failed(f"the deploy publishes on {host}, the load goes to 127.0.0.1 only")
        load = subprocess.Popen(
            [sys.executable, str(self.tmp / "load.py"), host, port, marker, str(LOAD_RATE), "240"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        deploy: subprocess.Popen[str] | None = None
        try:
            ready = json.loads(load.stdout.readline() or "{}")  # type: ignore[union-attr]
            if not ready.get("ready"):
                raise Failed(f"the load process could not reach {url}: {ready.get('error') or load.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.5)  # the load runs steadily before the deploy starts
            lines: list[tuple[float, str]] = []
            out: list[str] = []
            start, wall = time.monotonic(), time.time()
            deploy = subprocess.Popen(
                [*INVOKE, "deploy", "--json"],
                cwd=root,
                env=ENV,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            readers = [
                threading.Thread(
                    target=lambda: lines.extend((time.monotonic(), line.rstrip("\n")) for line in deploy.stderr)
                ),  # type: ignore[union-attr]
                threading.Thread(target=lambda: out.append(deploy.stdout.read())),  # type: ignore[union-attr]
            ]
            for t in readers:
                t.start()
            try:
                code = deploy.wait(timeout=300)
            except subprocess.TimeoutExpired:
                raise Failed("invoke deploy did not finish within 300 s") from None
            ended = time.monotonic()
            for t in readers:
                t.join()
            time.sleep(0.5)  # and a little after it
            summary, err = load.communicate(input="", timeout=60)
        finally:
            for p in (deploy, load):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        log = "\n".join(text for _, text in lines)
        if code != 0:
            raise Failed(f"invoke deploy (round {i}) exited with {code}:\n{log[-2000:]}")
        (doc,) = json.loads(out[0])["setups"]
        if doc["status"] != "active" or doc["urls"] != [url] or not doc["switch"]:
            raise Failed(f"invoke deploy (round {i}) did not activate the new version at {url}:\n{out[0]}")
        try:
            stats = json.loads(summary.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise Failed(f"the load process printed no summary: {err[-1000:]}") from None
        if stats["first_new"] is None:
            raise Failed(f"the load never saw the new version (round {i}); deploy log:\n{log[-2000:]}")
        marks: dict[str, float] = {}
        for label, pattern in DEPLOY_MARKS:
            at = next((t for t, text in lines if pattern.search(text)), None)
            if at is not None:
                marks[label] = at - start
        switch = doc["switch"]
        ready = marks.get(DEPLOY_MARKS[5][0])
        return {
            "new": stats["first_new"] - start,
            "exit": ended - start,
            "image": doc["image"],
            "load": stats,
            "switch": switch,
            "marks": marks,
            "version": doc["version"],
            "app": app_timeline(doc["containers"][0], wall + ready if ready is not None else None),
            "switch_text": f"{switch['failed']} failed of {switch['requests']}, longest gap {switch['longest_gap_ms']:.0f} ms",
        }

    def start_and_ready(self, image: str, i: int) -> dict[str, float]:
        """The unavoidable parts: `docker run -d` of ``image`` on the project's network, then the
        example's readiness check (curl in the container against 127.0.0.1:8000/) until it passes,
        polled back to back. Returns the seconds of both and the total."""
        name = f"{self.repository}-baseline-{i}"
        check = [
            "docker",
            "exec",
            name,
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-L",
            "--max-time",
            "5",
            "http://127.0.0.1:8000/",
        ]
        start = time.perf_counter()
        run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--network",
                self.deploy_network,
                "--label",
                f"io.cri-bench={self.repository}",
                "--env",
                "GREETING=hello",
                "--pull",
                "never",
                image,
            ]
        )
        started = time.perf_counter()
        checks = 0
        try:
            while True:
                checks += 1
                proc = subprocess.run(check, capture_output=True, text=True, timeout=30)
                if proc.returncode == 0 and proc.stdout.strip().startswith("2"):
                    break
                if time.perf_counter() - start > 60:
                    raise Failed(
                        f"the baseline container of {image} was not ready within 60 s: "
                        f"{(proc.stdout + proc.stderr).strip()[-300:]}"
                    )
            ready = time.perf_counter()
        finally:
            subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        return {"run": started - start, "ready": ready - started, "total": ready - start, "checks": checks}

    def deploy_profile(self, rounds: list[dict[str, Any]]) -> list[str]:
        """Where a deploy's time goes: the phases between its progress lines (median of the rounds)."""
        n = len(rounds)
        out = [
            f"6: where a deploy's time goes, from the times its progress lines reached the bench "
            f"(median of {n} rounds; each phase ends with its line):"
        ]
        prev = [0.0] * n
        for label, _ in DEPLOY_MARKS:
            if not all(label in r["marks"] for r in rounds):
                out.append(f"    {'?':>8}  {label} (line not seen)")
                continue
            spans = [r["marks"][label] - p for r, p in zip(rounds, prev, strict=True)]
            prev = [r["marks"][label] for r in rounds]
            out.append(f"    {_time(statistics.median(spans)):>8}  {label}")
        tail = [r["exit"] - p for r, p in zip(rounds, prev, strict=True)]
        out.append(f"    {_time(statistics.median(tail)):>8}  the rest (records, JSON, exit)")
        switched = [r["marks"].get(DEPLOY_MARKS[6][0]) for r in rounds]
        if all(s is not None for s in switched):
            lead = statistics.median(r["new"] - s for r, s in zip(rounds, switched, strict=True) if s is not None)
            out.append(
                f"    the load's first new body came {lead * 1000:+.0f} ms from the line that confirms the "
                f"proxy reload (the bench's 10 ms load resolution, the deploy's 50 ms log polling)"
            )
        b = [r["baseline"] for r in rounds]
        out.append(
            f"    baseline: docker run -d {_time(statistics.median(x['run'] for x in b))}, then readiness "
            f"{_time(statistics.median(x['ready'] for x in b))} ({statistics.median(x['checks'] for x in b):.0f} "
            f"back-to-back checks)"
        )
        for k, r in enumerate(rounds, 1):
            ld = r["load"]
            app = r["app"]
            if app:
                out.append(
                    f"    round {k}: the new container's app listened {_time(app['listening'])} after its "
                    f"start; the deploy's readiness check passed {_time(app['ready'])} after that"
                )
            out.append(
                f"    round {k} (version {r['version']}): load {ld['failed']} failed of {ld['sent']} in "
                f"{ld['seconds']:.1f} s, longest gap {ld['longest_gap_ms']:.0f} ms, latency median "
                f"{ld['latency_ms']['median']:.0f} ms max {ld['latency_ms']['max']:.0f} ms, latest send "
                f"{ld['latest_send_ms']:.0f} ms behind its slot, old body after the first new one: {ld['old_after_new']}"
                + (f", errors: {'; '.join(ld['errors'])}" if ld["errors"] else "")
                + f"; the deploy's probe: {r['switch_text']}"
            )
        return out

    def measure_after_prune(self) -> None:
        if self.args.no_prune:
            self.results.append(Result("2d", "hit vs buildx after builder prune", note="skipped (--no-prune)"))
            return
        say("2d: docker builder prune -af (empties BuildKit's cache for every user of this engine)")
        self.prune_seconds, _ = run(["docker", "builder", "prune", "-af"])
        say(f"    pruned in {self.prune_seconds:.1f} s; the images are kept")
        hits = [self.hit(self.small)() for _ in range(self.args.reps)]
        say("    docker buildx build of the same context now (rebuilds every layer, once)")
        try:
            seconds, proc = run(self.buildx_cmd(self.ctx_small, f"{self.direct}/small:after-prune"), timeout=420)
        except Failed as exc:
            self.results.append(Result("2d", "hit vs buildx after builder prune", note=f"buildx failed: {exc}"))
            return
        self.results.append(
            Result(
                "2d",
                "hit vs buildx after builder prune",
                Figure("invoke prepare (hit)", hits),
                Figure("docker buildx build", [seconds]),
                0.01,
            )
        )
        total, ran = steps_run(proc.stderr)
        self.profile += [
            f"2d: `docker builder prune -af` took {_time(self.prune_seconds)}; the buildx build after it ran "
            f"{len(ran)} of its {total} steps (the others were CACHED):",
            *(f"    {text[:100]}" for text in ran),
        ]

    # -- output and clean-up ------------------------------------------------------------------------

    def header(self) -> None:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        try:
            engine = docker("version", "--format", "{{.Server.Version}}")
            buildx = docker("buildx", "version").split()[1]
        except Failed as exc:
            raise SystemExit(f"bench: no Docker engine answers: {exc}") from None
        import invoke

        import cri_tasks

        print(f"cri-tasks bench, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {platform.machine()}, nproc {os.cpu_count()}, load average {load} (1, 5, 15 min)")
        print(f"engine: Docker {engine}, buildx {buildx}; base image {BASE_IMAGE}")
        print(f"cri-tasks {cri_tasks.__version__}, invoke {invoke.__version__}, Python {platform.python_version()}")
        print(
            "Python bytecode: written once by the setup (invoke --write-pyc) into the bench's temp dir"
            " (PYTHONPYCACHEPREFIX), as a pip-installed package has it"
        )
        print(
            f"figures: median ± half the interquartile range over N runs after a warm-up; sides interleaved;"
            f" N={self.args.reps} (3a: {self.args.apt_reps}, 3b: {self.args.cold_reps}, 5: {self.args.cold4_reps}, 6: {self.args.deploy_reps})"
        )
        print(flush=True)

    def preflight(self) -> None:
        try:
            run(["docker", "image", "inspect", BASE_IMAGE])
        except Failed:
            raise SystemExit(
                f"bench: the base image {BASE_IMAGE} is missing: run scripts/provision-engine first"
            ) from None

    def cleanup(self) -> None:
        if self.deployed is not None:  # measure 6: its containers, proxy, volumes and network
            try:
                run([*INVOKE, "stop"], cwd=self.deployed, timeout=120)
            except Failed as exc:
                say(f"invoke stop in the deploy project failed: {exc}")
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=io.cri-bench={self.repository}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True)
            if self.deploy_network:
                subprocess.run(["docker", "network", "rm", self.deploy_network], capture_output=True)
        removed = 0
        for repo in (self.repository, f"{self.repository}-proxy", f"{self.repository}-debug", self.direct):
            try:
                # <repository>/<project id>/<setup> (cri-tasks) and <direct>/<name> (plain buildx)
                refs = docker(
                    "image",
                    "ls",
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                    "--filter",
                    f"reference={repo}/*",
                    "--filter",
                    f"reference={repo}/*/*",
                ).split()
                if refs:
                    docker("image", "rm", "-f", *refs)
                    removed += len(refs)
            except Failed as exc:
                say(f"could not remove the images of {repo}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        say(f"removed {removed} image tag(s) and the temporary projects")

    def report(self) -> None:
        print("results (cri-tasks vs the baseline; ratio = cri-tasks / baseline, medians):")
        for line in table(self.results):
            print(f"  {line}")
        print()
        missed = [r for r in self.results if r.met is False]
        met = [r for r in self.results if r.met is True]
        print(
            f"targets: {len(met)} met, {len(missed)} missed"
            + (f" ({', '.join(r.key for r in missed)})" if missed else "")
        )
        if self.profile:
            print("\nprofile (where the time goes):")
            for line in self.profile:
                print(f"  {line}")
        if self.args.markdown:
            print("\n| # | measure | cri-tasks | baseline | ratio | target | |")
            print("|---|---|---|---|---|---|---|")
            for r in self.results:
                cells = [c.replace("|", "\\|") for c in r.cells()]
                if r.a is None or r.b is None:
                    cells[-1] = "" if cells[-1] == "-" else cells[-1]
                print("| " + " | ".join(cells) + " |")


def app_timeline(container: str, ready_at: float | None) -> dict[str, float]:
    """When the example in ``container`` listened (its "listening on" line, `docker logs -t`),
    seconds after the container started, and when the readiness check passed (``ready_at``, a
    time.time() value) seconds after that. Empty when the engine does not tell."""

    def parse(stamp: str) -> float:
        stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.strip()).replace("Z", "+00:00")
        return datetime.fromisoformat(stamp).timestamp()

    try:
        started = parse(docker("container", "inspect", "--format", "{{.State.StartedAt}}", container))
        logs = run(["docker", "logs", "-t", "--tail", "50", container])[1]
        line = next((x for x in (logs.stdout + logs.stderr).splitlines() if "listening on" in x), None)
        if line is None or ready_at is None:
            return {}
        listening = parse(line.split()[0])
    except (Failed, ValueError):
        return {}
    return {"listening": listening - started, "ready": ready_at - listening}


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


ORDER = ("1a", "1b", "1c", "2a", "2b", "2c", "2d", "3a", "3b", "4a", "4b", "4c", "5", "6", "6a", "6b", "6c")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10, help="timed runs per side for the quick measures (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds before them (default 2)")
    parser.add_argument("--apt-reps", type=int, default=3, help="timed runs per side for measure 3a (default 3)")
    parser.add_argument("--cold-reps", type=int, default=6, help="timed runs per side for measure 3b (default 6)")
    parser.add_argument("--cold4-reps", type=int, default=4, help="timed runs per side for measure 5 (default 4)")
    parser.add_argument(
        "--deploy-reps", type=int, default=3, help="timed deploys for measure 6, each with its baseline (default 3)"
    )
    parser.add_argument(
        "--no-prune", action="store_true", help="skip the last stage (docker builder prune -af, then one full rebuild)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the results as a Markdown table")
    parser.add_argument("--only-deploy", action="store_true", help="run measure 6 alone (no other setup or measure)")
    args = parser.parse_args(argv)
    bench = Bench(args)
    bench.header()
    bench.preflight()
    status = 0
    try:
        stages: tuple[Callable[[], None], ...] = (bench.measure_deploy,)
        if not args.only_deploy:
            bench.setup()
            stages = (
                bench.measure_hits,
                bench.check_imports,
                bench.where_time_goes,
                bench.profile_hits,
                bench.measure_fingerprint,
                bench.measure_cold,
                bench.measure_four_cold,
                bench.measure_deploy,
                bench.measure_after_prune,
            )
        for stage in stages:
            before = len(bench.results)
            try:
                stage()
            except Rebuilt as exc:
                say(
                    f"{exc}\n  the inputs changed under the bench (a template edited?): preparing again, "
                    f"then repeating {stage.__name__}"
                )
                del bench.results[before:]
                bench.prepare_all()
                stage()
            for r in bench.results[before:]:
                say(r.line())
    except Failed as exc:
        print(f"\nbench: a measure could not run: {exc}", flush=True)
        status = 2
    except KeyboardInterrupt:
        print("\nbench: interrupted", flush=True)
        status = 130
    finally:
        bench.results.sort(key=lambda r: ORDER.index(r.key) if r.key in ORDER else len(ORDER))
        bench.report()
        bench.cleanup()
        print(f"\nwhole run: {time.monotonic() - T0:.0f} s", flush=True)
    if status == 0 and any(r.met is False for r in bench.results):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
