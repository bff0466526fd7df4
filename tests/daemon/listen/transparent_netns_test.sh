#!/usr/bin/env bash
# Transparent interception end to end, in a network (and mount) namespace this
# test makes: the provider's host name resolves to a test address inside the
# namespace (/etc/hosts bind-mounted), nftables redirects port 443 of the test
# addresses to customsd's transparent listener, and customsd reads the original
# destination (SO_ORIGINAL_DST) and the ClientHello's server name.
#   - a blocked prompt gets 451 (curl, and the official openai SDK when the
#     SDK tests' node_modules are there);
#   - a streamed answer arrives with the phone number redacted;
#   - a host outside the catalogue is tunnelled to its original destination:
#     the client verifies its own certificate;
#   - the audit trail verifies.
# customsd's own connections carry SO_MARK 42 (interception.upstream_mark),
# which the nftables rules let through un-redirected.
#
# Where namespaces cannot be made (no user namespaces, no nf_tables), it
# prints SKIP and exits 77, which CTest reports as skipped, never as passed.
# Usage: transparent_netns_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)

if [[ ${CUSTOMS_IN_NETNS:-} != 1 ]]; then
  if ! err=$(unshare -rnm true 2>&1); then
    echo "SKIP: transparent mode not tested: cannot create a network namespace here (unshare -rnm: $err)"
    exit 77
  fi
  exec unshare -rnm env CUSTOMS_IN_NETNS=1 bash "$0" "$@"
fi

# ---- inside the namespace -----------------------------------------------------
work=$(mktemp -d /tmp/customs-netns-XXXXXX)
source "$src/tests/daemon/listen/edge_test_lib.sh"
trap 'stop_all; rm -rf "$work"' EXIT

ip link set lo up
ip addr add 10.77.0.1/32 dev lo  # api.openai.com, as the clients see it
ip addr add 10.77.0.2/32 dev lo  # tunnel.test: a site outside the catalogue
if ! err=$(nft add table ip customs_probe 2>&1 && nft delete table ip customs_probe 2>&1); then
  echo "SKIP: transparent mode not tested: nftables unusable in the namespace ($err)"
  exit 77
fi
printf '127.0.0.1 localhost\n10.77.0.1 api.openai.com\n10.77.0.2 tunnel.test\n' > "$work/hosts"
mount --bind "$work/hosts" /etc/hosts

make_public_ca
make_server_cert provider api.openai.com
make_server_cert site tunnel.test
"$customsctl" ca gen --out "$work/ica" > /dev/null
make_audit_keys
start_fake provider provider 127.0.0.1 --text "Sure, call 138 0013 8000 any time." --delta-bytes 5
"$fake_provider" --address 10.77.0.2 --port 443 --tls-cert "$work/site.pem" --tls-key "$work/site.key" \
  > "$work/site.out" 2> "$work/site.log" &
pids+=($!)

cat > "$work/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: tproxy, address: 127.0.0.1, port: 0, mode: transparent, default_source: {jurisdiction: CN}}
admin: {address: 127.0.0.1, port: 0}
routes: []
interception:
  ca_cert: $work/ica/ca.pem
  ca_key: $work/ica/ca.key
  upstream_mark: 42
providers: [$src/config/providers/]
upstream_ca_bundle: $work/pub-ca.pem
resolve: {api.openai.com: "127.0.0.1:$provider_port"}
rules: [$src/rules/, $src/tests/sdk/response-phone.yaml]
$(audit_yaml)
threads: 1
log: {level: info, flows: true}
EOF
start_customsd "$work/customsd.yaml"
for i in $(seq 50); do grep -q 'listening on' "$work/site.out" && break; sleep 0.1; done

nft -f - <<EOF
table ip customs {
  chain output {
    type nat hook output priority -100; policy accept;
    meta mark 42 return
    ip daddr { 10.77.0.1, 10.77.0.2 } tcp dport 443 redirect to :$customsd_port
  }
}
EOF

# The client never set a proxy: the firewall sends it to customsd.
expect_blocked --cacert "$work/ica/ca.pem"
expect_redacted_stream --cacert "$work/ica/ca.pem"
expect_tunnelled  # to its original destination, 10.77.0.2

# The official SDK, if the SDK tests installed it.
probe=$build/tests/sdk/node/sdk_probe.mjs
if command -v node > /dev/null && [[ -d $build/tests/sdk/node/node_modules/openai ]]; then
  out=$(NODE_EXTRA_CA_CERTS="$work/ica/ca.pem" node "$probe" openai https://api.openai.com/v1 \
    'My resident ID is 11010519491231002X, please check it.' stream) || fail "sdk probe failed"
  python3 -c 'import json,sys; e=json.loads(sys.argv[1])["error"]; sys.exit(0 if e and e["status"]==451 else 1)' "$out" \
    || fail "SDK did not raise 451: $out"
  out=$(NODE_EXTRA_CA_CERTS="$work/ica/ca.pem" node "$probe" openai https://api.openai.com/v1 'What is your number?' stream) \
    || fail "sdk probe failed"
  python3 -c 'import json,sys; o=json.loads(sys.argv[1]); sys.exit(0 if o["error"] is None and "[REDACTED:pi.phone]" in o["text"] and "8000" not in o["text"] else 1)' "$out" \
    || fail "SDK stream not redacted: $out"
else
  echo "note: the openai SDK is not installed in $build/tests/sdk/node: curl cases only"
fi

[[ $(metric 'customs_edge_connections_total{outcome="tunnelled"}') == 1 ]] || fail "tunnel count"
stop_all
verify_audit
actions=$(audit_actions)
grep -q '^block api.openai.com$' <<< "$actions" || fail "no block record: $actions"
grep -q '^tunnel tunnel$' <<< "$actions" || fail "no tunnel record: $actions"
echo "PASS: transparent interception in a network namespace"
