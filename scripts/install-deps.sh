#!/usr/bin/env bash
# Installs everything Latchkey needs to build and test on Debian 12 (bookworm).
# One source of truth: used by the README quick start, CI and the container build.
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev liburing-dev
  openssl  # scripts/pki.sh: the CA and certificates of mutual TLS (run-local.sh, tests)
  libhiredis-dev  # the Redis client of the shared store (async API on our own loop)
  # The relay's kernel fast path: clang compiles its eBPF object, bpftool embeds it as a skeleton,
  # libbpf loads and attaches it; the uapi headers come from linux-libc-dev.
  clang bpftool libbpf-dev linux-libc-dev
)
# Real peers and tools the test suite drives (sipp as a phone, coturn's STUN client, clang for fuzz
# targets, curl for /metrics).
test_pkgs=(sip-tester coturn clang libclang-rt-14-dev curl iproute2 iptables procps python3)
# setcap/setpriv for the deploy checks of the raw-keepalive image (file capability, no root).
test_pkgs+=(libcap2-bin util-linux)
# Redis and Sentinel processes for the replicated-store tests (each test starts its own, on loopback).
test_pkgs+=(redis-server redis-sentinel redis-tools)
# The ng front door's real client (Kamailio's rtpengine module) and its reference server (rtpengine,
# for the differential tests and the benchmark).
test_pkgs+=(kamailio rtpengine-daemon)
# Kamailio's registration integration (deploy/integrations/kamailio): its Python module calls
# control's gRPC API with Debian's grpcio; the messages come from protoc (protobuf-compiler).
test_pkgs+=(kamailio-python3-modules python3-grpcio python3-protobuf)
# The deploy checks keep the Redis image's entrypoint shellcheck-clean.
test_pkgs+=(shellcheck)
# Deploy checks (tests/deploy): promtool and a Prometheus server, kubectl for `kubectl kustomize`,
# node + npm for schema validation. A kubectl or node already installed from elsewhere is kept (the
# Debian packages would conflict with it).
test_pkgs+=(prometheus)
command -v kubectl >/dev/null || test_pkgs+=(kubernetes-client)
command -v npm >/dev/null || test_pkgs+=(nodejs npm)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
