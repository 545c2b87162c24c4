#!/bin/sh
# zsc as cri-tasks provides it (Zerops' setup control, the subcommands that can work on a local
# engine; the others say so and exit 2):
#   zsc exec-once|execOnce [-r] [-v] KEY -- CMD...  CMD once per KEY for the life of the service
#                                                   (a volume per setup that outlives deploys)
#   zsc noop [-s|--silent]                          idle until stopped
#   zsc install|add TECH@VERSION                    gleam (the image's Gleam source), nodejs,
#                                                   python (the OS packages): that version or exit 1
#   zsc test tcp HOST:PORT [--timeout 30s]          wait until HOST:PORT accepts connections
#   zsc env-replace SOURCE TARGET [-s]              {{.NAME}} placeholders from the environment
#   zsc version | help
set -u
ONCE_DIR=${ZSC_ONCE_DIR:-/var/lib/zsc}
# @cri-config@
CRI_GLEAM_ALIASES=${CRI_GLEAM_ALIASES:-}
CRI_GLEAM_URL=${CRI_GLEAM_URL:-}
cmd=${1-}
[ $# -gt 0 ] && shift

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -E "$@"; fi; }

# seconds of a Go-style duration (30s, 1m, 2m30s is not needed by recipes: s, m, h, or a number)
seconds() {
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;; *m) echo $(( ${1%m} * 60 )) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}

# 1.5 matches 1.5.1; "latest" matches anything
version_fits() {
  [ "$1" = latest ] || [ "$2" = "$1" ] || case "$2" in "$1".*) true ;; *) false ;; esac
}

install_gleam() {
  want=$1
  for pair in $CRI_GLEAM_ALIASES; do
    [ "${pair%%=*}" = "$want" ] && want=${pair#*=}
  done
  have=$(gleam --version 2>/dev/null | awk '{print $2}')
  if [ -n "$have" ] && version_fits "$1" "$have"; then
    echo "zsc install gleam@$1: gleam $have is installed"
    return 0
  fi
  if [ -n "$CRI_GLEAM_URL" ] && [ "$want" != latest ]; then
    url=$(printf '%s' "$CRI_GLEAM_URL" | sed "s/{version}/$want/g")
    echo "zsc install gleam@$1: fetching gleam $want ($url)"
    tmp=$(mktemp -d)
    if curl -fsSL --retry 2 -o "$tmp/gleam.tar.gz" "$url" && tar -xzf "$tmp/gleam.tar.gz" -C "$tmp" gleam \
        && as_root install -m 0755 "$tmp/gleam" /usr/local/bin/gleam; then
      rm -rf "$tmp"
      have=$(gleam --version 2>/dev/null | awk '{print $2}')
      version_fits "$1" "$have" && { echo "zsc install gleam@$1: gleam $have installed"; return 0; }
      echo "zsc install gleam@$1: the release installed gleam ${have:-(nothing)}, not $1" >&2
      return 1
    fi
    rm -rf "$tmp"
    echo "zsc install gleam@$1: could not fetch $url" >&2
    return 1
  fi
  echo "zsc install gleam@$1: this image has gleam ${have:-(none)} from cri.gleam.source and cri-tasks cannot fetch another release here; use base: gleam@$1 (or set cri.gleam.source)" >&2
  return 1
}

# The version the OS packages would install for package $1 ("" for none), after refreshing the
# package index: upstream version only (18.19.0+dfsg-6 -> 18.19.0).
package_candidate() {
  if command -v apt-get >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null 2>&1 || return 0
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9][^-+~ ]*\).*/\2/p' | head -n1
  elif command -v apk >/dev/null 2>&1; then
    as_root apk update -q >/dev/null 2>&1 || return 0
    apk search -x "$1" 2>/dev/null | sed -n "s/^$1-\([0-9][^-]*\)-r[0-9]*\$/\1/p" | head -n1
  fi
}

# a technology from the OS packages, checked to be the version asked for: before installing
# anything (a version the packages do not have fails at once and leaves the image as it was),
# and after
install_package() {
  tech=$1 want=$2 probe=$3
  shift 3
  have=$($probe 2>/dev/null | head -n1 | sed 's/^[^0-9]*//')
  if [ -z "$have" ] || ! version_fits "$want" "$have"; then
    offered=$(package_candidate "$1")
    if [ -z "$offered" ] || ! version_fits "$want" "$offered"; then
      echo "zsc install $tech@$want: the OS packages give $tech ${offered:-(nothing)}, not $want; cri-tasks cannot install that version here" >&2
      return 1
    fi
    echo "zsc install $tech@$want: installing $tech $offered from the OS packages ($*)"
    if command -v apt-get >/dev/null 2>&1; then
      errors=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" 2>&1 >/dev/null)
    else
      errors=$(as_root apk add --no-cache "$@" 2>&1 >/dev/null)
    fi || { echo "zsc install $tech@$want: the OS package manager failed: $(printf '%s' "$errors" | tail -n 3)" >&2; return 1; }
    have=$($probe 2>/dev/null | head -n1 | sed 's/^[^0-9]*//')
  fi
  if [ -n "$have" ] && version_fits "$want" "$have"; then
    echo "zsc install $tech@$want: $tech $have is installed"
    return 0
  fi
  echo "zsc install $tech@$want: the OS packages give $tech ${have:-(nothing)}, not $want; cri-tasks cannot install that version here" >&2
  return 1
}

