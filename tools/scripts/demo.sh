#!/usr/bin/env bash
# Installs the dependencies, builds Customs and starts customsd with the default
# config (config/customsd.yaml): an offline demo. A scripted fake provider
# (tests/support, the same one the tests use) answers on 127.0.0.1:8091 in the
# background and is stopped when customsd stops; no internet is needed.
# Ctrl-C (SIGINT) drains and stops customsd.
#
# Try, from another terminal:
#   curl -N http://127.0.0.1:8080/openai/v1/chat/completions \
#     -H 'Content-Type: application/json' -H 'Authorization: Bearer demo' \
#     -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"Hello"}]}'
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tools/scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target customsd customsctl fake_provider

provider_log=$(mktemp)
build/release/tests/support/fake_provider --address 127.0.0.1 --port 8091 2>"$provider_log" >"$provider_log" &
provider_pid=$!
cleanup() {
  kill "$provider_pid" 2>/dev/null || true
  wait "$provider_pid" 2>/dev/null || true
  rm -f "$provider_log"
}
trap cleanup EXIT

for _ in $(seq 100); do
  grep -q "listening on" "$provider_log" && break
  if ! kill -0 "$provider_pid" 2>/dev/null; then
    echo "demo: the fake provider did not start:" >&2
    cat "$provider_log" >&2
    exit 2
  fi
  sleep 0.1
done
echo "demo: fake provider $(grep -m1 'listening on' "$provider_log")" >&2
echo "demo: customsd on http://127.0.0.1:8080 (admin http://127.0.0.1:9090/metrics); Ctrl-C stops" >&2

status=0
build/release/daemon/customsd --config config/customsd.yaml || status=$?
exit "$status"
