#!/usr/bin/env bash
# deploy/Dockerfile (and deploy/Dockerfile.redis, below) without a container engine: its build stage
# is the install script CI runs, its runtime stage is non-root with OCI labels and carries every
# binary the manifests run; and the script that collects binaries and libraries for that stage, run
# on the binaries built here, yields a tree on which they start (in a chroot, as root) with only the
# base image's glibc and libstdc++.
# The relay's NET_RAW copy carries cap_net_raw=ep, its fast-path copy cap_bpf,
# cap_net_admin=ep, and nothing else carries any; run under the relay's securityContext of each
# overlay (setpriv: that uid, no_new_privs, the bounding set the capabilities leave), the
# raw-keepalive component's relay opens its raw sockets, the fast-path component's attaches its
# program (in a network namespace of its own), base's runs without either, and neither copy executes
# at all without its capabilities.
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
if ! [[ $user =~ ^([0-9]+)(:[0-9]+)?$ ]] || ((BASH_REMATCH[1] == 0)); then fail "runtime USER must be a non-zero uid, got '$user'"; fi
grep -q "runAsUser: ${user%%:*}" "$repo/deploy/k8s/base/control-deployment.yaml" || fail "pods run as another uid than the image's USER $user"
for label in title description version revision; do
  grep -q "org.opencontainers.image.$label=" <<<"$runtime_stage" || fail "OCI label org.opencontainers.image.$label missing"
done

# Every binary a pod runs (command, args, preStop) is built, collected and shipped; NAME-netraw and
# NAME-fastpath are the collected NAME with a file capability (collect-runtime.sh --netraw=NAME,
# --fastpath=NAME).
render "$scratch/single.yaml" "$k8s/overlays/single"
render "$scratch/ha.yaml" "$k8s/overlays/ha"
render_component "$scratch/single-raw-keepalive.yaml" raw-keepalive
render_component "$scratch/single-fast-path.yaml" fast-path
mapfile -t binaries < <(node "$here/validate.js" binaries "$scratch/single.yaml" "$scratch/ha.yaml" "$scratch/single-raw-keepalive.yaml" \
  "$scratch/single-fast-path.yaml")
