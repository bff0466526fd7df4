#!/usr/bin/env bash
# Edge benchmark (not a test): customsd as a TLS-intercepting forward proxy
# beside squid with ssl_bump (Debian's squid-openssl), the established anchor
# for this job, on loopback, in one run.
#
#   CUSTOMS_WITH_BENCH=1 tools/scripts/install-deps.sh   # squid-openssl, wrk, nginx
#   bench/edge/run.sh
#
# Both proxies sign leaves with the same ECDSA P-256 CA (customsctl ca gen) and
# reach the same upstream: the fake provider over TLS (a "public" test CA,
# certificate *.bench.test and 127.0.0.1). customsd enforces every pack of
# rules/ with an audit trail (content: full); squid bumps everything
# (`ssl_bump bump all`, client-first) and inspects nothing.
#
# Measures:
#   1. new TLS-intercepted connections per second and proxy CPU per handshake
#      (CONNECT, the proxy's ClientHello handling and leaf, the full handshake,
#      close; no request), THREADS clients at a time, with the leaf cache cold
#      (every connection a new host name: HANDSHAKES names) and warm (one name,
#      minted before the run). CPU: utime + stime of customsd, of every
#      process of squid's session (squid, its kid, the certificate helpers),
#      from /proc before and after.
#   2. CPU per request on one kept-alive intercepted connection (REQUESTS
#      non-streamed chat completions through CONNECT) against the reverse-proxy
#      path (the same requests to a TLS reverse listener of the same customsd,
#      route to the same upstream over TLS): both enforcing, both decrypting.
#   3. tunnel throughput for a host outside the catalogue (BYTES up and down
#      through CONNECT) against a plain TCP relay (threads, read/write through
#      64 KiB buffers) and a direct connection, and customsd's CPU per GB;
#   4. memory per open idle tunnel: customsd's VmRSS before and after TUNNELS
#      idle tunnels (kernel socket buffers are not in RSS).
# Goals (docs/performance.md): intercepted requests <= 1.2x the CPU of the
# reverse path; warm handshakes no more CPU than squid's; tunnels >= 90 % of
# a plain relay's throughput with < 16 KiB per idle tunnel.
#
# Knobs: HANDSHAKES (1000), THREADS (4), REQUESTS (3000), BYTES (2 GB),
# TUNNELS (1000), WORKERS (customsd threads, 2).
# Loopback only; every process it starts is stopped on exit; each phase is
# bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build/release
HANDSHAKES=${HANDSHAKES:-1000}
THREADS=${THREADS:-4}
REQUESTS=${REQUESTS:-3000}
BYTES=${BYTES:-2000000000}
TUNNELS=${TUNNELS:-1000}
WORKERS=${WORKERS:-2}

bench=$build/bench/edge/edge_bench
for b in "$bench" "$build/daemon/customsd" "$build/tools/customsctl" "$build/tests/support/fake_provider"; do
  [[ -x $b ]] || { echo "missing $b: cmake --build --preset release" >&2; exit 2; }
done
squid_bin=$(command -v squid || true)
certgen=/usr/lib/squid/security_file_certgen
if [[ -z $squid_bin || ! -x $certgen ]]; then
  echo "squid with ssl_bump is missing: CUSTOMS_WITH_BENCH=1 tools/scripts/install-deps.sh (squid-openssl)" >&2
  exit 2
fi

