#!/usr/bin/env bash
# Transparent interception of IPv6 connections end to end, in a network (and
# mount) namespace this test makes, as transparent_netns_test.sh does for IPv4:
# the host names resolve to IPv6 test addresses on lo (fd77::1 api.openai.com,
# fd77::2 tunnel.test), an `ip6` nat table redirects their port 443 to
# customsd's transparent listener on ::1, and customsd reads the original
# destination with IP6T_SO_ORIGINAL_DST. No `resolve` map: the provider itself
# listens on [fd77::1]:443, so the intercepted flow goes on to the original
# IPv6 destination as the tunnel does.
#   - a blocked prompt gets 451;
#   - a streamed answer arrives with the phone number redacted;
#   - a host outside the catalogue is tunnelled to its original destination:
#     the client verifies its own certificate;
#   - the audit records name the IPv6 destinations, and the trail verifies.
# customsd's own connections carry SO_MARK 42 (interception.upstream_mark),
# which the nftables rules let through un-redirected.
#
# Where namespaces, IPv6 in them or nf_tables cannot be had, it prints SKIP
# and exits 77, which CTest reports as skipped, never as passed.
# Usage: transparent_netns_v6_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)

if [[ ${CUSTOMS_IN_NETNS:-} != 1 ]]; then
  if ! err=$(unshare -rnm true 2>&1); then
    echo "SKIP: transparent mode (IPv6) not tested: cannot create a network namespace here (unshare -rnm: $err)"
    exit 77
  fi
  exec unshare -rnm env CUSTOMS_IN_NETNS=1 bash "$0" "$@"
fi

# ---- inside the namespace -----------------------------------------------------
work=$(mktemp -d /tmp/customs-netns6-XXXXXX)
source "$src/tests/daemon/listen/edge_test_lib.sh"
trap 'stop_all; rm -rf "$work"' EXIT

ip link set lo up
# nodad: the addresses are usable at once (no duplicate address detection wait).
if ! err=$(ip -6 addr add fd77::1/128 dev lo nodad 2>&1 && ip -6 addr add fd77::2/128 dev lo nodad 2>&1); then
  echo "SKIP: transparent mode (IPv6) not tested: no IPv6 in the namespace ($err)"
  exit 77
fi
if ! err=$(nft add table ip6 customs_probe 2>&1 && nft delete table ip6 customs_probe 2>&1); then
  echo "SKIP: transparent mode (IPv6) not tested: nftables unusable in the namespace ($err)"
  exit 77
fi
printf '127.0.0.1 localhost\n::1 localhost\nfd77::1 api.openai.com\nfd77::2 tunnel.test\n' > "$work/hosts"
mount --bind "$work/hosts" /etc/hosts

make_public_ca
make_server_cert provider api.openai.com
make_server_cert site tunnel.test
"$customsctl" ca gen --out "$work/ica" > /dev/null
make_audit_keys
"$fake_provider" --address fd77::1 --port 443 --tls-cert "$work/provider.pem" --tls-key "$work/provider.key" \
  --text "Sure, call 138 0013 8000 any time." --delta-bytes 5 > "$work/provider.out" 2> "$work/provider.log" &
pids+=($!)
"$fake_provider" --address fd77::2 --port 443 --tls-cert "$work/site.pem" --tls-key "$work/site.key" \
  > "$work/site.out" 2> "$work/site.log" &
pids+=($!)

cat > "$work/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: tproxy6, address: "::1", port: 0, mode: transparent, default_source: {jurisdiction: CN}}
admin: {address: 127.0.0.1, port: 0}
routes: []
interception:
  ca_cert: $work/ica/ca.pem
  ca_key: $work/ica/ca.key
  upstream_mark: 42
providers: [$src/config/providers/]
upstream_ca_bundle: $work/pub-ca.pem
rules: [$src/rules/, $src/tests/sdk/response-phone.yaml]
$(audit_yaml)
threads: 1
log: {level: info, flows: true}
EOF
start_customsd "$work/customsd.yaml"
for f in provider site; do
  for i in $(seq 50); do grep -q 'listening on' "$work/$f.out" && break; sleep 0.1; done
  grep -q 'listening on' "$work/$f.out" || fail "$f did not start"
done

nft -f - <<EOF
table ip6 customs {
  chain output {
    type nat hook output priority -100; policy accept;
    meta mark 42 return
    ip6 daddr { fd77::1, fd77::2 } tcp dport 443 redirect to :$customsd_port
  }
}
EOF

# The client never set a proxy: the firewall sends it to customsd.
expect_blocked --cacert "$work/ica/ca.pem"
expect_redacted_stream --cacert "$work/ica/ca.pem"
expect_tunnelled  # to its original destination, [fd77::2]:443

[[ $(metric 'customs_edge_connections_total{outcome="tunnelled"}') == 1 ]] || fail "tunnel count"
[[ $(metric 'customs_edge_connections_total{outcome="intercepted"}') == 2 ]] || fail "interception count"
stop_all
verify_audit
# One "action route destination" line per record.
records=$("$customsctl" audit export --db "$work/audit.db" --key "$work/keys/auditor.key" --format jsonl 2> /dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    d = r.get("destination") or (r.get("payload") or {}).get("destination") or ""
    print(r.get("action",""), r.get("route",""), d)')
# A flow's opening record names its destination: the blocked request's, and
# the streamed one's (allowed out, then redacted on the way back).
grep -q '^block api.openai.com \[fd77::1\]:443$' <<< "$records" || fail "no block record to [fd77::1]:443: $records"
grep -q '^allow api.openai.com \[fd77::1\]:443$' <<< "$records" || fail "no opening record to [fd77::1]:443: $records"
grep -q '^redact api.openai.com' <<< "$records" || fail "no redact record: $records"
grep -q '^tunnel tunnel \[fd77::2\]:443$' <<< "$records" || fail "no tunnel record to [fd77::2]:443: $records"
echo "PASS: transparent interception of IPv6 connections in a network namespace"
