# Installs Erlang/OTP (erlang-nox, erlang-dev, rebar3) on a Debian-family image, at least the
# major release given as $1: the one Zerops ships with the image's Gleam release.
#
# The distribution's own Erlang is taken when it is new enough. When it is older (Debian 12 and
# Ubuntu 24.04 ship OTP 25), Erlang comes from the next release of the same distribution, named
# by the OS:codename=suite pairs that follow $1 (runtimes.NEWER_ERLANG_SUITES), at the address the
# image's own apt sources use for its release: no other source is ever added. That suite is
# pinned at priority 100, so apt takes from it only what Erlang needs (a newer libc, for one).
# Anything else stops the build with a message naming the release found and what to do.
set -eu
need=$1
shift
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive

# The Erlang major release apt would install from the sources configured now ("" for none).
candidate() {
  apt-cache policy erlang-base | sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9]*\).*/\2/p'
}

# "URI COMPONENTS..." of the image's own apt entry for its release: deb822 files first
# (sources.list.d/*.sources, the format of Debian 12+ and Ubuntu 24.04+), then one-line entries.
own_source() {
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk -v suite="$VERSION_CODENAME" 'BEGIN { RS = "" }
      {
        uri = ""; components = ""; listed = 0
        n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          line = lines[i]
          if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); sub(/[ \t].*/, "", line); uri = line }
          else if (line ~ /^Suites:/) { sub(/^Suites:/, "", line); if ((" " line " ") ~ ("[ \t]" suite "[ \t]")) listed = 1 }
          else if (line ~ /^Components:/) { sub(/^Components:[ \t]*/, "", line); components = line }
        }
        if (listed && uri != "") { print uri " " components; exit }
      }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk -v suite="$VERSION_CODENAME" '$1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { line = $i; for (j = i + 2; j <= NF; j++) line = line " " $j; print line; exit }
      }' "$file"
  done
}

apt-get update
have=$(candidate)
target=""
if [ "${have:-0}" -lt "$need" ]; then
  newer=""
  for pair in "$@"; do
    case $pair in "$ID:${VERSION_CODENAME:-}="*) newer=${pair#*=} ;; esac
  done
  source=""
  if [ -n "${VERSION_CODENAME:-}" ]; then
    source=$(own_source | head -n 1)
  fi
  if [ -z "$newer" ] || [ -z "$source" ]; then
    if [ -z "$newer" ]; then
      why="cri-tasks knows no newer release of $ID ${VERSION_CODENAME:-} to take it from (it knows: $*)"
    else
      why="the image has no apt source for ${VERSION_CODENAME} to take $newer from"
    fi
    echo "cri-tasks: Gleam needs Erlang/OTP $need or newer; $PRETTY_NAME offers OTP ${have:-none} and $why: map the OS image (cri.images) to one that has Erlang/OTP $need or newer" >&2
    exit 1
  fi
  uri=${source%% *}
  components=${source#"$uri"}
  echo "deb $uri $newer${components:- main}" > /etc/apt/sources.list.d/cri-erlang.list
  printf 'Package: *\nPin: release n=%s\nPin-Priority: 100\n' "$newer" > /etc/apt/preferences.d/cri-erlang
  echo "cri-tasks: Erlang/OTP ${have:-none} is older than $need: taking Erlang from $ID $newer ($uri)"
  target=$newer
  apt-get update
fi
apt-get install -y --no-install-recommends ${target:+-t "$target"} erlang-nox erlang-dev rebar3
otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
if [ "$otp" -lt "$need" ]; then
  echo "cri-tasks: Erlang/OTP $otp installed, Gleam needs $need or newer" >&2
  exit 1
fi
echo "cri-tasks: Erlang/OTP $otp"
rm -rf /var/lib/apt/lists/*
