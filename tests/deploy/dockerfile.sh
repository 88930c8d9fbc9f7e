#!/usr/bin/env bash
# deploy/Dockerfile without a container engine: its build stage is the install script CI runs, its
# runtime stage is non-root with OCI labels and carries every binary the manifests run; and the
# script that collects binaries and libraries for that stage, run on the binaries built here, yields
# a tree on which they start (in a chroot, as root) with only the base image's glibc and libstdc++.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
source "$here/render.sh"
dockerfile=$repo/deploy/Dockerfile

# Stages: "FROM debian:bookworm-slim AS build", then the runtime FROM.
mapfile -t froms < <(grep -E '^FROM ' "$dockerfile")
((${#froms[@]} == 2)) || fail "want two stages, got: ${froms[*]}"
[[ ${froms[0]} =~ ^FROM\ debian:bookworm-slim\ AS\ build$ ]] || fail "build stage: ${froms[0]}"
[[ ${froms[1]} == "FROM debian:bookworm-slim" ]] || fail "runtime stage: ${froms[1]}"
build_stage=$(sed -n '/^FROM .* AS build/,/^FROM debian:bookworm-slim$/p' "$dockerfile")
runtime_stage=$(sed -n '/^FROM debian:bookworm-slim$/,$p' "$dockerfile")

# The one dependency list: the build stage runs scripts/install-deps.sh, as CI does
# (scripts/test.sh -> scripts/build.sh -> scripts/install-deps.sh).
grep -Eq '^RUN scripts/install-deps.sh' <<<"$build_stage" || fail "build stage must RUN scripts/install-deps.sh"
grep -q 'scripts/install-deps.sh' "$repo/scripts/build.sh" || fail "CI's scripts/build.sh no longer runs install-deps.sh"
! grep -Eq 'apt-get|install-deps' <<<"$runtime_stage" || fail "the runtime stage must install nothing"

# Non-root, by number (Kubernetes' runAsNonRoot can only check a numeric USER), and the uid the pods use.
user=$(grep -E '^USER ' <<<"$runtime_stage" | tail -1 | awk '{print $2}')
[[ $user =~ ^([0-9]+)(:[0-9]+)?$ ]] && ((BASH_REMATCH[1] != 0)) || fail "runtime USER must be a non-zero uid, got '$user'"
grep -q "runAsUser: ${user%%:*}" "$repo/deploy/k8s/base/control-deployment.yaml" || fail "pods run as another uid than the image's USER $user"
for label in title description version revision; do
  grep -q "org.opencontainers.image.$label=" <<<"$runtime_stage" || fail "OCI label org.opencontainers.image.$label missing"
done

# Every binary a pod runs (command, args, preStop) is built, collected and shipped.
render "$scratch/single.yaml" "$k8s/overlays/single"
render "$scratch/ha.yaml" "$k8s/overlays/ha"
mapfile -t binaries < <(node "$here/validate.js" binaries "$scratch/single.yaml" "$scratch/ha.yaml")
((${#binaries[@]} >= 3)) || fail "manifests reference only: ${binaries[*]}"
for path in "${binaries[@]}"; do
  name=$(basename "$path")
  [[ $path == /usr/local/bin/$name ]] || fail "$path: binaries live in /usr/local/bin"
  grep -Eq -- "--target( [a-z-]+)* $name( |$)" <<<"$build_stage" || fail "the build stage does not build $name"
  grep -Eq "build/.*/$name( |$)" <<<"$build_stage" || fail "the build stage does not collect $name"
  echo "shipped: $path"
done
grep -q 'COPY --from=build /rootfs/ /' <<<"$runtime_stage" || fail "the runtime stage must copy the collected tree"

# The collection script on this build's binaries.
root=$scratch/rootfs
"$repo/deploy/docker/collect-runtime.sh" "$root" "$LATCHKEY_CONTROL_BIN" "$LATCHKEY_RELAY_BIN" "$LATCHKEY_CTL_BIN"
for path in "${binaries[@]}"; do [[ -x $root$path ]] || fail "collect-runtime.sh did not place $path"; done
if (($(id -u) != 0)); then
  echo "not root: the chroot start of the collected binaries is skipped"
  exit 0
fi
# Sanitizer builds (the asan preset) need /proc, which the bare tree lacks; the image uses release
# binaries anyway.
if ldd "$LATCHKEY_RELAY_BIN" | grep 'libasan' >/dev/null; then  # grep -q may SIGPIPE ldd (pipefail)
  echo "sanitizer build: the chroot start of the collected binaries is skipped"
  exit 0
fi
# Add what debian:bookworm-slim provides (glibc, libstdc++, libgcc_s and the loader), then start
# each binary inside the tree.
for bin in "$LATCHKEY_CONTROL_BIN" "$LATCHKEY_RELAY_BIN" "$LATCHKEY_CTL_BIN"; do
  ldd "$bin" | grep -oE '/[^ ]*(libc|libm|libpthread|libdl|librt|libresolv|libstdc\+\+|libgcc_s|ld-linux[^ ]*)\.so[^ ]*' |
    while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
done
for path in /usr/local/bin/latchkey-control /usr/local/bin/latchkey-relay; do
  chroot "$root" "$path" --version >"$scratch/version.out" 2>&1 || fail "$path does not start from the collected tree: $(cat "$scratch/version.out")"
  grep -q "$(basename "$path")" "$scratch/version.out" || fail "$path --version: $(cat "$scratch/version.out")"
done
chroot "$root" /usr/local/bin/latchkeyctl --help >"$scratch/help.out" 2>&1 || fail "latchkeyctl does not start from the collected tree: $(cat "$scratch/help.out")"
echo "the collected tree ($(du -sh "$root" | cut -f1)) runs all three binaries"
