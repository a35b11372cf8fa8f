#!/usr/bin/env bash
# The device tool sends the tracked tree only up to 64 MiB (about 175 MiB here). `stash` moves
# the tracked files that benchmarks/gpu_water_chains.sh does not read (datasets' .xz, reports'
# trajectories other than the main run and the chains, reports' .pt and .png) into one tar;
# `restore` puts them back. Run `stash`, the device call, then `restore` at once.
set -eu
STASH=${STASH:-/tmp/device-stash.tar}
KEEP=${KEEP:-783191aeda8159fc1ce7|teacher_chains/}  # the main run's key: see gpu_water_chains.sh
case ${1:-} in
  stash)
    if [ -e "$STASH" ]; then echo "$STASH exists: restore it first" >&2; exit 2; fi
    git ls-files | grep -E '\.(xz|traj)$|^reports/.*\.(pt|png)$' | grep -vE "$KEEP" > "$STASH.list"
    tar -cf "$STASH" -T "$STASH.list"
    xargs rm -f < "$STASH.list"
    echo "moved $(wc -l < "$STASH.list") files to $STASH";;
  restore)
    tar -xf "$STASH" && rm -f "$STASH" "$STASH.list" && echo "restored from $STASH";;
  *) echo "usage: $0 stash|restore" >&2; exit 2;;
esac
