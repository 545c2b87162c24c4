"""Files in and out of the build (pure file operations, no Docker).

- :func:`stage_source`: the project as the build container sees it in /build/source: without what
  ``.gitignore`` excludes, ``.git`` and the tool's own cache folder. ``.deployignore`` is not
  applied here: on Zerops it filters the deploy artifact only, never what the build sees.
- :func:`assemble`: the deploy artifact from the built tree, by ``deployFiles`` (with the ``~``
  rule) filtered by ``.deployignore``.

Both hard-link where they can (same file system) and copy otherwise. gitignore matching uses
pathspec's GitIgnoreSpec: its rules (negation, anchoring, directory patterns) are subtle enough
that a well-kept library beats hand-written code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from .errors import ConfigError, Problem
from .model import PathRef
from .paths import WHOLE_BUILD_DIR, path_refusal


def ignore_spec(root: Path, *names: str) -> pathspec.GitIgnoreSpec:
    lines: list[str] = []
    for name in names:
        path = root / name
        if path.is_file():
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _walk(
    src_root: Path, rel_start: str, skip: pathspec.GitIgnoreSpec, always_skip: set[str]
) -> Iterable[tuple[str, os.DirEntry[str] | None]]:
    """(rel path, entry) for everything under ``src_root/rel_start`` that is not skipped."""
    stack = [rel_start]
    while stack:
        rel = stack.pop()
        with os.scandir(src_root / rel if rel else src_root) as it:
            for e in it:
                child = f"{rel}/{e.name}" if rel else e.name
                if child in always_skip:
                    continue
                is_dir = e.is_dir(follow_symlinks=False)
                if skip.match_file(child + ("/" if is_dir else "")):
                    continue
                yield child, e
                if is_dir:
                    stack.append(child)


def copy_tree(
    src_root: Path, dst_root: Path, rels: Iterable[tuple[str, os.DirEntry[str] | None]], *, strip: str = ""
) -> int:
    """Recreate ``rels`` (relative to src_root) under dst_root, minus the prefix ``strip``."""
    count = 0
    for rel, e in rels:
        target = dst_root / rel[len(strip) :] if strip else dst_root / rel
        src = src_root / rel
        if e is not None and e.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), target)
        elif e is not None and e.is_dir(follow_symlinks=False):
            target.mkdir(parents=True, exist_ok=True)
        elif e is None or e.is_file(follow_symlinks=False):
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, target)
        count += 1
    return count


def stage_source(root: Path, dest: Path, *, cache_dir: Path, private: Sequence[Path] = ()) -> int:
    """Copy the project into ``dest`` as the build sees it; returns the number of entries.

    Left out: what .gitignore excludes, .git, the cache folder and ``private`` files (the
    project env file: its values reach containers at run time only). Not .deployignore: it
    filters the artifact (:func:`assemble`), never what the build sees."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    skip = ignore_spec(root, ".gitignore")
    always = {".git"}
    for path in (cache_dir, *private):
        try:
            always.add(path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
    return copy_tree(root, dest, _walk(root, "", skip, always))


@dataclass(frozen=True)
class DeployPath:
    """One deployFiles entry: what to take (relative to the build dir) and where it lands."""

    source: str  # "" = the whole build dir
    strip: str  # prefix removed from the destination ("~" rule)
    ref: PathRef


def parse_deploy_path(ref: PathRef) -> DeployPath:
    refusal = path_refusal(ref.value, "deployFiles")  # the loader's rule and words, asked again
    if refusal is not None:
        raise ConfigError([Problem(refusal, path=ref.path, location=ref.location)])
    raw = ref.value.strip()
    if raw in WHOLE_BUILD_DIR:  # "/" and "/~": the whole build folder, as "./" and "./~"
        raw = "." + raw
    pure = PurePosixPath(raw.replace("~", "") or ".")
    if "~" in raw:
        before, after = raw.split("~", 1)
        strip = PurePosixPath(before or ".").as_posix()
        strip = "" if strip == "." else strip + "/"
        source = PurePosixPath(before + after).as_posix()
        return DeployPath("" if source == "." else source, strip, ref)
    source = pure.as_posix()
    return DeployPath("" if source == "." else source, "", ref)


def assemble(built: Path, dest: Path, deploy_files: Sequence[PathRef], *, ignore: pathspec.GitIgnoreSpec) -> int:
    """The artifact in ``dest`` from the built tree, by deployFiles and .deployignore."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    real_built = Path(os.path.realpath(built))
    count = 0
    for ref in deploy_files:
        dp = parse_deploy_path(ref)
        src = built / dp.source if dp.source else built
        if not os.path.lexists(src):
            raise ConfigError(
                [
                    Problem(
                        f"{ref.value!r}: {dp.source or '.'} does not exist after the build",
                        path=ref.path,
                        location=ref.location,
                    )
                ]
            )
        real = Path(os.path.realpath(src))
        if real != real_built and real_built not in real.parents:
            raise ConfigError(
                [Problem(f"{ref.value!r} points outside the build folder", path=ref.path, location=ref.location)]
            )
        if src.is_dir() and not src.is_symlink():
            landing = dp.source[len(dp.strip) :] if dp.strip else dp.source
            if landing:
                (dest / landing).mkdir(parents=True, exist_ok=True)
            count += copy_tree(built, dest, _walk(built, dp.source, ignore, set()), strip=dp.strip)
        elif not ignore.match_file(dp.source):
            count += copy_tree(built, dest, [(dp.source, None)], strip=dp.strip)
    return count
