#!/usr/bin/env bash
# A small certificate authority for Latchkey's mutual TLS, with Debian's openssl.
#
#   scripts/pki.sh DIR init [TRUST_DOMAIN]          CA key + certificate (DIR/ca.key, DIR/ca.crt)
#   scripts/pki.sh DIR issue ROLE NAME [OPTIONS]     DIR/ROLE-NAME.{crt,key}, signed by DIR's CA
#       --days=N          validity (default 90; cert-manager-like)
#       --expired         valid yesterday only (for tests)
#       --dns=a,b --ip=x,y  extra SANs for clients that check the host name (default: localhost, 127.0.0.1, ::1)
#       --trust_domain=D  overrides the one DIR was initialised with
#   scripts/pki.sh DIR revoke ROLE NAME              adds DIR/ROLE-NAME.crt to DIR/crl/ (a CRL, hashed
#                                                    for --tls_crl_dir=DIR/crl, valid 365 days: revoke
#                                                    or re-run before then); peers refuse it from their
#                                                    next start
#
# ROLE is pbx, operator, worker or control; the identity is the URI SAN
# spiffe://TRUST_DOMAIN/latchkey/ROLE/NAME. For a worker, NAME is its --worker_id.
# Keys are ECDSA P-256 (cheap handshakes). Nothing here leaves DIR.
set -euo pipefail

die() { echo "pki.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: pki.sh DIR init [TRUST_DOMAIN] | pki.sh DIR issue ROLE NAME [--days=N] [--expired] [--dns=..] [--ip=..]"
dir=$1 cmd=$2
shift 2
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
mkdir -p "$dir"
umask 077

case "$cmd" in
  init)
    trust_domain=${1:-latchkey}
    [[ "$trust_domain" =~ ^[a-z0-9._-]+$ ]] || die "trust domain \"$trust_domain\": lowercase letters, digits, . _ - only"
    if [ -f "$dir/ca.key" ]; then echo "pki.sh: $dir already has a CA; keeping it" >&2; exit 0; fi
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/O=Latchkey/CN=Latchkey CA ($trust_domain)" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$dir/ca.crt" 2>/dev/null
    echo "$trust_domain" >"$dir/trust_domain"
    chmod 644 "$dir/ca.crt" "$dir/trust_domain"
    ;;
  issue)
    [ $# -ge 2 ] || die "issue needs ROLE NAME"
    role=$1 name=$2
    shift 2
    case "$role" in pbx | operator | worker | control) ;; *) die "role \"$role\": one of pbx, operator, worker, control" ;; esac
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,128}$ ]] || die "name \"$name\": 1-128 of letters, digits, . _ -"
    [ -f "$dir/ca.key" ] || die "$dir has no CA; run: pki.sh $dir init"
    days=90 expired=0 dns=localhost ips=127.0.0.1,::1
    trust_domain=$(cat "$dir/trust_domain" 2>/dev/null || echo latchkey)
    for arg in "$@"; do
      case "$arg" in
        --days=*) days=${arg#--days=} ;;
        --expired) expired=1 ;;
        --dns=*) dns=${arg#--dns=} ;;
        --ip=*) ips=${arg#--ip=} ;;
        --trust_domain=*) trust_domain=${arg#--trust_domain=} ;;
        *) die "unknown option $arg" ;;
      esac
    done
    san="URI:spiffe://$trust_domain/latchkey/$role/$name"
    IFS=, read -ra list <<<"$dns"
    for d in "${list[@]}"; do [ -n "$d" ] && san+=",DNS:$d"; done
    IFS=, read -ra list <<<"$ips"
    for i in "${list[@]}"; do [ -n "$i" ] && san+=",IP:$i"; done
    out="$dir/$role-$name"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key.sec1"
    openssl pkcs8 -topk8 -nocrypt -in "$tmp/key.sec1" -out "$tmp/key"
    openssl req -new -key "$tmp/key" -subj "/O=Latchkey/OU=$role/CN=$name" -out "$tmp/csr" 2>/dev/null
    cat >"$tmp/ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EXT
    if [ "$expired" = 1 ]; then
      # `openssl x509` cannot back-date; `openssl ca` can.
      mkdir -p "$tmp/db"
      : >"$tmp/db/index"
      cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca=lk
[lk]
database=$tmp/db/index
new_certs_dir=$tmp/db
serial=$tmp/db/serial
default_md=sha256
policy=any
copy_extensions=none
[any]
organizationName=optional
organizationalUnitName=optional
commonName=supplied
CNF
      openssl rand -hex 16 >"$tmp/db/serial"
      openssl ca -batch -config "$tmp/ca.cnf" -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -in "$tmp/csr" \
        -startdate "$(date -u -d '2 days ago' +%Y%m%d%H%M%SZ)" -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
        -extfile "$tmp/ext" -notext -out "$tmp/crt" 2>/dev/null
    else
      # A random serial, not a shared serial file: issuing in parallel is safe.
      openssl x509 -req -in "$tmp/csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" -sha256 \
        -days "$days" -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
    fi
    # Replace atomically: a file-watching server must never read half a pair.
    cp "$tmp/key" "$out.key.$$" && mv "$out.key.$$" "$out.key"
    cp "$tmp/crt" "$out.crt.$$" && chmod 644 "$out.crt.$$" && mv "$out.crt.$$" "$out.crt"
    echo "$out.crt ($san)"
    ;;
  revoke)
    [ $# -ge 2 ] || die "revoke needs ROLE NAME"
    cert="$dir/$1-$2.crt"
    [ -f "$cert" ] || die "no certificate $cert"
    [ -f "$dir/ca.key" ] || die "$dir has no CA"
    mkdir -p "$dir/crl" && chmod 755 "$dir/crl"
    [ -f "$dir/index.txt" ] || : >"$dir/index.txt"
    [ -f "$dir/crlnumber" ] || echo 1000 >"$dir/crlnumber"
    cat >"$dir/crl.cnf" <<CNF
[ca]
default_ca=lk
[lk]
database=$dir/index.txt
crlnumber=$dir/crlnumber
default_md=sha256
default_crl_days=365
CNF
    openssl ca -batch -config "$dir/crl.cnf" -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -revoke "$cert" 2>/dev/null ||
      die "cannot revoke $cert"
    openssl ca -batch -config "$dir/crl.cnf" -cert "$dir/ca.crt" -keyfile "$dir/ca.key" -gencrl \
      -out "$dir/crl/latchkey.crl.$$" 2>/dev/null
    mv "$dir/crl/latchkey.crl.$$" "$dir/crl/latchkey.crl"
    chmod 644 "$dir/crl/latchkey.crl"
    # OpenSSL looks CRLs up as HASH.r0; a regular file, not a symlink (a ConfigMap or Secret made
    # from this directory drops symlinks, and a missing CRL is not an error to gRPC: revocation would
    # silently stop).
    hash=$(openssl crl -hash -noout -in "$dir/crl/latchkey.crl")
    cp "$dir/crl/latchkey.crl" "$dir/crl/$hash.r0.$$" && chmod 644 "$dir/crl/$hash.r0.$$" && mv "$dir/crl/$hash.r0.$$" "$dir/crl/$hash.r0"
    echo "revoked $cert (serial $(openssl x509 -in "$cert" -noout -serial | cut -d= -f2)); CRL: $dir/crl"
    ;;
  *) die "unknown command $cmd" ;;
esac
