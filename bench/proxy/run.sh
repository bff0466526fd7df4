#!/usr/bin/env bash
# Proxy benchmark (not a test): customsd's relay against nginx, on loopback,
# against the same local upstream (the fake provider), in one run.
#
#   bench/proxy/run.sh
#
# Measures, for a non-streamed chat completion (POST, JSON answer):
#   requests/s, p50 and p99 latency (wrk), and the server's CPU time per request
#   (utime + stime from /proc/PID/stat before and after, divided by requests):
#   directly against the upstream, through nginx (proxy_pass, upstream
#   keepalive) and through customsd;
# and for a streamed chat completion, TTFB and the latency of every event
# (bench/proxy/stream_client: receive time minus the upstream's
# "customs_sent_ns" stamp, same clock) directly and through customsd.
#
# Knobs (environment): DURATION (s per load run, 8), CONNECTIONS (32),
# WORKERS (customsd threads = nginx workers, 2), STREAM_REQUESTS (200).
# Loopback only; every process it starts is stopped on exit; each load run is
# bounded by DURATION, the streaming probe by 60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-2}
STREAM_REQUESTS=${STREAM_REQUESTS:-200}

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool is missing: CUSTOMS_WITH_BENCH=1 bash tools/scripts/install-deps.sh" >&2
    exit 2
  fi
done

cmake --preset release >/dev/null
cmake --build --preset release --target customsd fake_provider stream_client >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "run.sh: nothing listens on port $1" >&2
  exit 2
}

upstream_port=$(free_port)
nginx_port=$(free_port)
customsd_port=$(free_port)
admin_port=$(free_port)

# The upstream: the fake provider, stamping each streamed chunk.
"$root/build/release/tests/support/fake_provider" --address 127.0.0.1 --port "$upstream_port" --stamp \
  >"$tmp/provider.log" 2>&1 &
provider_pid=$!
pids+=("$provider_pid")
wait_port "$upstream_port"

