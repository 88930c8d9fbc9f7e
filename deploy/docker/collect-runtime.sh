#!/usr/bin/env bash
# Lays out BINARY... under ROOT/usr/local/bin with the shared libraries they load (ldd), for the
# image's runtime stage. Libraries debian:bookworm-slim already has (glibc, libstdc++, libgcc_s) are
# left out: the loader must match the libc it ships with.
#   collect-runtime.sh [--netraw=NAME] [--fastpath=NAME] ROOT BINARY...
# --netraw=NAME also lays out NAME-netraw, a copy of the collected binary NAME carrying the file
# capability cap_net_raw=ep, for a non-root container granted NET_RAW (deploy/k8s/components/
# raw-keepalive); --fastpath=NAME likewise NAME-fastpath with cap_bpf,cap_net_admin=ep,
# for one granted BPF and NET_ADMIN (deploy/k8s/components/fast-path). NAME itself stays
# without file capabilities: a binary with file capabilities does not execute at all in a container
# that drops one of them.
set -euo pipefail
netraw=
fastpath=
while [[ ${1:-} == --*=* ]]; do
  case $1 in
    --netraw=*) netraw=${1#--netraw=} ;;
    --fastpath=*) fastpath=${1#--fastpath=} ;;
    *) echo "collect-runtime: unknown option $1" >&2; exit 1 ;;
  esac
  shift
done
root=$1
shift
mkdir -p "$root/usr/local/bin"
for bin in "$@"; do
  if ldd "$bin" | grep 'not found' >&2; then
    echo "collect-runtime: $bin has unresolved libraries" >&2
    exit 1
  fi
  # Stripped: debug info (RelWithDebInfo) would be most of the image.
  install -m 0755 --strip "$bin" "$root/usr/local/bin/"
  # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)": soname and resolved path.
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r soname lib; do
    case "$soname" in
      libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
        libstdc++.so.* | libgcc_s.so.*) continue ;;
    esac
    # As the package lays it out: the real file under /usr (bookworm's /lib is a symlink to usr/lib)
    # and the soname as a symlink to it, so ldconfig in the runtime stage agrees.
    real=$(readlink -f "$lib")
    dir=$(dirname "$real")
    mkdir -p "$root$dir"
    cp "$real" "$root$real"
    [[ $(basename "$real") == "$soname" ]] || ln -sfn "$(basename "$real")" "$root$dir/$soname"
  done
done
# with_caps NAME SUFFIX CAPS: NAME-SUFFIX, a copy of the collected NAME with the file capability CAPS.
with_caps() {
  local src=$root/usr/local/bin/$1
  [[ -f $src ]] || { echo "collect-runtime: --$2=$1 is not among the binaries" >&2; exit 1; }
  # setcap comes with libcap2-bin (a dependency of iproute2, which scripts/install-deps.sh installs).
  command -v setcap >/dev/null || { echo "collect-runtime: setcap not found (apt-get install libcap2-bin)" >&2; exit 1; }
  install -m 0755 "$src" "$src-$2"
  setcap "$3" "$src-$2"
}
if [[ -n $netraw ]]; then with_caps "$netraw" netraw cap_net_raw=ep; fi
if [[ -n $fastpath ]]; then with_caps "$fastpath" fastpath cap_bpf,cap_net_admin=ep; fi
