"""What a setup's runtime image is made from: its inputs, its fingerprint, and why it changed.

:func:`plan` gathers a setup's inputs without asking Docker anything: run.os, run.base,
run.prepareCommands, the addToRunPrepare list and the content hash of every file it names
(stat-cached), the template digest and the Gleam source; :meth:`Plan.with_base` adds the base
image id and computes the fingerprint. :func:`diff_inputs` says, field by field and file by
file, what changed between two input sets (``prepare --explain``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fingerprint, records
from .dockerfile import templates_digest
from .errors import ConfigError, Problem
from .model import Project, Setup
from .runtimes import DEFAULT_BASE, OPERATING_SYSTEMS, gleam_release_url, gleam_version, min_otp
from .settings import Settings
from .workspace import project_id as project_id  # its home is the workspace; still importable from here

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Plan:
    """What prepare needs to know about one setup before asking Docker anything."""

    setup: Setup
    inputs: dict[str, Any]
    entries: list[fingerprint.Entry]
    base_ref: str
    gleam_file: Path | None
    files_root: Path
    stats: dict[str, list[Any]] = field(default_factory=dict)  # the stat cache the scan used
    gleam_stat: list[Any] | None = None  # [size, mtime_ns, ino, dev] of the hashed Gleam archive
    fingerprint: str = ""
    last: records.PreparedSetup | None = None  # the setup's record of its last good prepare
    record: records.ImageRecord | None = None  # the image recorded for ``fingerprint``
    present: bool = False  # ``record``'s image is on the engine (its id)
    named: bool = False  # ... and its tag still names it
    guess_tag: str | None = None
    project_id: str = ""  # the project's name on the engine (see :func:`project_id`)

    @property
    def name(self) -> str:
        return self.setup.name

    def with_base(self, base_id: str | None) -> str:
        self.inputs["baseImage"] = {"ref": self.base_ref, "id": base_id}
        self.fingerprint = fingerprint.compute(self.inputs)
        return self.fingerprint

    def prepared(self, tag: str, image_id: str) -> records.PreparedSetup:
        """The setup record saying that ``image_id`` (``tag``) is this plan's image."""
        return records.PreparedSetup(self.fingerprint, tag, image_id, self.inputs, records.now())


# Names on the engine. Every image cri-tasks makes for a project lives under
# ``<repository>[-proxy|-debug]/<project id>/``: two projects on one engine never share a tag,
# even when their setups have the same names (docs/architecture.md, "Names on the engine").


def repository_for(settings: Settings, pid: str, setup: str) -> str:
    """The image repository of one setup of one project: ``<repository>/<project id>/<setup>``."""
    return f"{settings.repository}/{pid}/{setup.lower()}"


def tag_for(settings: Settings, pid: str, setup: str, fp: str) -> str:
    """The runtime image's tag: ``<repository>/<project id>/<setup>:<fingerprint[:12]>``."""
    return f"{repository_for(settings, pid, setup)}:{fp[:12]}"


def app_tag(settings: Settings, pid: str, setup: str, number: int) -> str:
    """An app version's tag: ``<repository>/<project id>/<setup>:v<N>``."""
    return f"{repository_for(settings, pid, setup)}:v{number}"


def gleam_source_for(
    settings: Settings, project: Project, store: Store, version: str
) -> tuple[dict[str, Any], Path | None]:
    source = settings.gleam_source.strip()
    if source == "release":
        return {
            "source": "release",
            "version": version,
            "url": gleam_release_url(version),
            "otp": min_otp(version),
        }, None
    if source == "none":
        return {"source": "none", "otp": min_otp(version)}, None
    path = settings.gleam_archive(project.root)
    if path is None or not path.is_file():
        raise ConfigError(f"cri.gleam.source: {source!r} is neither 'release', 'none' nor an existing file ({path})")
    st = path.stat()
    cache = fingerprint.StatCache(records.gleam_archive_stats(store))
    sha = cache.file_digest(path, str(path), st)
    if cache.changed:
        records.set_gleam_archive_stats(store, cache.data)
    return {"source": "file", "version": version, "sha256": sha, "otp": min_otp(version)}, path


