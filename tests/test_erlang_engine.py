"""templates/erlang.sh on the real engine: where a Debian-family image takes a newer Erlang/OTP
from. The full install runs in every runtime build of the engine tests (Debian 12 takes OTP 27
from Debian 13); these check the two other ways it can go, in seconds: an image without apt
sources is refused with a message naming what it found, and the newer release is read at the
address of the image's own deb822 entry, with its components."""

from __future__ import annotations

import subprocess

import pytest
from conftest import BASE_IMAGE

pytestmark = pytest.mark.engine


def _script(*args: str, prelude: str) -> subprocess.CompletedProcess[str]:
    from cri_tasks.dockerfile import read_file

    command = f'{prelude}\nsh -c "$0" cri-erlang "$@"; echo "status=$?"; cat /etc/apt/sources.list.d/cri-erlang.list 2>/dev/null || true'
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", BASE_IMAGE, "sh", "-c", command, read_file("erlang.sh"), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_an_image_without_apt_sources_is_refused_naming_what_it_found() -> None:
    proc = _script("26", "debian:bookworm=trixie", prelude="rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*")
    assert "status=1" in proc.stdout, proc
    assert "Gleam needs Erlang/OTP 26 or newer" in proc.stderr
    assert "Debian GNU/Linux 12 (bookworm) offers OTP none" in proc.stderr
    assert "has no apt source for bookworm to take trixie from" in proc.stderr
    assert "map the OS image (cri.images)" in proc.stderr


def test_a_release_it_knows_no_newer_one_for_is_refused() -> None:
    proc = _script("26", "ubuntu:noble=resolute", prelude="rm -f /etc/apt/sources.list.d/*")
    assert "status=1" in proc.stdout, proc
    assert "knows no newer release of debian bookworm" in proc.stderr and "ubuntu:noble=resolute" in proc.stderr


def test_the_newer_release_comes_from_the_images_own_deb822_entry() -> None:
    # the image's one-line entry rewritten as a deb822 file with two components and a
    # security entry first, whose suite is not the release's; the one-line file is gone
    prelude = (
        "set -e; uri=$(awk '$1 == \"deb\" {print $2; exit}' /etc/apt/sources.list); rm /etc/apt/sources.list; "
        "printf 'Types: deb\\nURIs: %s-security\\nSuites: bookworm-security\\nComponents: main\\n\\n"
        "Types: deb\\nURIs: %s\\nSuites: bookworm bookworm-updates\\nComponents: main contrib\\n' "
        '"$uri" "$uri" > /etc/apt/sources.list.d/debian.sources; echo "uri=$uri"; set +e'
    )
    # no network: apt-get update fails after the entry is written, which is all this checks
    proc = _script("26", "debian:bookworm=cri-newer", prelude=prelude)
    uri = next(line[4:] for line in proc.stdout.splitlines() if line.startswith("uri="))
    assert uri.startswith("http"), proc
    assert f"taking Erlang from debian cri-newer ({uri})" in proc.stdout, proc
    assert f"deb {uri} cri-newer main contrib\n" in proc.stdout, proc