# nginx as the current user, all paths in the temp dir.
mkdir -p "$tmp/nginx"
user_line=""
if [[ $(id -u) == 0 ]]; then user_line="user root root;"; fi
cat >"$tmp/nginx/nginx.conf" <<EOF
$user_line
worker_processes $WORKERS;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream provider { server 127.0.0.1:$upstream_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    keepalive_requests 1000000;
    location /openai/ {
      proxy_pass http://provider/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    # Streams: relayed as they arrive, as customsd does.
    location /stream/ {
      proxy_pass http://provider/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" >"$tmp/nginx/stdout.log" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$nginx_port"

cat >"$tmp/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: $customsd_port}
admin: {address: 127.0.0.1, port: $admin_port}
routes:
  - {prefix: /openai/, upstream: "http://127.0.0.1:$upstream_port", dialect: openai, jurisdiction: US}
threads: $WORKERS
log: {level: warn, flows: false}
EOF
"$root/build/release/daemon/customsd" --config "$tmp/customsd.yaml" 2>"$tmp/customsd.log" &
customsd_pid=$!
pids+=("$customsd_pid")
wait_port "$customsd_port"

cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"measure me"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
EOF

ticks_per_s=$(getconf CLK_TCK)
# CPU ticks (utime + stime) of a process and all its children's threads.
cpu_ticks() {
  local total=0 p
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
nginx_pids() { echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"; }
to_us() {  # wrk latency ("288.00us", "1.20ms", "1.01s") -> microseconds
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else { sub(/s$/, "", v); print v * 1000000 } }'
}

declare -A rps p50 p99 cpu
measure() {  # name url pids...
  local name=$1 url=$2
  shift 2
  wrk -t1 -c"$CONNECTIONS" -d1s -s "$tmp/post.lua" "$url" >/dev/null  # warm-up (pools, caches)
  local before after
  before=$(cpu_ticks "$@")
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$tmp/post.lua" "$url" >"$tmp/wrk.$name"
  after=$(cpu_ticks "$@")
  local requests errors
  requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.$name")
  errors=$(awk '/Non-2xx or 3xx responses/ {print $5}' "$tmp/wrk.$name")
  if [[ -n "$errors" ]]; then
    echo "run.sh: $name answered $errors requests with errors" >&2
    cat "$tmp/wrk.$name" >&2
    exit 1
  fi
  rps[$name]=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.$name")
  p50[$name]=$(to_us "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.$name")")
  p99[$name]=$(to_us "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.$name")")
  cpu[$name]=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
}

echo "bench/proxy: $(nproc) cores, $WORKERS workers, $CONNECTIONS connections, ${DURATION}s per run" >&2
measure direct "http://127.0.0.1:$upstream_port/v1/chat/completions" "$provider_pid"
measure nginx "http://127.0.0.1:$nginx_port/openai/v1/chat/completions" $(nginx_pids)
measure customsd "http://127.0.0.1:$customsd_port/openai/v1/chat/completions" "$customsd_pid"

stream_direct=$("$root/build/release/bench/proxy/stream_client" --port "$upstream_port" \
  --path /v1/chat/completions --requests "$STREAM_REQUESTS")
stream_nginx=$("$root/build/release/bench/proxy/stream_client" --port "$nginx_port" \
  --path /stream/v1/chat/completions --requests "$STREAM_REQUESTS")
stream_customsd=$("$root/build/release/bench/proxy/stream_client" --port "$customsd_port" \
  --path /openai/v1/chat/completions --requests "$STREAM_REQUESTS")
field() { sed -n "s/.*\b$2=\([0-9.]*\).*/\1/p" <<<"$1"; }

printf '\nNon-streamed chat completion (wrk, %s connections, %ss)\n' "$CONNECTIONS" "$DURATION"
printf '%-10s %12s %10s %10s %16s\n' "path" "requests/s" "p50 us" "p99 us" "server CPU us/req"
for n in direct nginx customsd; do
  printf '%-10s %12s %10s %10s %16s\n' "$n" "${rps[$n]}" "${p50[$n]}" "${p99[$n]}" "${cpu[$n]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\ncustomsd / nginx: CPU per request %sx (goal <= 2), p99 %sx (goal <= 1.5), requests/s %sx\n' \
  "$(ratio "${cpu[customsd]}" "${cpu[nginx]}")" "$(ratio "${p99[customsd]}" "${p99[nginx]}")" \
  "$(ratio "${rps[customsd]}" "${rps[nginx]}")"

printf '\nStreamed chat completion (%s requests, one after the other)\n' "$STREAM_REQUESTS"
printf '%-10s %8s %12s %12s %14s %14s\n' "path" "events" "TTFB p50 us" "TTFB p99 us" "event p50 us" "event p99 us"
for n in direct nginx customsd; do
  line=stream_$n
  printf '%-10s %8s %12s %12s %14s %14s\n' "$n" "$(field "${!line}" events)" \
    "$(field "${!line}" ttfb_p50_us)" "$(field "${!line}" ttfb_p99_us)" \
    "$(field "${!line}" event_p50_us)" "$(field "${!line}" event_p99_us)"
done
added() { awk -v a="$(field "$2" "$1")" -v b="$(field "$stream_direct" "$1")" 'BEGIN { printf "%.1f", a - b }'; }
printf '\nadded per event: customsd p50 %s us, p99 %s us (goal p99 < 100 us); nginx p50 %s us, p99 %s us\n' \
  "$(added event_p50_us "$stream_customsd")" "$(added event_p99_us "$stream_customsd")" \
  "$(added event_p50_us "$stream_nginx")" "$(added event_p99_us "$stream_nginx")"
printf 'added TTFB p50: customsd %s us, nginx %s us\n' \
  "$(added ttfb_p50_us "$stream_customsd")" "$(added ttfb_p50_us "$stream_nginx")"