def plan(project: Project, setup: Setup, settings: Settings, store: Store, root: Path | None = None) -> Plan:
    """The inputs of one setup's runtime image (everything but the base image id).

    addToRunPrepare paths are read from ``root``: the project folder for a plain ``prepare``,
    the built tree (after buildCommands, as on Zerops) during ``deploy``."""
    run = setup.run
    os_info = OPERATING_SYSTEMS.get(run.os)
    if os_info is None:
        raise ConfigError([Problem(f"unsupported os {run.os!r}", path=f"{setup.name}: run.os")])
    version = gleam_version(run.base, where=run.where("base"), path=f"zerops[{setup.index}].run.base")
    refs = setup.build.add_to_run_prepare if setup.build else ()
    stats = fingerprint.StatCache(records.stat_cache(store, setup.name))
    entries = fingerprint.scan(root or project.root, refs, stats)
    seen = stats.pruned()
    if stats.changed or len(seen) != len(stats.data):
        records.set_stat_cache(store, setup.name, seen)
    gleam, gleam_file = gleam_source_for(settings, project, store, version)
    gleam_stat = None
    if gleam_file is not None:
        hashed = (records.gleam_archive_stats(store) or {}).get(str(gleam_file))
        gleam_stat = hashed[:4] if hashed and hashed[4:] == [gleam["sha256"]] else None
    inputs: dict[str, Any] = {
        "os": run.os,
        "base": run.base or DEFAULT_BASE,
        "prepareCommands": [c.text for c in run.prepare_commands],
        "addToRunPrepare": [r.value for r in refs],
        "files": {e.rel: e.as_json() for e in entries},
        "templates": templates_digest(),
        "gleam": gleam,
        "zcli": settings.zcli_url if settings.zcli_enabled else None,
    }
    return Plan(
        setup,
        inputs,
        entries,
        settings.image_for(run.os),
        gleam_file,
        root or project.root,
        stats=seen,
        gleam_stat=gleam_stat,
        project_id=project_id(project),
    )


# --------------------------------------------------------------------------------------------
# explain: why an image would be rebuilt


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def diff_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Field by field and file by file, what changed between two input sets."""
    reasons: list[str] = []
    for key in ("os", "base"):
        if old.get(key) != new.get(key):
            reasons.append(f"run.{key} changed: {_short(old.get(key))} -> {_short(new.get(key))}")
    a, b = old.get("prepareCommands", []), new.get("prepareCommands", [])
    for i in range(max(len(a), len(b))):
        if i >= len(a):
            reasons.append(f"run.prepareCommands[{i}] added: {_short(b[i])}")
        elif i >= len(b):
            reasons.append(f"run.prepareCommands[{i}] removed: {_short(a[i])}")
        elif a[i] != b[i]:
            reasons.append(f"run.prepareCommands[{i}] changed: {_short(a[i])} -> {_short(b[i])}")
    if old.get("addToRunPrepare") != new.get("addToRunPrepare"):
        reasons.append(f"build.addToRunPrepare changed: {old.get('addToRunPrepare')} -> {new.get('addToRunPrepare')}")
    fa, fb = old.get("files", {}), new.get("files", {})
    for rel in sorted(set(fa) | set(fb)):
        if rel not in fa:
            reasons.append(f"addToRunPrepare: {rel} added")
        elif rel not in fb:
            reasons.append(f"addToRunPrepare: {rel} removed")
        elif fa[rel] != fb[rel]:
            ka, ma, ca = fa[rel].split(":", 2)
            kb, mb, cb = fb[rel].split(":", 2)
            if ka != kb:
                reasons.append(f"addToRunPrepare: {rel} changed from a {ka} to a {kb}")
            elif ca != cb:
                what = "link target" if kb == "link" else "content"
                reasons.append(f"addToRunPrepare: {rel} {what} changed")
            if ma != mb:
                reasons.append(f"addToRunPrepare: {rel} mode changed: {ma} -> {mb}")
    if old.get("templates") != new.get("templates"):
        reasons.append("the runtime templates of cri-tasks changed (new cri-tasks version)")
    if old.get("gleam") != new.get("gleam"):
        reasons.append(f"the Gleam CLI source changed: {old.get('gleam')} -> {new.get('gleam')}")
    if old.get("zcli") != new.get("zcli"):
        reasons.append("the zCLI setting changed")
    ob, nb = old.get("baseImage", {}), new.get("baseImage", {})
    if ob.get("ref") != nb.get("ref"):
        reasons.append(f"base image changed: {ob.get('ref')} -> {nb.get('ref')}")
    elif ob.get("id") != nb.get("id"):
        now = nb.get("id") or "not on this engine (would be pulled)"
        reasons.append(f"base image {nb.get('ref')} changed: {ob.get('id')} -> {now}")
    return reasons or ["the inputs differ in a way cri-tasks cannot name"]
