#!/usr/bin/env bash
# Installs everything Customs needs to build, test and benchmark, from Debian 12
# packages only. Idempotent: does nothing when all packages are present.
# Run as root (or with sudo).
set -euo pipefail

packages=(
  build-essential g++ cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libre2-dev libsqlite3-dev libsodium-dev catch2 libyaml-cpp-dev
  sqlite3 openssl curl python3
  python3-yaml python3-jsonschema
  # The volume counters' tests: hiredis (fleet counter store client),
  # redis-server (started by the tests on loopback), tzdata (counter windows).
  libhiredis-dev redis-server tzdata
  # The edge shell tests: network namespaces (unshare, mount, ip), nftables;
  # openssl and curl above make their certificates and send their requests.
  util-linux mount iproute2 nftables
  # The completion test runs zsh's completion of config/completion/_customsctl.
  zsh
  # The man page test renders docs/man/ with groff (usually present already:
  # man-db depends on it; minimal images lack it).
  groff-base
  # The fuzz targets (tools/scripts/fuzz.sh): clang and its libFuzzer runtime.
  clang-14 libclang-rt-14-dev
)
# Node.js + npm run the official provider SDK clients in the end-to-end tests.
# A machine that already has them (Debian's or another build, such as one that
# bundles npm with nodejs) keeps its own: Debian's npm package would conflict.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
# Benchmark peers: nginx (baseline reverse proxy), wrk (load), squid with
# ssl_bump (the TLS-intercepting proxy the edge benchmark compares with).
if [[ "${CUSTOMS_WITH_BENCH:-0}" == 1 ]]; then
  packages+=(nginx-light wrk squid-openssl valgrind)  # valgrind: bench/proxy/count.sh
fi
# tools/scripts/package-test.sh lints the Debian package.
if [[ "${CUSTOMS_WITH_PACKAGE_TEST:-0}" == 1 ]]; then
  packages+=(lintian)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
