"""Runtime prepare: the custom runtime image (CRI) of a setup, built only when its inputs changed.

The flow of one full ``prepare`` (see docs/architecture.md; a call the cache-hit index answers
never gets here):

1. :func:`cri_tasks.runtime_plan.plan` gathers each setup's inputs without Docker.
2. One engine question resolves the base images and checks the candidate images; a setup whose
   fingerprint has a record **and** an image is up to date (no builder call, no python-on-whales
   or Jinja2 import).
3. The others build in parallel (:mod:`cri_tasks.runtime_build`), each under a per-fingerprint
   file lock so concurrent processes build once.
4. All up to date or built: the entry of the cache-hit index for the next call.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import engine, fingerprint, hitindex, records
from .errors import CriError
from .model import Project
from .paths import component
from .results import PREPARING_RUNTIME_FAILED, PrepareResult, Reporter, stderr_reporter
from .runtime_build import build_guarded, interrupted, remove_leftovers
from .runtime_plan import Plan, diff_inputs, plan, tag_for
from .settings import Settings
from .store import Store
from .workspace import Workspace, opened


class PrepareFailed(CriError):
    """One or more setups failed; ``results`` holds every setup's outcome."""

    status = PREPARING_RUNTIME_FAILED

    def __init__(self, errors: Sequence[CriError], results: Sequence[PrepareResult]) -> None:
        self.errors = tuple(errors)
        self.results = tuple(results)
        super().__init__("\n".join(str(e) for e in errors), status=errors[0].status)


# --------------------------------------------------------------------------------------------
# the whole phase


def prepare(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    explain: bool = False,
    debug: bool = False,
    report: Reporter = stderr_reporter,
    root: Path | None = None,
    hit_key: hitindex.Key | None = None,
    workspace: Workspace | None = None,
) -> list[PrepareResult]:
    """Prepare the runtime image of each selected setup; see the module docstring.

    With ``hit_key`` (a plain prepare of the project folder), a run that ends with every setup
    up to date or built leaves an entry in the cache-hit index for the next call."""
    setups = project.select(setup)
    for s in setups:  # every name before anything is written (the loader checked them too)
        component(s.name, "setup name")
    with opened(project, settings, workspace) as ws:
        return _prepare(
            ws,
            setups,
            force=force,
            no_cache=no_cache,
            explain=explain,
            debug=debug,
            report=report,
            root=root,
            hit_key=hit_key,
        )


def _prepare(
    ws: Workspace,
    setups: Sequence[Any],
    *,
    force: bool,
    no_cache: bool,
    explain: bool,
    debug: bool,
    report: Reporter,
    root: Path | None,
    hit_key: hitindex.Key | None,
) -> list[PrepareResult]:
    project, settings, store = ws.project, ws.settings, ws.store
    plans = [plan(project, s, settings, store, root) for s in setups]
    _resolve(plans, settings, store, pull=not explain)
    if explain:
        return [_explain(p, settings) for p in plans]
    results: dict[str, PrepareResult] = {}
    todo: list[Plan] = []
    for p in plans:
        hit = None if force else _hit(p, store, settings)
        if hit is not None:
            results[p.name] = hit
            report(f"[{p.name}] up to date ({hit.image})")
        else:
            todo.append(p)
    errors: list[CriError] = []
    if todo:
        remove_leftovers(ws.cache_dir)  # contexts that killed builds left behind, before making more
        args: dict[str, Any] = dict(workspace=ws, force=force, no_cache=no_cache, debug=debug, report=report)
        if len(todo) == 1 or settings.parallel == 1 or debug:
            outcomes = [build_guarded(p, store, **args) for p in todo]
        else:
            # Each worker thread opens a store of its own: diskcache keeps one SQLite connection
            # per thread and closes only the calling thread's, and the read-only connection of a
            # full disk may not be used from another thread.
            def in_thread(p: Plan) -> tuple[PrepareResult, CriError | None]:
                with Store(ws.cache_dir) as own:
                    return build_guarded(p, own, **args)

            pool = ThreadPoolExecutor(max_workers=min(settings.parallel, len(todo)))
            try:
                outcomes = list(pool.map(in_thread, todo))
            except KeyboardInterrupt:
                # Ctrl-C reaches this thread only: stop the builds of the worker threads.
                engine.stop_children()
                pool.shutdown(wait=True, cancel_futures=True)
                raise interrupted() from None
            pool.shutdown()
        for p, (result, error) in zip(todo, outcomes, strict=True):
            results[p.name] = result
            if error is not None:
                errors.append(error)
    ordered = [results[s.name] for s in setups]
    if errors:
        raise PrepareFailed(errors, ordered)
    if hit_key is not None and root is None:
        entries = [_hit_entry(p, results[p.name]) for p in plans]
        if all(e is not None for e in entries):
            hitindex.remember(hit_key, [e for e in entries if e is not None], store)
    return ordered