case "$cmd" in
  noop)
    case "${1-}" in -s|--silent) ;; *) echo "zsc noop: idling" ;; esac
    trap 'exit 0' TERM INT
    while :; do sleep 3600 & wait $!; done
    ;;
  execOnce|exec-once)
    # zsc exec-once [flags] KEY [flags] -- CMD...: once per KEY for the life of the service.
    # The store ($ONCE_DIR) is one volume per setup that outlives deploys and rollbacks, so a
    # fixed key runs once, ever; ${appVersionId} keys once per version. A success is final; a
    # failure is reported to the containers waiting for that run, and the next call runs it again.
    key="" retry=0 verbose=0
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
      case "$1" in
        -r|--retryUntilSuccessful) retry=1 ;;
        -v|--verbose) verbose=1 ;;
        -rv|-vr) retry=1; verbose=1 ;;
        -h|--help) echo "usage: zsc exec-once [-r|--retryUntilSuccessful] [-v|--verbose] KEY -- CMD..."; exit 0 ;;
        -*) echo "zsc exec-once: unknown flag $1" >&2; exit 2 ;;
        *) [ -z "$key" ] || { echo "zsc exec-once: one KEY expected, got $key and $1 (is -- missing?)" >&2; exit 2; }
           key=$1 ;;
      esac
      shift
    done
    [ -n "$key" ] || { echo "zsc exec-once: missing KEY" >&2; exit 2; }
    [ "${1-}" = "--" ] || { echo "zsc exec-once $key: expected -- before the command" >&2; exit 2; }
    shift
    [ $# -gt 0 ] || { echo "zsc exec-once $key: no command after --" >&2; exit 2; }
    say() { [ "$verbose" -eq 0 ] || echo "zsc exec-once $key: $*"; }
    # a name per key that no two keys share (a readable prefix plus a hash of the whole key)
    id=$(printf '%s' "$key" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-40)-$(printf '%s' "$key" | sha256sum | cut -c1-16)
    base=$ONCE_DIR/$id
    beat_age() {
      echo $(( $(date +%s) - $(stat -c %Y "$base.lock/beat" 2>/dev/null || stat -c %Y "$base.lock" 2>/dev/null || date +%s) ))
    }
    waited=0
    while :; do
      if [ -f "$base.done" ]; then
        echo "zsc exec-once $key: already run successfully; skipping"
        exit 0
      fi
      if [ "$waited" -eq 1 ] && [ -f "$base.failed" ] && [ ! -d "$base.lock" ]; then
        rc=$(cat "$base.failed")
        echo "zsc exec-once $key: failed in another container (exit code $rc)" >&2
        exit "$rc"
      fi
      if mkdir "$base.lock" 2>/dev/null; then
        break
      fi
      # another container runs it: wait for its result; a holder whose heartbeat stopped
      # (its container was killed) no longer holds the key
      if [ "$(beat_age)" -gt 30 ] && [ -d "$base.lock" ]; then
        say "the container that held the key stopped; taking it over"
        rm -rf "$base.lock"
        continue
      fi
      [ "$waited" -eq 1 ] || say "run by another container; waiting for its result"
      waited=1
      sleep 0.5
    done
    rm -f "$base.failed"
    ( while :; do touch "$base.lock/beat"; sleep 5; done ) &
    beat=$!
    trap 'kill "$beat" 2>/dev/null; rm -rf "$base.lock"; exit 143' TERM INT
    touch "$base.lock/beat"
    say "running: $*"
    while :; do
      "$@"
      rc=$?
      [ "$rc" -eq 0 ] || [ "$retry" -eq 0 ] && break
      echo "zsc exec-once $key: exit code $rc, retrying in 2 s" >&2
      sleep 2
    done
    kill "$beat" 2>/dev/null
    if [ "$rc" -eq 0 ]; then
      date -u +%Y-%m-%dT%H:%M:%SZ > "$base.tmp" && mv "$base.tmp" "$base.done"
    else
      echo "$rc" > "$base.tmp" && mv "$base.tmp" "$base.failed"
    fi
    rm -rf "$base.lock"
    exit "$rc"
    ;;
  add|install)
    [ $# -ge 1 ] || { echo "zsc $cmd: missing TECH@VERSION" >&2; exit 2; }
    spec=$1
    case "$spec" in */*) spec=${spec#*/} ;; esac  # ubuntu/gleam@1.5: the OS is the image's
    tech=${spec%%@*}
    want=latest
    case "$spec" in *@*) want=${spec#*@} ;; esac
    case "$tech" in
      gleam) install_gleam "$want" ;;
      nodejs) install_package nodejs "$want" "node --version" nodejs npm ;;
      python) install_package python "$want" "python3 --version" python3 ;;
      *) echo "zsc $cmd $1: cri-tasks cannot install $tech (it installs gleam, nodejs and python); add it with run.prepareCommands and the OS package manager" >&2
         exit 2 ;;
    esac
    ;;
  test)
    [ "${1-}" = tcp ] || { echo "zsc test: only 'zsc test tcp HOST:PORT' exists" >&2; exit 2; }
    shift
    target="" limit=30 dial=2
    while [ $# -gt 0 ]; do
      case "$1" in
        --timeout) limit=$(seconds "$2"); shift ;;
        --timeout=*) limit=$(seconds "${1#*=}") ;;
        --dialTimeout) dial=$(seconds "$2"); shift ;;
        --dialTimeout=*) dial=$(seconds "${1#*=}") ;;
        -4|-6) ;;
        -*) echo "zsc test tcp: unknown flag $1" >&2; exit 2 ;;
        *) target=$1 ;;
      esac
      shift
    done
    host=${target%:*} port=${target##*:}
    [ -n "$host" ] && [ -n "$port" ] && [ "$host" != "$target" ] || { echo "zsc test tcp: expected HOST:PORT" >&2; exit 2; }
    end=$(( $(date +%s) + limit ))
    while :; do
      if command -v bash >/dev/null 2>&1; then
        timeout "$dial" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null && break
      else
        timeout "$dial" nc -z "$host" "$port" 2>/dev/null && break
      fi
      [ "$(date +%s)" -lt "$end" ] || { echo "zsc test tcp $target: no connection within ${limit} s" >&2; exit 1; }
      sleep 1
    done
    echo "zsc test tcp $target: ok"
    ;;
  env-replace|envReplace)
    silent=0 src="" dst=""
    for a in "$@"; do
      case "$a" in -s|--silent) silent=1 ;; -*) echo "zsc env-replace: unknown flag $a" >&2; exit 2 ;;
        *) if [ -z "$src" ]; then src=$a; elif [ -z "$dst" ]; then dst=$a; else echo "zsc env-replace: SOURCE TARGET expected" >&2; exit 2; fi ;;
      esac
    done
    [ -n "$src" ] && [ -n "$dst" ] || { echo "zsc env-replace: SOURCE TARGET expected" >&2; exit 2; }
    [ -e "$src" ] || { echo "zsc env-replace: $src does not exist" >&2; exit 1; }
    render() {  # $1 template, $2 output: {{.NAME}} / {{ .NAME }} from the environment
      if grep -q '{{ *[^. ]' "$1"; then
        echo "zsc env-replace: $1 uses template actions beyond {{.NAME}}, which cri-tasks does not render" >&2
        return 1
      fi
      out=$2 mode=""
      case "$out" in *.[0-7][0-7][0-7][0-7]) mode=${out##*.}; out=${out%.*} ;; esac
      mkdir -p "$(dirname "$out")" || return 1
      awk '{
        line = $0; res = ""
        while (match(line, /\{\{ *\.[A-Za-z_][A-Za-z0-9_]* *\}\}/)) {
          tok = substr(line, RSTART, RLENGTH); name = tok
          gsub(/[{} .]/, "", name)
          res = res substr(line, 1, RSTART - 1) ENVIRON[name]
          line = substr(line, RSTART + RLENGTH)
        }
        print res line
      }' "$1" > "$out" || return 1
      [ -z "$mode" ] || chmod "$mode" "$out"
      [ "$silent" -eq 1 ] || echo "zsc env-replace: $1 -> $out"
    }
    if [ -d "$src" ]; then
      case "$(cd "$dst" 2>/dev/null && pwd)/" in "$(cd "$src" && pwd)"/*) echo "zsc env-replace: the target is inside the source" >&2; exit 2 ;; esac
      (cd "$src" && find . -type f) | while IFS= read -r f; do
        render "$src/${f#./}" "$dst/${f#./}" || exit 1
      done || exit 1
    else
      [ -d "$dst" ] && dst=$dst/$(basename "$src")
      render "$src" "$dst" || exit 1
    fi
    ;;
  version)
    echo "zsc (cri-tasks local subset)"
    ;;
  ""|help|-h|--help)
    sed -n '2,13p' "$0"
    ;;
  *)
    echo "zsc $cmd: not available on a local engine (cri-tasks provides exec-once, noop, install/add, test tcp, env-replace, version)" >&2
    exit 2
    ;;
esac
