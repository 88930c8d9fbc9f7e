#!/usr/bin/env bash
# Lays out BINARY... under ROOT/usr/local/bin with the shared libraries they load (ldd), for the
# image's runtime stage. Libraries debian:bookworm-slim already has (glibc, libstdc++, libgcc_s) are
# left out: the loader must match the libc it ships with.
#   collect-runtime.sh ROOT BINARY...
set -euo pipefail
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
