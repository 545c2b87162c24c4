"""A full disk under the cache folder (a tmpfs of a few hundred KiB) against the real engine:
build, deploy and prepare of the example end in a clear error naming the folder and what was
being written, remove their partial work, leave every record as it was, and status, stop and
clean still work on a disk that is full to the last byte. (A prepare whose log fills the disk:
tests/test_reliability_engine.py)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import edit, fill, get, invoke, records, tmpfs

pytestmark = pytest.mark.engine

LOUD = "head -c 90000 /dev/zero | tr '\\\\0' 'x' | fold -w 100"  # BuildKit clips ~100 KiB per step


@pytest.fixture
def small(app: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The example project with its cache folder on a 640 KiB tmpfs: (project, cache folder)."""
    with tmpfs(tmp_path / "small", "640k") as mount:
        settings = yaml.safe_load((app / "invoke.yaml").read_text())
        settings["cri"]["cache_dir"] = str(mount / "cache")
        (app / "invoke.yaml").write_text(yaml.safe_dump(settings))
        try:
            yield app, mount / "cache"
        finally:
            invoke(app, "stop")  # while the cache folder is still there


def leftovers(cache: Path) -> list[str]:
    """Work that a finished command must not leave behind in the cache folder."""
    found = [p for name in ("context", "out", "app-context", "build-env") for p in (cache / "build").glob(f"*/{name}")]
    found += list((cache / "context").glob("*")) if (cache / "context").is_dir() else []
    found += list(cache.rglob("build-env"))
    return sorted(str(p.relative_to(cache)) for p in found)


def logs(cache: Path) -> set[Path]:
    return set((cache / "logs").rglob("*.log"))


def failed_cleanly(proc: Any, *texts: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for text in texts:
        assert text in proc.stderr, proc.stderr


def test_build_and_deploy_on_a_full_disk_fail_cleanly_and_status_stop_clean_still_work(
    small: tuple[Path, Path],
) -> None:
    project, cache = small
    first = invoke(project, "deploy", "--json")
    assert first.returncode == 0, first.stderr
    url = json.loads(first.stdout)["setups"][0]["urls"][0]
    before = records(cache)
    assert json.loads(before["deploy/app"])["active"] == 1
    kept_logs = logs(cache)

    # 1. the source does not fit: staging /build/source fails, for build and for deploy
    (project / "assets").mkdir()
    (project / "assets" / "blob.bin").write_bytes(os.urandom(1024 * 1024))
    source = cache / "build" / "app" / "context" / "source"
    for task in ("build", "deploy"):
        proc = invoke(project, task)
        failed_cleanly(
            proc, "cannot write the staged project source (/build/source)", str(source), "No space left on device"
        )
        assert leftovers(cache) == []
        assert records(cache) == before  # nothing recorded, nothing lost
        assert logs(cache) == kept_logs
    (project / "assets" / "blob.bin").unlink()

    # 2. the build's log does not fit: the deploy stops, the incomplete log is removed
    edit(
        project / "zerops.yml",
        "        - cp entrypoint.sh build/erlang-shipment/\n",
        "        - cp entrypoint.sh build/erlang-shipment/\n" + "".join(f"        - {LOUD}\n" for _ in range(8)),
    )
    proc = invoke(project, "deploy")
    failed_cleanly(
        proc,
        "cannot write the log build-",
        str(cache / "logs" / "app"),
        "No space left on device",
        "the incomplete log was removed",
    )
    assert leftovers(cache) == []
    assert records(cache) == before
    assert logs(cache) == kept_logs
    assert get(url).startswith("Hello from the BEAM, version 1")  # the active version kept serving

    # 3. a disk full to the last byte: a prepare stops cleanly; status reads, stop and clean
    #    write their records
    fill(cache.parent)
    assert os.statvfs(cache).f_bavail == 0
    proc = invoke(project, "prepare", "--force")
    failed_cleanly(proc, "cannot write the runtime build context", str(cache / "context"), "No space left on device")
    assert leftovers(cache) == []
    # the stat cache of the addToRunPrepare files (read from the project now, from the built tree
    # before) was refreshed before the build started; every other record is as it was
    after = records(cache)
    assert {k: v for k, v in after.items() if k != "stat/app"} == {k: v for k, v in before.items() if k != "stat/app"}
    assert logs(cache) == kept_logs
    status = invoke(project, "status", "--json")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    (entry,) = json.loads(status.stdout)["setups"]
    assert entry["active_version"] == 1 and entry["versions"] == [1]
    assert [str(c["version"]) for c in entry["containers"]] == ["1"]
    stopped = invoke(project, "stop")
    assert stopped.returncode == 0 and "Traceback" not in stopped.stderr, stopped.stderr
    assert "app: removed 2 container(s)" in stopped.stdout  # the app and its front proxy
    cleaned = invoke(project, "clean")
    assert cleaned.returncode == 0 and "Traceback" not in cleaned.stderr, cleaned.stderr
    assert "app: forgot 1 record(s)" in cleaned.stdout
    after = records(cache)
    assert json.loads(after["deploy/app"])["active"] is None
    assert json.loads(after["deploy/app"])["versions"] == json.loads(before["deploy/app"])["versions"]
    assert "setup/app" not in after and not [k for k in after if k.startswith("image/app/")]
    assert invoke(project, "status", "--json").returncode == 0
