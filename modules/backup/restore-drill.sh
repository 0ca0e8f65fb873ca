#!/usr/bin/env bash
# Restore drill: restore a restic snapshot into a scratch place, verify it, report RTO.
#
# Usage: restore-drill.sh (--scratch-dataset POOL/NAME | --scratch-dir DIR)
#                         [--snapshot ID] [--textfile-dir DIR] [--backup NAME]
# Needs RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE (and S3 credentials) in the env.
#
# Steps: create the scratch dataset (or use the directory), `restic restore --verify`
# (restic re-reads every restored file and checks it against the repository), then
# compare the number of files and bytes restored with `restic ls` of the snapshot.
# Prints one line `restore-drill ok snapshot=<id> files=<n> bytes=<n> rto_seconds=<s>`
# and, with --textfile-dir, writes emily_backup_restore_drill_* metrics. Exits non-zero
# (and records success 0) on any mismatch. The scratch dataset is destroyed afterwards.
set -euo pipefail

dataset="" dir="" snapshot=latest textfile="" backup=drill
while [ $# -gt 0 ]; do
  case $1 in
    --scratch-dataset) dataset=$2; shift 2 ;;
    --scratch-dir) dir=$2; shift 2 ;;
    --snapshot) snapshot=$2; shift 2 ;;
    --textfile-dir) textfile=$2; shift 2 ;;
    --backup) backup=$2; shift 2 ;;
    *) echo "restore-drill: unknown argument '$1'; see the usage at the top of $0" >&2; exit 2 ;;
  esac
done
if [ -z "$dataset" ] && [ -z "$dir" ]; then
  echo "restore-drill: give --scratch-dataset POOL/NAME or --scratch-dir DIR" >&2
  exit 2
fi
: "${RESTIC_REPOSITORY:?set RESTIC_REPOSITORY to the repository to drill}"
: "${RESTIC_PASSWORD_FILE:?set RESTIC_PASSWORD_FILE to the repository password file}"

record() { # success duration
  [ -n "$textfile" ] || return 0
  local tmp
  tmp=$(mktemp "$textfile/.emily_restore_drill.XXXXXX")
  {
    echo "# HELP emily_backup_restore_drill_success Whether the last restore drill verified (1) or not (0)."
    echo "# TYPE emily_backup_restore_drill_success gauge"
    echo "emily_backup_restore_drill_success{backup=\"$backup\"} $1"
    echo "# HELP emily_backup_restore_drill_rto_seconds Wall time of the last restore drill's restore."
    echo "# TYPE emily_backup_restore_drill_rto_seconds gauge"
    echo "emily_backup_restore_drill_rto_seconds{backup=\"$backup\"} $2"
    echo "# HELP emily_backup_restore_drill_timestamp_seconds When the last restore drill ran."
    echo "# TYPE emily_backup_restore_drill_timestamp_seconds gauge"
    echo "emily_backup_restore_drill_timestamp_seconds{backup=\"$backup\"} $(date +%s)"
  } >"$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$textfile/emily_restore_drill_$backup.prom"
}

fail() {
  echo "restore-drill FAILED: $*" >&2
  record 0 "${rto:-0}"
  exit 1
}

if [ -n "$dataset" ]; then
  zfs destroy -r "$dataset" 2>/dev/null || true
  zfs create -o mountpoint=none "$dataset"
  zfs set mountpoint="/run/restore-drill" "$dataset"
  target=/run/restore-drill
  trap 'zfs destroy -r "$dataset" || true' EXIT
else
  mkdir -p "$dir"
  if [ -n "$(ls -A "$dir")" ]; then
    echo "restore-drill: scratch dir $dir is not empty; give an empty one" >&2
    exit 2
  fi
  target=$dir
fi

id=$(restic snapshots --json "$snapshot" | sed -n -E 's/.*"short_id":"([0-9a-f]+)".*/\1/p' | tail -n 1)
[ -n "$id" ] || fail "no snapshot '$snapshot' in $RESTIC_REPOSITORY"

start=$(date +%s.%N)
restic restore "$id" --target "$target" --verify >/dev/null || fail "restic restore --verify of $id"
end=$(date +%s.%N)
rto=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')

# what the snapshot holds: regular files and their total size
want=$(restic ls --json "$id" | awk -F'"size":' '/"type":"file"/ { n++; split($2, s, /[,}]/); b += s[1] } END { printf "%d %d", n, b }')
got=$(find "$target" -type f -printf '%s\n' | awk '{ n++; b += $1 } END { printf "%d %d", n, b }')
[ "$want" = "$got" ] || fail "snapshot $id has files/bytes '$want' but '$got' were restored"

record 1 "$rto"
echo "restore-drill ok snapshot=$id files=${got% *} bytes=${got#* } rto_seconds=$rto"
