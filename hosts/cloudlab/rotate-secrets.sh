#!/usr/bin/env bash
# Rotate the sops secrets of this repository (docs/host.md "Secrets and their rotation").
#
#   rotate-secrets.sh host-recipient HOST          age recipient of HOST's SSH ed25519 key
#   rotate-secrets.sh set-recipient NAME AGE1...   replace the key anchored &NAME in
#                                                  .sops.yaml, then updatekeys every file
#   rotate-secrets.sh updatekeys [FILE...]         re-encrypt FILEs' data key to the
#                                                  recipients .sops.yaml now lists
#   rotate-secrets.sh rekey [FILE...]              new data key for FILEs (sops rotate)
#   rotate-secrets.sh set FILE a/b                 set secret a/b to the value on stdin
#   rotate-secrets.sh generate FILE a/b [BYTES]    set secret a/b to a new random value
#
# FILE defaults to secrets/cloudlab.yaml. Paths are relative to the repository root
# (EMILY_REPO_ROOT, default: two levels above this script). Decrypting needs an age
# identity: SOPS_AGE_KEY_FILE, or ~/.config/sops/age/keys.txt.
# After any change: commit, then `nixos-rebuild switch --flake .#cloudlab ...`;
# sops-nix restarts the units listed in each secret's restartUnits (modules/secrets.nix).
set -euo pipefail

root=${EMILY_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$root"
SOPS=${SOPS:-sops}
config=.sops.yaml

die() {
  echo "rotate-secrets: $*" >&2
  exit 2
}

files() {
  if [ $# -eq 0 ]; then echo secrets/cloudlab.yaml; else printf '%s\n' "$@"; fi
}

# a/b/c -> ["a"]["b"]["c"] (sops index syntax)
index() {
  local out="" part
  IFS=/ read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    [[ $part =~ ^[A-Za-z0-9_.-]+$ ]] || die "secret name part '$part' must match [A-Za-z0-9_.-]+"
    out+="[\"$part\"]"
  done
  echo "$out"
}

cmd=${1:-}
[ -n "$cmd" ] || die "give a command; see the usage at the top of $0"
shift
case $cmd in
  host-recipient)
    [ $# -eq 1 ] || die "usage: host-recipient HOST"
    command -v ssh-to-age >/dev/null || die "ssh-to-age is missing (nix shell nixpkgs#ssh-to-age)"
    ssh-keyscan -t ed25519 "$1" 2>/dev/null | ssh-to-age
    ;;
  set-recipient)
    [ $# -eq 2 ] || die "usage: set-recipient NAME AGE_RECIPIENT"
    [[ $2 =~ ^age1[0-9a-z]{58}$ ]] || die "'$2' is not an age recipient (age1 + 58 characters)"
    grep -qE "^  - &$1 age1[0-9a-z]+$" "$config" || die "no key anchored &$1 in $config"
    sed -i -E "s|^(  - &$1 )age1[0-9a-z]+$|\1$2|" "$config"
    for f in secrets/*.yaml; do
      "$SOPS" --config "$config" updatekeys -y "$f"
    done
    ;;
  updatekeys)
    while read -r f; do
      "$SOPS" --config "$config" updatekeys -y "$f"
    done < <(files "$@")
    ;;
  rekey)
    while read -r f; do
      "$SOPS" --config "$config" rotate -i "$f"
    done < <(files "$@")
    ;;
  set)
    [ $# -eq 2 ] || die "usage: set FILE a/b  (value on stdin)"
    idx=$(index "$2")
    value=$(cat)
    [ -n "$value" ] || die "empty value on stdin; refusing to blank $2"
    # JSON-encode the value for sops (escape backslash and quote; no newlines allowed)
    [[ $value != *$'\n'* ]] || die "multi-line values are not supported by set"
    json=${value//\\/\\\\}
    json=\"${json//\"/\\\"}\"
    printf '%s' "$json" | "$SOPS" --config "$config" set --value-stdin "$1" "$idx"
    ;;
  generate)
    [ $# -ge 2 ] || die "usage: generate FILE a/b [BYTES]"
    bytes=${3:-32}
    head -c "$bytes" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | "$0" set "$1" "$2"
    ;;
  *)
    die "unknown command '$cmd'; see the usage at the top of $0"
    ;;
esac