work=$(mktemp -d /tmp/customs-edge-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  if [[ -f $work/squid.pid ]]; then kill "$(cat "$work/squid.pid")" 2> /dev/null || true; fi
  pkill -s "${squid_sid:-0}" 2> /dev/null || true
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() {  # the utime + stime of the given pids, in clock ticks
  local t=0 p
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
session_pids() { ps -e -o pid=,sid= | awk -v s="$1" '$2 == s {print $1}'; }
hz=$(getconf CLK_TCK)
ms_per() { python3 -c "import sys; print(f'{($2 - $1) * 1000 / $hz / $3:.3f}')" "$@"; }

# ---- certificates, upstream, configs -----------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout "$work/pub-ca.key" \
  -out "$work/pub-ca.pem" -subj "/CN=Bench public CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2> /dev/null
cert() {  # NAME SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$1.key" -out "$work/$1.csr" \
    -subj "/CN=$1" 2> /dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" > "$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/pub-ca.pem" -CAkey "$work/pub-ca.key" -CAcreateserial -days 2 \
    -out "$work/$1.pem" -extfile "$work/$1.ext" 2> /dev/null
}
cert upstream 'DNS:*.bench.test,IP:127.0.0.1'
cert reverse 'DNS:reverse.bench.test'
"$build/tools/customsctl" ca gen --out "$work/ica" > /dev/null
"$build/tools/customsctl" keys gen --out "$work/keys" > /dev/null

up_port=$(free_port)
"$build/tests/support/fake_provider" --address 127.0.0.1 --port "$up_port" --tls-cert "$work/upstream.pem" \
  --tls-key "$work/upstream.key" > "$work/upstream.out" 2>&1 &
pids+=($!)
data_port=$(free_port)
"$bench" serve "$data_port" > "$work/data.out" 2>&1 &
pids+=($!)
relay_port=$(free_port)
"$bench" relay "$relay_port" "$data_port" > "$work/relay.out" 2>&1 &
pids+=($!)

mkdir -p "$work/providers"
cat > "$work/providers/bench.yaml" <<EOF
schema: customs/providers/v1
hosts:
  - {host: "*.bench.test", provider: Bench, dialect: openai, jurisdiction: US, sources: [benchmark]}
EOF
{
  echo "127.0.0.1 localhost data.bench.data"
  for ((i = 0; i < HANDSHAKES; i++)); do echo "127.0.0.1 h$i.bench.test"; done
  echo "127.0.0.1 warm.bench.test"
} > "$work/hosts"

cx_port=$(free_port)
cat > "$work/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: wire, address: 127.0.0.1, port: $cx_port, mode: forward, default_source: {jurisdiction: DE}}
  - name: reverse
    address: 127.0.0.1
    port: 0
    default_source: {jurisdiction: DE}
    tls: {cert: $work/reverse.pem, key: $work/reverse.key}
admin: {address: 127.0.0.1, port: 0}
routes:
  - {prefix: /openai/, upstream: "https://127.0.0.1:$up_port", dialect: openai, jurisdiction: US, ca_bundle: $work/pub-ca.pem}
interception:
  ca_cert: $work/ica/ca.pem
  ca_key: $work/ica/ca.key
  ports: [$up_port, 443]
  leaf_cache: $((HANDSHAKES + 100))
providers: [$work/providers/]
upstream_ca_bundle: $work/pub-ca.pem
resolve:
  data.bench.data: "127.0.0.1:$data_port"
$(awk 'NR > 1 {print "  " $2 ": \"127.0.0.1\""}' "$work/hosts")
rules: [$root/rules/]
audit:
  path: $work/audit.db
  auditor_keys: [$work/keys/auditor.pub]
  sealing_key: $work/keys/sealing.key
  signing_key: $work/keys/signing.key
  content: full
threads: $WORKERS
log: {level: info, flows: false}  # info: the listening lines name the ports
limits: {connections: 100000}
EOF
"$build/daemon/customsd" --config "$work/customsd.yaml" 2> "$work/customsd.log" &
cx_pid=$!
pids+=($cx_pid)

sq_port=$(free_port)
mkdir -p "$work/squid"
"$certgen" -c -s "$work/squid/ssl_db" -M 64MB > /dev/null
cat > "$work/squid.conf" <<EOF
http_port 127.0.0.1:$sq_port ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=64MB tls-cert=$work/ica/ca.pem tls-key=$work/ica/ca.key
sslcrtd_program $certgen -s $work/squid/ssl_db -M 64MB
sslcrtd_children 8 startup=2 idle=1
ssl_bump bump all
tls_outgoing_options cafile=$work/pub-ca.pem
hosts_file $work/hosts
dns_nameservers 127.0.0.1
http_access allow all
cache deny all
access_log none
cache_log $work/squid/cache.log
pid_filename $work/squid.pid
coredump_dir $work/squid
workers 1
shutdown_lifetime 1 seconds
EOF
if [[ $(id -u) == 0 ]]; then chown -R proxy: "$work/squid" "$work/ica"; chmod 755 "$work"; fi
setsid "$squid_bin" -N -f "$work/squid.conf" > "$work/squid/out.log" 2>&1 &
squid_sid=$!
pids+=($squid_sid)

for i in $(seq 100); do
  grep -q 'event=admin_listening' "$work/customsd.log" 2> /dev/null && python3 -c "import socket; socket.create_connection(('127.0.0.1',$sq_port),1)" 2> /dev/null && break
  sleep 0.2
done
rev_port=$(grep 'event=listening listener=reverse' "$work/customsd.log" | sed -n 's/.* port=\([0-9]*\).*/\1/p' || true)
if [[ -z $rev_port ]] || ! python3 -c "import socket; socket.create_connection(('127.0.0.1',$sq_port),1)" 2> /dev/null; then
  echo "run.sh: customsd or squid did not start; their logs:" >&2
  tail -20 "$work/customsd.log" "$work/squid/out.log" "$work/squid/cache.log" >&2 2> /dev/null || true
  exit 2
fi
sleep 1

echo "# edge benchmark: $(nproc) cores, customsd threads=$WORKERS, $(date -u +%FT%TZ)"
echo "# customsd: enforcing rules/ with an audit trail; squid $($squid_bin -v | head -1 | awk '{print $4}'): ssl_bump bump all"

# ---- 1. handshakes -------------------------------------------------------------------
handshake_run() {  # LABEL PROXY_PORT HOST_FMT NHOSTS PIDS...
  local label=$1 port=$2 fmt=$3 n=$4
  shift 4
  local before after out
  before=$(cpu_ticks "$@")
  out=$(timeout 300 "$bench" handshakes "$port" "$work/ica/ca.pem" "$fmt" "$n" "$HANDSHAKES" "$THREADS" "$up_port")
  after=$(cpu_ticks "$@")
  printf '%-34s %s cpu_ms_per_handshake=%s\n' "$label" "$out" "$(ms_per "$before" "$after" "$HANDSHAKES")"
}
squid_pids() { session_pids "$squid_sid"; }
echo "## 1. new intercepted connections (CONNECT + TLS handshake), $THREADS clients"
handshake_run "customsd, leaf cache cold" "$cx_port" "h%d.bench.test" "$HANDSHAKES" "$cx_pid"
# shellcheck disable=SC2046
handshake_run "squid ssl_bump, cert cache cold" "$sq_port" "h%d.bench.test" "$HANDSHAKES" $(squid_pids)
timeout 60 "$bench" handshakes "$cx_port" "$work/ica/ca.pem" "warm.bench.test" 1 10 1 "$up_port" > /dev/null
timeout 60 "$bench" handshakes "$sq_port" "$work/ica/ca.pem" "warm.bench.test" 1 10 1 "$up_port" > /dev/null
handshake_run "customsd, leaf cache warm" "$cx_port" "warm.bench.test" 1 "$cx_pid"
# shellcheck disable=SC2046
handshake_run "squid ssl_bump, cert cache warm" "$sq_port" "warm.bench.test" 1 $(squid_pids)

# ---- 2. requests on a kept-alive connection -------------------------------------------
echo "## 2. CPU per request on one kept-alive connection ($REQUESTS non-streamed chat completions)"
request_run() {  # LABEL ARGS...
  local label=$1 before after out
  shift
  before=$(cpu_ticks "$cx_pid")
  out=$(timeout 300 "$bench" requests "$@")
  after=$(cpu_ticks "$cx_pid")
  printf '%-34s %s cpu_us_per_request=%s\n' "$label" "$out" "$(python3 -c "print(f'{($after - $before) * 1e6 / $hz / $REQUESTS:.1f}')")"
}
timeout 60 "$bench" requests "$rev_port" "$work/pub-ca.pem" reverse.bench.test 50 > /dev/null
timeout 60 "$bench" requests "$cx_port" "$work/ica/ca.pem" warm.bench.test 50 connect "$up_port" > /dev/null
request_run "customsd reverse route (TLS)" "$rev_port" "$work/pub-ca.pem" reverse.bench.test "$REQUESTS"
request_run "customsd intercepted (CONNECT)" "$cx_port" "$work/ica/ca.pem" warm.bench.test "$REQUESTS" connect "$up_port"
request_run "customsd reverse route (TLS), again" "$rev_port" "$work/pub-ca.pem" reverse.bench.test "$REQUESTS"
request_run "customsd intercepted, again" "$cx_port" "$work/ica/ca.pem" warm.bench.test "$REQUESTS" connect "$up_port"

# ---- 3. tunnel throughput -----------------------------------------------------------
echo "## 3. tunnel throughput ($BYTES bytes each way, a host outside the catalogue)"
for dir in up down; do
  printf '%-34s %s\n' "direct ($dir)" "$(timeout 300 "$bench" transfer "$data_port" "$BYTES" "$dir")"
  printf '%-34s %s\n' "plain TCP relay ($dir)" "$(timeout 300 "$bench" transfer "$relay_port" "$BYTES" "$dir")"
  before=$(cpu_ticks "$cx_pid")
  out=$(timeout 300 "$bench" transfer "$cx_port" "$BYTES" "$dir" connect data.bench.data:443)
  after=$(cpu_ticks "$cx_pid")
  printf '%-34s %s cpu_ms_per_gb=%s\n' "customsd tunnel ($dir)" "$out" "$(python3 -c "print(f'{($after - $before) * 1000 / $hz / ($BYTES / 1e9):.1f}')")"
done

# ---- 4. memory per idle tunnel --------------------------------------------------------
echo "## 4. memory per open idle tunnel ($TUNNELS tunnels)"
rss() { awk '/VmRSS/ {print $2}' "/proc/$cx_pid/status"; }
mkfifo "$work/hold.in"
before=$(rss)
timeout 120 "$bench" hold "$cx_port" "$TUNNELS" data.bench.data:443 < "$work/hold.in" > "$work/hold.out" &
hold_pid=$!
exec 7> "$work/hold.in"
for i in $(seq 600); do grep -q holding "$work/hold.out" 2> /dev/null && break; sleep 0.2; done
sleep 1
after=$(rss)
active=$(curl -s "http://127.0.0.1:$(grep event=admin_listening "$work/customsd.log" | sed -n 's/.* port=\([0-9]*\).*/\1/p')/metrics" | awk '$1 == "customs_tunnels_active" {print $2}')
exec 7>&-
wait "$hold_pid" || true
printf 'customsd VmRSS before=%s KiB with %s tunnels=%s KiB per_tunnel=%s KiB (tunnels_active=%s)\n' "$before" "$TUNNELS" "$after" \
  "$(python3 -c "print(f'{($after - $before) / $TUNNELS:.2f}')")" "$active"
