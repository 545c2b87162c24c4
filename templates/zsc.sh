#!/bin/sh
# zsc as cri-tasks provides it: the subset of Zerops' setup control that official recipes use.
#   zsc execOnce [-r] [-v] KEY -- CMD...   run CMD once per KEY for the life of the service
#                                           (a volume per setup that outlives deploys)
#   zsc noop [--silent]                                    idle until stopped
#   zsc add TOOL@VERSION                                   toolchains are part of the image: no-op
set -u
ONCE_DIR=${ZSC_ONCE_DIR:-/var/lib/zsc}
cmd=${1-}
[ $# -gt 0 ] && shift
case "$cmd" in
  noop)
    [ "${1-}" = "--silent" ] || echo "zsc noop: idling"
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
  add)
    echo "zsc add ${1-}: toolchains are part of the cri-tasks runtime image; nothing to do"
    ;;
  *)
    echo "zsc $cmd: not supported by cri-tasks (supported: execOnce, noop, add)" >&2
    exit 2
    ;;
esac
