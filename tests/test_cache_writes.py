"""Writes into the cache folder without the engine: a failed write is a clear error that
removes its partial work, the records survive a disk that refuses writes, locks tell live work
from leftovers, and build secrets never sit in a file."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from cri_tasks import build_phase, locks
from cri_tasks import store as store_module
from cri_tasks.errors import CriError
from cri_tasks.logfiles import LogFile
from cri_tasks.paths import writing
from cri_tasks.store import RESERVE, Store


def full(*_a: Any, **_k: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_names_what_and_where_and_removes_the_partial_work(tmp_path: Path) -> None:
    partial = tmp_path / "context"
    (partial / "source").mkdir(parents=True)
    (partial / "source" / "half.txt").write_text("half")
    with pytest.raises(CriError) as caught:
        with writing("the staged project source", partial / "source", partial=[partial]):
            full()
    assert (
        str(caught.value) == f"cannot write the staged project source in {partial / 'source'}: No space left on device"
    )
    assert not partial.exists()


def test_a_log_that_cannot_be_written_is_removed_and_named(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "build-1.log"
    path.parent.mkdir()
    with pytest.raises(
        CriError, match="cannot write the log build-1.log in .*: No space left on device; .*incomplete log was removed"
    ):
        with LogFile(path) as log:
            log.write("first line\n")

            class Full:
                def write(self, text: str) -> int:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                def close(self) -> None:
                    pass

            log.f.close()
            log.f = Full()
            log.write("second line\n")
    assert not path.exists()


def _disk_full_on_open(monkeypatch: pytest.MonkeyPatch, times: int | None = None) -> list[int]:
    """diskcache's open (it writes its settings) fails like on a full disk, ``times`` times."""
    calls: list[int] = []
    real = store_module._new_cache

    def opening(directory: Path) -> Any:
        calls.append(1)
        if times is None or len(calls) <= times:
            raise sqlite3.OperationalError("database or disk is full")
        return real(directory)

    monkeypatch.setattr(store_module, "_new_cache", opening)
    return calls


def test_records_stay_readable_and_untouched_when_the_disk_refuses_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with Store(cache) as store:
        store.set("deploy/app", {"active": 1, "next": 2})
    (cache / "records" / RESERVE).unlink()  # no reserve left to give up
    _disk_full_on_open(monkeypatch)
    with Store(cache) as store:
        assert store.get("deploy/app") == {"active": 1, "next": 2}
        assert store.keys("deploy/") == ["deploy/app"]
        with pytest.raises(
            CriError,
            match=r"cannot write the record deploy/app in .*records: database or disk is full; "
            r"the records already there are unchanged",
        ):
            store.set("deploy/app", {"active": None, "next": 2})
        with pytest.raises(CriError, match="cannot remove the record deploy/app"):
            store.delete("deploy/app")
    assert not list(cache.glob("records.old-*"))  # a full disk is not a broken database
    monkeypatch.undo()
    with Store(cache) as store:
        assert store.get("deploy/app") == {"active": 1, "next": 2}


def test_the_reserve_file_is_given_up_for_a_write_on_a_full_disk_and_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with Store(cache) as store:
        store.set("deploy/app", {"active": 1})
    reserve = cache / "records" / RESERVE
    assert reserve.stat().st_size == store_module.RESERVE_BYTES and stat.S_IMODE(reserve.stat().st_mode) == 0o600
    calls = _disk_full_on_open(monkeypatch, times=1)
    with Store(cache) as store:
        assert store.get("deploy/app") == {"active": 1}  # read without opening for writing
        assert len(calls) == 1 and reserve.exists()  # a read does not spend the reserve
        store.set("deploy/app", {"active": None})  # the reserve made room: opened again, written
        assert len(calls) == 2
    assert reserve.exists()  # made again once the write was done
    with Store(cache) as store:
        assert store.get("deploy/app") == {"active": None}


def test_a_missing_database_on_a_full_disk_reads_as_empty_and_refuses_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_new_cache", full)
    with Store(tmp_path / "cache") as store:
        assert store.get("deploy/app") is None and store.keys() == []
        with pytest.raises(CriError, match="No space left on device"):
            store.set("deploy/app", {"active": 1})


def test_a_lock_taken_again_by_its_holder_does_not_wait_but_another_thread_does(tmp_path: Path) -> None:
    with locks.locked(tmp_path, "build-app"):
        with locks.locked(tmp_path, "build-app", wait=False):  # a deploy running its build phase
            pass
        failed: list[str] = []

        def other() -> None:
            try:
                with locks.locked(tmp_path, "build-app", wait=False, what="busy"):
                    pass
            except CriError as exc:
                failed.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert failed and failed[0].startswith("busy")


def test_a_sweep_removes_work_whose_owner_is_gone_and_never_live_work(tmp_path: Path) -> None:
    live, dead = tmp_path / "live", tmp_path / "dead"
    live.mkdir()
    dead.mkdir()
    (tmp_path / "locks").mkdir(mode=0o700)
    # a live owner in another process holds its lock
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "locks" / "live.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert locks.sweep(tmp_path, "live", [live]) == []
        assert live.is_dir()
        assert locks.sweep(tmp_path, "dead", [dead]) == [dead]
        assert not dead.exists()
    finally:
        holder.kill()
        holder.communicate()
    assert locks.sweep(tmp_path, "live", [live]) == [live]  # its owner is gone now


def test_build_secrets_are_read_from_memory_never_from_a_file(tmp_path: Path) -> None:
    with build_phase.build_secret(tmp_path, "TOKEN='s3cr3t'\n") as src:
        assert src.startswith(f"/proc/{os.getpid()}/fd/")
        # another process (buildx) reads it through /proc
        assert subprocess.run(["cat", src], capture_output=True, text=True, check=True).stdout == "TOKEN='s3cr3t'\n"
        assert list(tmp_path.iterdir()) == []


def test_without_memfd_the_secrets_file_is_private_exclusive_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "memfd_create")
    with build_phase.build_secret(tmp_path, "TOKEN='s3cr3t'\n") as src:
        path = Path(src)
        assert path.parent == tmp_path and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == "TOKEN='s3cr3t'\n"
    assert not path.exists()
