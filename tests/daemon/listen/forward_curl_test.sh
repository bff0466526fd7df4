#!/usr/bin/env bash
# curl -x through customsd's forward listener (the built binaries, as an
# operator runs them): customsctl ca gen makes the interception CA, the fake
# provider serves api.openai.com over TLS with a certificate from a "public"
# test CA, and customsd enforces the shipped packs with an audit trail.
#   - a blocked prompt gets 451 from the intercepted api.openai.com;
#   - a streamed answer arrives with the phone number redacted;
#   - a host outside the catalogue is tunnelled: curl verifies its own certificate;
#   - CONNECT to loopback is refused (curl reports the 403);
#   - the audit trail verifies and holds the intercepted flows and the tunnel.
# Usage: forward_curl_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/customs-curl-XXXXXX)
source "$src/tests/daemon/listen/edge_test_lib.sh"
trap 'stop_all; rm -rf "$work"' EXIT

command -v curl > /dev/null || fail "curl is not installed (tools/scripts/install-deps.sh installs it)"

make_public_ca
make_server_cert provider api.openai.com api.anthropic.com
make_server_cert site tunnel.test
"$customsctl" ca gen --out "$work/ica" > /dev/null
[[ $(stat -c %a "$work/ica/ca.key") == 600 ]] || fail "ca.key is not 0600"
make_audit_keys
start_fake provider provider 127.0.0.1 --text "Sure, call 138 0013 8000 any time." --delta-bytes 5
start_fake site site 127.0.0.1

cat > "$work/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: wire, address: 127.0.0.1, port: 0, mode: forward, default_source: {jurisdiction: CN}}
admin: {address: 127.0.0.1, port: 0}
routes: []
interception:
  ca_cert: $work/ica/ca.pem
  ca_key: $work/ica/ca.key
providers: [$src/config/providers/]
upstream_ca_bundle: $work/pub-ca.pem
resolve:
  api.openai.com: "127.0.0.1:$provider_port"
  tunnel.test: "127.0.0.1:$site_port"
rules: [$src/rules/, $src/tests/sdk/response-phone.yaml]
$(audit_yaml)
threads: 1
log: {level: info, flows: true}
EOF
start_customsd "$work/customsd.yaml"
proxy="http://127.0.0.1:$customsd_port"

expect_blocked -x "$proxy" --cacert "$work/ica/ca.pem"
expect_redacted_stream -x "$proxy" --cacert "$work/ica/ca.pem"
expect_tunnelled -x "$proxy"

# CONNECT to loopback: refused before anything is relayed.
set +e
curl -sS -o /dev/null -x "$proxy" --max-time 5 https://127.0.0.1/ 2> "$work/refused.err"
rc=$?
set -e
[[ $rc != 0 ]] || fail "CONNECT to loopback was not refused"
grep -q '403' "$work/refused.err" || fail "curl did not report the 403: $(cat "$work/refused.err")"

[[ $(metric 'customs_edge_connections_total{outcome="intercepted"}') == 2 ]] || fail "intercepted count"
[[ $(metric 'customs_edge_refusals_total{reason="loopback"}') == 1 ]] || fail "loopback refusal count"

stop_all
verify_audit
actions=$(audit_actions)
grep -q '^block api.openai.com$' <<< "$actions" || fail "no block record for api.openai.com: $actions"
grep -q '^redact api.openai.com$' <<< "$actions" || fail "no redact record for api.openai.com: $actions"
grep -q '^tunnel tunnel$' <<< "$actions" || fail "no tunnel record: $actions"
grep -q '^refused tunnel$' <<< "$actions" || fail "no refusal record: $actions"
echo "PASS: curl -x through the forward listener"
