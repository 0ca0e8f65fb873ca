#!/usr/bin/env bash
# Usage: metrics.sh TEXTFILE_DIR BACKUP_NAME SERVICE_RESULT
# Records a backup run for the node exporter's textfile collector:
#   emily_backup_last_run_success{backup}           1 if SERVICE_RESULT is "success", else 0
#   emily_backup_last_run_timestamp_seconds{backup} now
#   emily_backup_last_success_timestamp_seconds{backup}
#       now on success; otherwise the previous value is kept (absent if never).
# The file is replaced atomically, so Prometheus never reads half of it.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 TEXTFILE_DIR BACKUP_NAME SERVICE_RESULT" >&2
  exit 2
fi
dir=$1 name=$2 result=$3
case $name in *[!a-z0-9-]* | "")
  echo "backup name '$name' must match [a-z0-9-]+" >&2
  exit 2
  ;;
esac
file="$dir/emily_backup_$name.prom"
now=$(date +%s)
ok=0
[ "$result" = success ] && ok=1
last_ok=""
if [ "$ok" = 1 ]; then
  last_ok=$now
elif [ -f "$file" ]; then
  last_ok=$(sed -n -E 's/^emily_backup_last_success_timestamp_seconds\{[^}]*\} ([0-9]+)$/\1/p' "$file")
fi
tmp=$(mktemp "$dir/.emily_backup_$name.XXXXXX")
{
  echo "# HELP emily_backup_last_run_success Whether the last backup run succeeded (1) or failed (0)."
  echo "# TYPE emily_backup_last_run_success gauge"
  echo "emily_backup_last_run_success{backup=\"$name\"} $ok"
  echo "# HELP emily_backup_last_run_timestamp_seconds When the last backup run ended."
  echo "# TYPE emily_backup_last_run_timestamp_seconds gauge"
  echo "emily_backup_last_run_timestamp_seconds{backup=\"$name\"} $now"
  if [ -n "$last_ok" ]; then
    echo "# HELP emily_backup_last_success_timestamp_seconds When a backup run last succeeded."
    echo "# TYPE emily_backup_last_success_timestamp_seconds gauge"
    echo "emily_backup_last_success_timestamp_seconds{backup=\"$name\"} $last_ok"
  fi
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$file"