((${#binaries[@]} >= 4)) || fail "manifests reference only: ${binaries[*]}"
for path in "${binaries[@]}"; do
  name=$(basename "$path")
  [[ $path == /usr/local/bin/$name ]] || fail "$path: binaries live in /usr/local/bin"
  built=${name%-netraw}
  built=${built%-fastpath}
  if [[ $name != "$built" ]]; then
    copy=${name#"$built"-}
    grep -Eq -- "collect-runtime.sh (--[a-z]+=[a-z-]+ )*--$copy=$built " <<<"$build_stage" || fail "the build stage does not make $name (collect-runtime.sh --$copy=$built)"
  fi
  grep -Eq -- "--target( [a-z-]+)* $built( |$)" <<<"$build_stage" || fail "the build stage does not build $built"
  grep -Eq "build/.*/$built( |$)" <<<"$build_stage" || fail "the build stage does not collect $built"
  echo "shipped: $path"
done
grep -q 'COPY --from=build /rootfs/ /' <<<"$runtime_stage" || fail "the runtime stage must copy the collected tree"
for port in 7400 7401 7402 9400 7410 7411 9410; do
  grep -Eq "^EXPOSE .*\b$port\b" <<<"$runtime_stage" || fail "the image does not EXPOSE $port"
done

# deploy/Dockerfile.redis, the image of overlays/ha's Redis: one stage on the same base with Debian's
# redis-server, redis-sentinel and redis-tools and nothing else, non-root with the uid its pods run
# as, OCI labels, the entrypoint at the path the StatefulSet's containers run, /data the pods' data
# directory, the ports their containers expose; the entrypoint shellcheck-clean.
redis_dockerfile=$repo/deploy/Dockerfile.redis
mapfile -t froms < <(grep -E '^FROM ' "$redis_dockerfile")
[[ ${#froms[@]} -eq 1 && ${froms[0]} == "FROM debian:bookworm-slim" ]] || fail "Dockerfile.redis: want one stage FROM debian:bookworm-slim, got: ${froms[*]}"
# The RUN instruction, continuation lines joined.
redis_run=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$redis_dockerfile" | grep -E '^RUN ')
((${#redis_run} > 0)) || fail "Dockerfile.redis: no RUN"
packages=$(grep -oE 'apt-get install [^&;]*' <<<"$redis_run" | tr ' ' '\n' | grep -vE '^(apt-get|install|-.*|)$' | sort | paste -sd' ')
[[ $packages == "redis-sentinel redis-server redis-tools" ]] || fail "Dockerfile.redis installs '$packages', want redis-server redis-sentinel redis-tools only"
grep -q -- '--no-install-recommends' <<<"$redis_run" || fail "Dockerfile.redis: apt-get install without --no-install-recommends"
grep -q 'rm -rf /var/lib/apt/lists' <<<"$redis_run" || fail "Dockerfile.redis: apt lists left in the image"
redis_user=$(grep -E '^USER ' "$redis_dockerfile" | tail -1 | awk '{print $2}')
if ! [[ $redis_user =~ ^([0-9]+)(:[0-9]+)?$ ]] || ((BASH_REMATCH[1] == 0)); then fail "Dockerfile.redis: USER must be a non-zero uid, got '$redis_user'"; fi
read -r redis_uid _ < <(node "$here/validate.js" security-context "$scratch/ha.yaml" StatefulSet/latchkey-redis)
[[ ${redis_user%%:*} == "$redis_uid" ]] || fail "Redis pods run as uid $redis_uid, Dockerfile.redis's USER is $redis_user"
grep -Eq "install -d -o ${redis_user%%:*} .* /data( |$)" <<<"$redis_run" || fail "Dockerfile.redis: /data must belong to the USER"
grep -q '^VOLUME /data$' "$redis_dockerfile" || fail "Dockerfile.redis: VOLUME /data missing"
node "$here/validate.js" env "$scratch/ha.yaml" StatefulSet/latchkey-redis redis | grep -qx 'LK_REDIS_DIR=/data' ||
  fail "the Redis pods' LK_REDIS_DIR is not the image's /data"
for label in title description version revision; do
  grep -q "org.opencontainers.image.$label=" "$redis_dockerfile" || fail "Dockerfile.redis: OCI label org.opencontainers.image.$label missing"
done
mapfile -t redis_commands < <(node "$here/validate.js" binaries --image latchkey-redis "$scratch/ha.yaml")
((${#redis_commands[@]} == 1)) || fail "the Redis containers run ${redis_commands[*]}, want the one entrypoint"
entrypoint=${redis_commands[0]}
grep -Eq "^COPY (--chmod=0?755 )?deploy/docker/redis-entrypoint.sh $entrypoint$" "$redis_dockerfile" ||
  fail "Dockerfile.redis does not COPY deploy/docker/redis-entrypoint.sh (executable) to $entrypoint"
grep -q "^ENTRYPOINT \[\"$entrypoint\"\]" "$redis_dockerfile" || fail "Dockerfile.redis: ENTRYPOINT is not $entrypoint"
for port in 6379 26379; do
  grep -Eq "^EXPOSE .*\b$port\b" "$redis_dockerfile" || fail "Dockerfile.redis does not EXPOSE $port"
  grep -q "containerPort: $port" "$scratch/ha.yaml" || fail "the Redis containers do not listen on $port"
done
command -v shellcheck >/dev/null || fail "shellcheck not found (scripts/install-deps.sh installs it)"
shellcheck "$repo/deploy/docker/redis-entrypoint.sh" || fail "deploy/docker/redis-entrypoint.sh is not shellcheck-clean"
# The entrypoint relies on Sentinel re-resolving a pod's name when it restarts with a new address
# (Redis 7.0.7 and later; Debian 12 has 7.0.15): the Redis the tests run is the image's.
redis_version=$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -d= -f2)
printf '%s\n' 7.0.7 "$redis_version" | sort -CV || fail "redis-server $redis_version is older than 7.0.7"
echo "Dockerfile.redis: debian:bookworm-slim + redis-server redis-sentinel redis-tools (here $redis_version), uid ${redis_user%%:*}, $entrypoint"

# The collection script on this build's binaries.
root=$scratch/rootfs
"$repo/deploy/docker/collect-runtime.sh" --netraw=latchkey-relay --fastpath=latchkey-relay "$root" \
  "$LATCHKEY_CONTROL_BIN" "$LATCHKEY_RELAY_BIN" "$LATCHKEY_CTL_BIN"
for path in "${binaries[@]}"; do [[ -x $root$path ]] || fail "collect-runtime.sh did not place $path"; done
# File capabilities: cap_net_raw=ep on the NET_RAW copy, the fast path's three on its copy (getcap
# lists them in capability order), none anywhere else.
if command -v getcap >/dev/null; then
  for path in "$root"/usr/local/bin/*; do
    caps=$(getcap "$path" | sed 's/^[^ ]* *//; s/^= *//')
    case $path in
      *-netraw) [[ $caps == cap_net_raw=ep ]] || fail "$path: file capabilities '$caps', want cap_net_raw=ep" ;;
      *-fastpath) [[ $caps == cap_net_admin,cap_bpf=ep ]] || fail "$path: file capabilities '$caps', want cap_net_admin,cap_bpf=ep" ;;
      *) [[ -z $caps ]] || fail "$path: file capabilities '$caps', want none" ;;
    esac
  done
  echo "file capabilities: cap_net_raw=ep on latchkey-relay-netraw, cap_bpf,cap_net_admin=ep on latchkey-relay-fastpath, none elsewhere"
else
  echo "getcap not found: the file capability check is skipped"
fi
if (($(id -u) != 0)); then
  echo "not root: the chroot start of the collected binaries is skipped"
  exit 0
fi

# The relay as the kubelet would start it: the securityContext of each overlay applied with setpriv
# (uid and gid, no_new_privs for allowPrivilegeEscalation false, a bounding and permitted set of the
# added capabilities only), on the collected binary its command names. Its keepalive line says
# whether it got raw sockets. Plaintext on a fixed loopback port (no certificate for uid 10001 to
# read here); control is not there, which the keepalive line does not need.
chmod 711 "$scratch"
# relay_as OVERLAY [COMMAND [FLAGS...]]: start it, wait for its keepalive line; sets relay_log. A
# relay with --fast_path runs in a network namespace of its own (its program attaches to that
# namespace's loopback, never the host's).
relay_as() {
  local overlay=$1
  local uid gid nnp caps command
  read -r uid gid nnp caps command < <(node "$here/validate.js" security-context "$scratch/$overlay.yaml" DaemonSet/latchkey-relay)
  command=${2:-$command}
  local flags=("${@:3}")
  local opts=(--reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all)
  ((nnp)) && opts+=(--no-new-privs)
  if [[ $caps == - ]]; then opts+=(--bounding-set=-all); else opts+=(--bounding-set="-all,+${caps//,/,+}"); fi
  local netns=()
  if [[ " ${flags[*]} " == *" --fast_path="* ]]; then netns=(unshare --net sh -c 'ip link set lo up && exec "$@"' netns); fi
  relay_log=$scratch/relay-$overlay-$(basename "$command").log
  run_bg "${netns[@]}" setpriv "${opts[@]}" -- "$root$command" --listen="127.0.0.1:$(free_port)" --metrics_listen=127.0.0.1:0 \
    --control=127.0.0.1:1 --worker_id=caps-test --media_ip=127.0.0.1 --stun_listen=off --port_min=41400 --port_max=41499 \
    --threads=1 "${flags[@]}" >"$relay_log" 2>&1
}
relay_as single-raw-keepalive
wait_for 20 "the raw-keepalive relay's keepalive line" grep -q 'msg="keepalives' "$relay_log"
grep -q 'msg="keepalives on" mode=registrar_source' "$relay_log" ||
  fail "components/raw-keepalive: the relay has no raw sockets: $(grep 'keepalives' "$relay_log")"
echo "raw-keepalive: uid $(node "$here/validate.js" security-context "$scratch/single-raw-keepalive.yaml" DaemonSet/latchkey-relay | cut -d' ' -f1), no_new_privs, NET_RAW only: keepalives on (registrar_source)"
relay_as single
wait_for 20 "base's relay's keepalive line" grep -q 'msg="keepalives' "$relay_log"
grep -q 'msg="keepalives disabled"' "$relay_log" || fail "base: the relay got raw sockets without NET_RAW: $(grep 'keepalives' "$relay_log")"
echo "base: no capability: the relay runs, keepalives disabled"
relay_as single /usr/local/bin/latchkey-relay-netraw
wait_for 10 "the NET_RAW copy to be refused" grep -q 'Operation not permitted' "$relay_log"
echo "base's securityContext: the NET_RAW copy does not execute (why base runs the plain binary)"
# The fast-path component: its copy loads and attaches the program (tc: loopback has no native XDP);
# base's relay asked for the fast path cannot; base's securityContext refuses to run that copy.
relay_as single-fast-path "" --fast_path=auto
wait_for 20 "the fast-path relay's fast path line" grep -Eq 'msg="fast path (on|off)"' "$relay_log"
grep -q 'msg="fast path on" mode=tc' "$relay_log" ||
  fail "components/fast-path: the relay did not attach its program: $(grep 'fast path' "$relay_log")"
echo "fast-path: uid $(node "$here/validate.js" security-context "$scratch/single-fast-path.yaml" DaemonSet/latchkey-relay | cut -d' ' -f1), no_new_privs, BPF and NET_ADMIN only: fast path on (tc on loopback)"
relay_as single "" --fast_path=auto
wait_for 20 "base's relay's fast path line" grep -Eq 'msg="fast path (on|off)"' "$relay_log"
grep -q 'msg="fast path off"' "$relay_log" || fail "base: the relay attached a program without capabilities: $(grep 'fast path' "$relay_log")"
echo "base: no capability: --fast_path=auto runs without the fast path"
relay_as single /usr/local/bin/latchkey-relay-fastpath --fast_path=auto
wait_for 10 "the fast-path copy to be refused" grep -q 'Operation not permitted' "$relay_log"
echo "base's securityContext: the fast-path copy does not execute"
kill -KILL "${pids[@]}" 2>/dev/null || true
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
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
