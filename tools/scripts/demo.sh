#!/usr/bin/env bash
# Installs the dependencies, builds Customs and starts customsd with the default
# config (config/customsd.yaml): an offline demo with a built-in simulated
# provider, no internet needed. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target customsd customsctl
exec build/release/daemon/customsd --config config/customsd.yaml
