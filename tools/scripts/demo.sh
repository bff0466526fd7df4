#!/usr/bin/env bash
# Installs the dependencies, builds Customs and starts customsd with the default
# config (config/customsd.yaml): an offline demo. A scripted fake provider
# (tests/support, the same one the tests use) answers on 127.0.0.1:8091 in the
# background and is stopped when customsd stops; no internet is needed. Its
# answer contains a PRC mobile number, which customsd redacts on the fly.
# On first run the audit keys are made in config/state/keys (customsctl keys gen);
# the audit trail is config/state/audit.db. Ctrl-C (SIGINT) drains and stops
# customsd (so does SIGTERM to this script). CUSTOMS_DEMO_CONFIG names another
# config file.
#
# Try, from another terminal (see README.md):
#   curl -N http://127.0.0.1:8080/openai/v1/chat/completions \
#     -H 'Content-Type: application/json' -H 'Authorization: Bearer demo' \
#     -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"Hello"}]}'
set -euo pipefail
cd "$(dirname "$0")/../.."
config="${CUSTOMS_DEMO_CONFIG:-config/customsd.yaml}"

bash tools/scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target customsd customsctl fake_provider

state=config/state
if [ ! -f "$state/keys/auditor.pub" ]; then
  mkdir -p "$state"
  build/release/tools/customsctl keys gen --out "$state/keys" >/dev/null
  echo "demo: audit keys made in $state/keys (auditor.key and sealing.seed are the auditors' copies)" >&2
fi

provider_log=$(mktemp)
build/release/tests/support/fake_provider --address 127.0.0.1 --port 8091 \
  --text "Sure. Our Shanghai office answers on 138 1234 5678, nine to five." 2>"$provider_log" >"$provider_log" &
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
echo "demo: customsd with $config (its listeners are logged below); audit trail $state/audit.db; Ctrl-C stops" >&2

# customsd runs as a child in a session of its own: a SIGTERM or SIGINT sent to
# this script (Ctrl-C included) reaches it exactly once (a second one would cut
# the flows in flight instead of draining them), and the fake provider stops
# after it.
setsid build/release/daemon/customsd --config "$config" &
customsd_pid=$!
forward() { kill -s "$1" "$customsd_pid" 2>/dev/null || true; }
trap 'forward TERM' TERM
trap 'forward INT' INT
status=0
while true; do
  wait "$customsd_pid" && status=0 || status=$?
  # wait returns early (status > 128) when a trapped signal arrives; go on
  # waiting until customsd itself has exited.
  kill -0 "$customsd_pid" 2>/dev/null || break
done
exit "$status"
