#!/usr/bin/env bash
# Certificates of the Zenoh bus: one CA, one certificate per router and per service,
# for TLS with mutual authentication (docs/host.md "Bus certificates").
#
#   bus-certs.sh ca DIR                     a new CA in DIR (ca.crt, ca.key)
#   bus-certs.sh issue DIR NAME [SAN...]    DIR/NAME.{crt,key}, signed by DIR/ca.*;
#                                           subject CN=NAME, SANs such as
#                                           IP:10.99.0.1 or DNS:cloudlab
#   bus-certs.sh sops FILE NODE=SANS...     a new CA and every certificate, written
#                                           into the sops FILE (default
#                                           secrets/cloudlab.yaml) under zenoh/;
#                                           SANS of each node's router: IP:a,DNS:b
#                                           (IP:127.0.0.1 is always added)
#
# `sops` is also the rotation: it replaces the CA and every certificate at once, so old
# and new never have to trust each other. Commit, then deploy every host; sops-nix
# restarts zenohd and the services (their restartUnits), which reconnect with the new
# certificates. The CA's private key stays in FILE for `issue`, and is never deployed.
#
# Names: each router's certificate is CN=router (the zenohd access control treats every
# router of the mesh alike) with its node's addresses as SANs; each service's is
# CN=<service> (memory, inference, perception, cognition) and the command-line client's CN=cli.
# Keys are ECDSA P-256. DAYS (default 397) and CA_DAYS (default 1825) set the validity.
set -euo pipefail

root=${EMILY_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SOPS=${SOPS:-sops}
OPENSSL=${OPENSSL:-openssl}
DAYS=${DAYS:-397}
CA_DAYS=${CA_DAYS:-1825}
SERVICES=(memory inference perception cognition cli)

die() {
  echo "bus-certs: $*" >&2
  exit 2
}

new_ca() {
  local dir=$1
  mkdir -p "$dir"
  [ ! -e "$dir/ca.key" ] || die "$dir/ca.key exists; refusing to replace a CA"
  (umask 077 && "$OPENSSL" ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key")
  "$OPENSSL" req -x509 -new -key "$dir/ca.key" -sha256 -days "$CA_DAYS" \
    -subj "/CN=emily bus CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt" 2>/dev/null
}

issue() {
  local dir=$1 name=$2 san
  shift 2
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "certificate name '$name' must match [A-Za-z0-9_.-]+"
  if [ ! -r "$dir/ca.key" ] || [ ! -r "$dir/ca.crt" ]; then
    die "no CA in $dir (run: $0 ca $dir)"
  fi
  san="DNS:$name"
  for s in "$@"; do
    [[ $s =~ ^(IP|DNS):[A-Za-z0-9_.:-]+$ ]] || die "SAN '$s' must be IP:<address> or DNS:<name>"
    san+=",$s"
  done
  (umask 077 && "$OPENSSL" ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key")
  local ext
  ext=$(mktemp)
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=$san" >"$ext"
  "$OPENSSL" req -new -key "$dir/$name.key" -subj "/CN=$name" 2>/dev/null |
    "$OPENSSL" x509 -req -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days "$DAYS" -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext" "$dir/ca.srl"
}

# sops set FILE '["a"]["b"]' with a multi-line PEM as a JSON string
put() {
  local file=$1 index=$2 pem=$3
  python3 -c 'import json,sys; sys.stdout.write(json.dumps(open(sys.argv[1]).read()))' "$pem" |
    "$SOPS" --config "$root/.sops.yaml" set --value-stdin "$file" "$index"
}

cmd=${1:-}
[ -n "$cmd" ] || die "give a command; see the usage at the top of $0"
shift
case $cmd in
  ca)
    [ $# -eq 1 ] || die "usage: ca DIR"
    new_ca "$1"
    ;;
  issue)
    [ $# -ge 2 ] || die "usage: issue DIR NAME [SAN...]"
    issue "$@"
    ;;
  sops)
    [ $# -ge 2 ] || die "usage: sops FILE NODE=SANS... (e.g. cloudlab=IP:127.0.0.1,IP:10.20.0.1)"
    file=$1
    shift
    cd "$root"
    [ -f "$file" ] || die "$file is not a file"
    # every node spec is checked before anything is written
    for spec in "$@"; do
      [[ $spec =~ ^([A-Za-z0-9_.-]+)=(.*)$ ]] || die "'$spec' is not NODE=SAN,SAN..."
    done
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    new_ca "$work"
    put "$file" '["zenoh"]["ca-certificate"]' "$work/ca.crt"
    put "$file" '["zenoh"]["ca-private-key"]' "$work/ca.key"
    for spec in "$@"; do
      [[ $spec =~ ^([A-Za-z0-9_.-]+)=(.*)$ ]] || die "'$spec' is not NODE=SAN,SAN..."
      node=${BASH_REMATCH[1]}
      IFS=, read -r -a given <<<"${BASH_REMATCH[2]}"
      # the services reach their router at 127.0.0.1 and check its name there
      sans=(IP:127.0.0.1)
      for s in "${given[@]}"; do
        [ "$s" = IP:127.0.0.1 ] || sans+=("$s")
      done
      mkdir -p "$work/$node"
      cp "$work/ca.crt" "$work/ca.key" "$work/$node/"
      issue "$work/$node" router "DNS:$node" "${sans[@]}"
      put "$file" "[\"zenoh\"][\"router-$node\"][\"certificate\"]" "$work/$node/router.crt"
      put "$file" "[\"zenoh\"][\"router-$node\"][\"private-key\"]" "$work/$node/router.key"
    done
    for service in "${SERVICES[@]}"; do
      issue "$work" "$service"
      put "$file" "[\"zenoh\"][\"$service\"][\"certificate\"]" "$work/$service.crt"
      put "$file" "[\"zenoh\"][\"$service\"][\"private-key\"]" "$work/$service.key"
    done
    ;;
  *)
    die "unknown command '$cmd'; see the usage at the top of $0"
    ;;
esac