def _hit_entry(p: Plan, r: PrepareResult) -> dict[str, Any] | None:
    """What the cache-hit index needs to say this setup is unchanged (see hitindex)."""
    files = fingerprint.recorded_signature(p.entries, p.stats)
    if files is None or r.image is None or r.image_id is None or (p.gleam_file is not None and p.gleam_stat is None):
        return None
    refs = p.setup.build.add_to_run_prepare if p.setup.build else ()
    return {
        "name": p.name,
        "root": str(p.files_root),
        "refs": [ref.value for ref in refs],
        "files": files,
        "gleam": None if p.gleam_file is None else {"path": str(p.gleam_file), "stat": p.gleam_stat},
        "base": dict(p.inputs["baseImage"]),
        "tag": r.image,
        "image_id": r.image_id,
        "fingerprint": r.fingerprint,
        "log": r.log,
    }


def _resolve(plans: list[Plan], settings: Settings, store: Store, *, pull: bool) -> None:
    """Fill each plan's base image id and fingerprint with one ``docker image inspect``.

    The fingerprint depends on the base image id, so guess it from the setup's last record and
    ask for the base images and the guessed images together; a wrong guess costs a second call.
    """
    refs: list[str] = []
    for p in plans:
        p.last = last = records.prepared_setup(store, p.name)
        guess = None
        if last and last.inputs.get("baseImage", {}).get("ref") == p.base_ref:
            guess = last.inputs["baseImage"].get("id")
        p.with_base(guess)
        p.record = records.image(store, p.name, p.fingerprint)
        if p.record:
            p.guess_tag = p.record.tag
        refs.extend(r for r in (p.base_ref, p.guess_tag) if r and r not in refs)
    ids = engine.image_ids(refs)
    for p in plans:
        base_id = ids.get(p.base_ref)
        if base_id is None and pull:
            base_id = engine.pull(p.base_ref)
            ids[p.base_ref] = base_id
        if base_id != p.inputs["baseImage"]["id"] or p.record is None:
            p.with_base(base_id)
            p.record = records.image(store, p.name, p.fingerprint)
            p.guess_tag = None
        if p.record is not None:
            tag = p.record.tag
            present = ids.get(tag) if tag in ids else engine.image_ids([tag]).get(tag)
            image_id = p.record.image_id
            p.named = present is not None and present == image_id
            if present is None and image_id:  # the name went, the image may not have (see _hit)
                present = engine.image_ids([image_id]).get(image_id)
            p.present = present is not None and present == image_id


def _hit(p: Plan, store: Store, settings: Settings) -> PrepareResult | None:
    rec = p.record
    if not rec or not p.present:
        return None
    wanted = tag_for(settings, p.project_id, p.name, p.fingerprint)
    if rec.tag != wanted or not p.named:
        # cri.repository changed (or a record from before images were named per project): the
        # image is the same, so it gets the new name instead of a rebuild; the old name goes
        # (only a name: an image that still has others, or that a container uses, stays).
        engine.tag_image(rec.image_id, wanted)
        if rec.tag != wanted and p.named:  # never a name that now means another image
            engine.untag(rec.tag)
        rec = p.record = replace(rec, tag=wanted)
        records.set_image(store, p.name, p.fingerprint, rec)
        records.set_prepared_setup(store, p.name, p.prepared(wanted, rec.image_id))
    elif not p.last or p.last.fingerprint != p.fingerprint:
        # An earlier image matches again (a change was reverted): make it the current one.
        records.set_prepared_setup(store, p.name, p.prepared(rec.tag, rec.image_id))
    return PrepareResult(p.name, "up to date", rec.tag, rec.image_id, p.fingerprint, True, 0.0, rec.log)


def _explain(p: Plan, settings: Settings) -> PrepareResult:
    last = p.last
    tag = tag_for(settings, p.project_id, p.name, p.fingerprint)
    rec = p.record
    if rec and p.present:
        if last and last.fingerprint != p.fingerprint:
            reasons = [f"up to date: the inputs match an image built earlier ({rec.tag})"]
        else:
            reasons = ["up to date: nothing that invalidates the runtime image changed"]
        return PrepareResult(
            p.name, "up to date", rec.tag, rec.image_id, p.fingerprint, True, 0.0, rec.log, tuple(reasons)
        )
    if rec:
        reasons = [f"image {rec.tag} was removed"]
    elif last is None:
        reasons = ["no runtime image was prepared for this setup yet (or it was cleared)"]
    else:
        reasons = diff_inputs(last.inputs, p.inputs)
    return PrepareResult(p.name, "would build", tag, None, p.fingerprint, False, 0.0, None, tuple(reasons))


def last_log(
    project: Project, settings: Settings, setup: str, phase: str = "prepare", *, workspace: Workspace | None = None
) -> Path | None:
    with opened(project, settings, workspace) as ws:
        rec = records.last_log(ws.store, setup, phase)
    return Path(rec.path) if rec else None


def clean(
    project: Project,
    settings: Settings,
    *,
    setup: str | None = None,
    images: bool = False,
    workspace: Workspace | None = None,
) -> list[dict[str, Any]]:
    """Zerops' "Clear runtime prepare image": forget the records (and optionally the images)."""
    out = []
    with opened(project, settings, workspace) as ws:
        for s in project.select(setup):
            tags = [r.tag for r in records.images_of(ws.store, s.name)]
            forgotten = records.forget_setup(ws.store, s.name)
            removed = engine.remove_images(tags) if images and tags else []
            out.append({"setup": s.name, "forgotten": forgotten, "removed": removed})
    return out
