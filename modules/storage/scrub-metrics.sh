#!/usr/bin/env bash
# Usage: scrub-metrics.sh TEXTFILE_DIR POOL...
# Waits for running scrubs, then writes emily_zfs_scrub.prom (atomically) with, per
# pool, the completion time and the error count of the last scrub, read from
# `zpool status` ("scan: scrub repaired 0B in 01:02:03 with 0 errors on <date>").
set -euo pipefail
dir=$1
shift
tmp=$(mktemp "$dir/.emily_zfs_scrub.XXXXXX")
{
  echo "# HELP emily_zfs_scrub_errors Errors found by the last completed scrub."
  echo "# TYPE emily_zfs_scrub_errors gauge"
  echo "# HELP emily_zfs_scrub_last_completed_timestamp_seconds When this exporter saw the last scrub complete."
  echo "# TYPE emily_zfs_scrub_last_completed_timestamp_seconds gauge"
  for pool in "$@"; do
    zpool wait -t scrub "$pool"
    line=$(zpool status "$pool" | grep -E '^ *scan: scrub repaired' || true)
    if [ -n "$line" ]; then
      errors=$(sed -E 's/.* with ([0-9]+) errors.*/\1/' <<<"$line")
      echo "emily_zfs_scrub_errors{pool=\"$pool\"} $errors"
      echo "emily_zfs_scrub_last_completed_timestamp_seconds{pool=\"$pool\"} $(date +%s)"
    fi
  done
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$dir/emily_zfs_scrub.prom"
