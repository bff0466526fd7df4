#!/usr/bin/env bash
# Proxy benchmark (not a test): customsd as a plain relay and customsd
# enforcing (all shipped packs, auditing) against nginx, on loopback, against
# the same local upstream (the fake provider), in one run.
#
#   bench/proxy/run.sh
#
# Servers: the fake provider (--stamp) as the upstream; nginx (proxy_pass,
# upstream keepalive); customsd as a plain relay (no rules, no audit); customsd
# enforcing: every pack of rules/, a listener default_source {jurisdiction: CN},
# a route to jurisdiction US, and an audit trail (keys from `customsctl keys
# gen`, content: full, commit_interval: 0ms; the store always commits with
# synchronous=FULL) in the temp dir, on the disk that holds it.
#
# Measures, for a non-streamed chat completion (POST, JSON answer, allowed):
#   requests/s, p50 and p99 latency (wrk), and the server's CPU time per request
#   (utime + stime from /proc/PID/stat before and after, divided by requests;
#   nginx: master + workers; customsd is one process, so its figure covers all
#   its threads: workers, the audit writer, the WAL checkpointer), directly
#   against the upstream, through nginx, customsd and customsd enforcing;
# for a streamed chat completion, TTFB and the latency of every event
# (bench/proxy/stream_client: receive time minus the upstream's
# "customs_sent_ns" stamp, same clock), directly and through each proxy.
#   Hold-back: the enforcing guard forwards every event when it arrives, with
#   only the text already safe (a partial word waits for the next delta), so an
#   event's latency against its own stamp is the latency customsd adds beyond
#   the hold-back. Text still held when a channel closes rides in an extra
#   delta event, measured against the stamp of the event that released it (see
#   stream_client's header; counted as "flushed"). The hold-back itself is
#   reported from customsd's customs_hold_back_seconds histogram (holds, mean,
#   bucket bound of p99); the upstream sends events back to back, so holds are
#   short here and grow with a real model's pace between deltas.
# and, for a fresh enforcing customsd in front of a second, slow fake provider
# (--event-interval-ms 600000: the first event at once, then silence), its
# resident memory (VmRSS) with STREAMS concurrent open streams
# (bench/proxy/hold_streams: every stream has had its first event and stays
# open). Last, the enforcing customsd of the load runs is stopped and its audit
# trail is checked with `customsctl audit verify`; audit refusals must be 0.
#
# Goals (docs/performance.md): enforcing vs nginx: CPU per request <= 2.5x,
# p99 <= 2x; p99 added latency per event beyond the hold-back <= 200 us;
# 10,000 open streams in < 1 GiB RSS. Plain relay vs nginx: CPU <= 1.3x,
# p99 <= 1.5x, per event < 100 us.
# The enforcing customsd's CPU is also split by thread (workers, audit
# writer, WAL checkpointer) and into user and system time, from
# /proc/PID/task/*/stat; its audit counters (customs_audit_commits_total,
# customs_audit_wal_checkpoints_total, customs_audit_records_committed_total
# from /metrics, before and after the load run) give group commits, WAL
# checkpoint runs and records per request. COMMIT_INTERVAL (default 0ms) sets
# the enforcing trails' commit_interval.
# COMPARE_BUILD=DIR (another release build directory, say of the commit before
# a change) also runs an enforcing customsd from DIR, configured the same way
# with a trail of its own, and measures it right after this build's, so that
# both see the same machine; its figures print beside this build's.
# PARTS=1 also runs a customsd that splits the enforcing one's cost: "trail"
# audits every flow as the enforcing one does but loads one pack without
# detectors (one rule for a tenant that never comes, so every text is still
# extracted and passed to an empty scan). Its CPU above the plain relay's is
# what the trail adds (with extraction); the enforcing customsd's above it,
# what the packs' inspection adds. (Rules without a trail cannot be
# configured: no audit, no egress.)
#
# Knobs (environment): DURATION (s per load run, 8), CONNECTIONS (32),
# WORKERS (customsd threads = nginx workers, 2), STREAM_REQUESTS (200),
# STREAMS (concurrent streams for the memory phase, 10000; 0 skips it),
# STREAMS_SECONDS (the most the streams may take to open, 120).
# The memory phase needs an open-file limit of 2 x STREAMS + 100 (customsd holds
# a client and an upstream socket per stream): the script raises the soft limit
# (to 65536, or the hard limit if lower) and stops with a message if that is
# not enough.
# PROFILE=1 also records the enforcing customsd during a second load run of
# DURATION s (perf record, call graphs unwound from DWARF: the release build
# keeps no frame pointers) and prints where its CPU goes by thread and by function (self and inclusive), the
# profile command beside the figures; needs perf (linux-perf) and permission to
# attach (root, or kernel.perf_event_paranoid <= 1). The profiled run is not
# counted in the figures above it. PROFILE_OUT=FILE keeps perf.data (for
# perf report -i FILE --no-inline --comm customs-w0 ...).
# Loopback only; every process it starts is stopped on exit. Bounded: each load
# run by DURATION, each streaming probe by 70 s, the memory phase by
# STREAMS_SECONDS + 30 s, the audit check by 120 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build/release

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-2}
STREAM_REQUESTS=${STREAM_REQUESTS:-200}
STREAMS=${STREAMS:-10000}
STREAMS_SECONDS=${STREAMS_SECONDS:-120}
COMPARE_BUILD=${COMPARE_BUILD:-}
if [[ -n $COMPARE_BUILD && ! -x $COMPARE_BUILD/daemon/customsd ]]; then
  echo "run.sh: COMPARE_BUILD=$COMPARE_BUILD has no daemon/customsd" >&2
  exit 2
fi

for tool in nginx wrk curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool is missing: CUSTOMS_WITH_BENCH=1 bash tools/scripts/install-deps.sh" >&2
    exit 2
  fi
done

if (( STREAMS > 0 )); then
  fds_needed=$((2 * STREAMS + 100))
  hard=$(ulimit -Hn)
  want=65536
  if [[ $hard != unlimited ]] && (( hard < want )); then want=$hard; fi
  if (( $(ulimit -Sn) < want )); then ulimit -Sn "$want" 2>/dev/null || true; fi
  if (( $(ulimit -Sn) < fds_needed )); then
    echo "run.sh: STREAMS=$STREAMS needs an open-file limit of at least $fds_needed (customsd holds a client" \
         "and an upstream socket per stream); the soft limit is $(ulimit -Sn), the hard limit $hard." >&2
    echo "run.sh: raise the hard limit (limits.conf, systemd LimitNOFILE, docker --ulimit nofile) or set a" \
         "smaller STREAMS (0 skips the memory phase)." >&2
    exit 2
  fi
fi

cmake --preset release >/dev/null
cmake --build --preset release --target customsd customsctl fake_provider stream_client hold_streams >/dev/null

# shellcheck source=bench/proxy/lib.sh
source "$root/bench/proxy/lib.sh"
bench_setup

upstream_port=$(free_port)
nginx_port=$(free_port)
customsd_port=$(free_port)
admin_port=$(free_port)
enforce_port=$(free_port)
enforce_admin_port=$(free_port)

# The upstream: the fake provider, stamping each streamed chunk.
"$build/tests/support/fake_provider" --address 127.0.0.1 --port "$upstream_port" --stamp \
  >"$tmp/provider.log" 2>&1 &
provider_pid=$!
pids+=("$provider_pid")
wait_port "$upstream_port" "$tmp/provider.log"

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
wait_port "$nginx_port" "$tmp/nginx/error.log"

# customsd as a plain relay.
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
"$build/daemon/customsd" --config "$tmp/customsd.yaml" 2>"$tmp/customsd.log" &
customsd_pid=$!
pids+=("$customsd_pid")
wait_port "$customsd_port" "$tmp/customsd.log"

# customsd enforcing: every shipped pack, CN clients by default, a US route, an
# audit trail with fresh keys.
# Each trail has its own keys: a sealing key evolves with the trail it seals.
enforcing_config() {  # NAME PORT ADMIN_PORT UPSTREAM_PORT CONNECTIONS [RULES] (keys: $tmp/NAME/keys)
  mkdir -p "$tmp/$1"
  "$build/tools/customsctl" keys gen --out "$tmp/$1/keys" >/dev/null
  cat >"$tmp/$1/customsd.yaml" <<EOF
version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: $2, default_source: {jurisdiction: CN}}
admin: {address: 127.0.0.1, port: $3}
routes:
  - {prefix: /openai/, upstream: "http://127.0.0.1:$4", dialect: openai, jurisdiction: US}
rules: ["${6:-$root/rules}"]
audit:
  path: $tmp/$1/audit.db
  auditor_keys: [$tmp/$1/keys/auditor.pub]
  sealing_key: $tmp/$1/keys/sealing.key
  signing_key: $tmp/$1/keys/signing.key
  content: full
  on_failure: refuse
  commit_interval: ${COMMIT_INTERVAL:-0ms}
limits: {connections: $5}
threads: $WORKERS
log: {level: warn, flows: false}
EOF
}
enforcing_config enforce "$enforce_port" "$enforce_admin_port" "$upstream_port" 10000
"$build/daemon/customsd" --config "$tmp/enforce/customsd.yaml" 2>"$tmp/enforce/customsd.log" &
enforce_pid=$!
pids+=("$enforce_pid")
wait_port "$enforce_port" "$tmp/enforce/customsd.log"
if [[ -n $COMPARE_BUILD ]]; then
  compare_port=$(free_port)
  compare_admin_port=$(free_port)
  enforcing_config compare "$compare_port" "$compare_admin_port" "$upstream_port" 10000
  "$COMPARE_BUILD/daemon/customsd" --config "$tmp/compare/customsd.yaml" 2>"$tmp/compare/customsd.log" &
  compare_pid=$!
  pids+=("$compare_pid")
  wait_port "$compare_port" "$tmp/compare/customsd.log"
fi

if [[ ${PARTS:-0} == 1 ]]; then
  mkdir -p "$tmp/no-detectors"
  cat >"$tmp/no-detectors/pack.yaml" <<'EOF'
schema: customs/v1
pack:
  id: bench-no-detectors
  version: "1"
rules:
  - id: bench.none
    description: Applies to no flow of the benchmark (a tenant that never comes)
    when:
      direction: request
      tenants: [bench-nobody]
    then:
      action: tag
    references: [none]
EOF
  trail_port=$(free_port)
  trail_admin_port=$(free_port)
  enforcing_config trail "$trail_port" "$trail_admin_port" "$upstream_port" 10000 "$tmp/no-detectors"
  "$build/daemon/customsd" --config "$tmp/trail/customsd.yaml" 2>"$tmp/trail/customsd.log" &
  trail_pid=$!
  pids+=("$trail_pid")
  wait_port "$trail_port" "$tmp/trail/customsd.log"
fi

cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"measure me"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
EOF

# The benchmark's request must be allowed by the enforcing customsd: a blocked
# (451) or refused (503) answer would measure something else.
verdict=$(curl -s --max-time 10 -o /dev/null -D - -X POST -H 'Content-Type: application/json' \
  -d '{"model":"bench","messages":[{"role":"user","content":"measure me"}]}' \
  "http://127.0.0.1:$enforce_port/openai/v1/chat/completions" |
  tr -d '\r' | awk -F': ' 'tolower($1) == "x-customs-verdict" { print $2 }')
if [[ $verdict != allow ]]; then
  echo "run.sh: the enforcing customsd did not allow the benchmark's request (verdict: ${verdict:-none})" >&2
  cat "$tmp/enforce/customsd.log" >&2
  exit 1
fi

ticks_per_s=$(getconf CLK_TCK)
# CPU ticks (utime + stime) of processes, all their threads included.
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

# Per thread of one process: "name utime stime" lines, threads of one kind
# (customs-w0, customs-w1, ...: workers) summed under one name.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    [[ -r $t/stat ]] || continue
    awk -v name="$(cat "$t/comm")" '{ sub(/-w[0-9]+$/, "-workers", name); print name, $14, $15 }' "$t/stat"
  done | awk '{ u[$1] += $2; s[$1] += $3 } END { for (n in u) print n, u[n], s[n] }' | sort
}

# The audit counters of an enforcing customsd: group commits, WAL checkpoint
# runs and records committed (admin port).
audit_counts() {
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
    /^customs_audit_commits_total/ { c += $2 }
    /^customs_audit_wal_checkpoints_total/ { w += $2 }
    /^customs_audit_records_committed_total/ { r += $2 }
    END { print c + 0, w + 0, r + 0 }'
}

declare -A rps p50 p99 cpu threads admin_port audit_rates
measure() {  # name url pids...
  local name=$1 url=$2
  shift 2
  wrk -t1 -c"$CONNECTIONS" -d1s -s "$tmp/post.lua" "$url" >/dev/null  # warm-up (pools, caches)
  local before after audit_before=""
  if [[ -n ${admin_port[$name]:-} ]]; then audit_before=$(audit_counts "${admin_port[$name]}"); fi
  thread_ticks "$1" >"$tmp/threads.$name.before"
  before=$(cpu_ticks "$@")
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$tmp/post.lua" "$url" >"$tmp/wrk.$name"
  after=$(cpu_ticks "$@")
  thread_ticks "$1" >"$tmp/threads.$name.after"
  local requests errors
  requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.$name")
  if [[ -n $audit_before ]]; then
    audit_rates[$name]=$(echo "$audit_before $(audit_counts "${admin_port[$name]}")" | awk -v n="$requests" '{
      printf "per request: %.3f group commits, %.3f WAL checkpoint runs, %.2f records (%.1f records per commit)",
        ($4 - $1) / n, ($5 - $2) / n, ($6 - $3) / n, ($4 > $1) ? ($6 - $3) / ($4 - $1) : 0 }')
  fi
  errors=$(awk '/Non-2xx or 3xx responses/ {print $5}' "$tmp/wrk.$name")
  if [[ -n "$errors" ]] || grep -q 'Socket errors' "$tmp/wrk.$name"; then
    echo "run.sh: $name answered ${errors:-some} requests with errors" >&2
    cat "$tmp/wrk.$name" >&2
    exit 1
  fi
  rps[$name]=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.$name")
  p50[$name]=$(to_us "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.$name")")
  p99[$name]=$(to_us "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.$name")")
  cpu[$name]=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  threads[$name]=$(join "$tmp/threads.$name.before" "$tmp/threads.$name.after" |
    awk -v hz="$ticks_per_s" -v n="$requests" '{
      u = ($4 - $2) / hz * 1e6 / n; s = ($5 - $3) / hz * 1e6 / n
      if (u + s > 0) printf "%s user %.1f + system %.1f; ", $1, u, s }')
}

echo "bench/proxy: $(nproc) cores, $WORKERS workers, $CONNECTIONS connections, ${DURATION}s per run" >&2
measure direct "http://127.0.0.1:$upstream_port/v1/chat/completions" "$provider_pid"
measure nginx "http://127.0.0.1:$nginx_port/openai/v1/chat/completions" $(nginx_pids)
measure customsd "http://127.0.0.1:$customsd_port/openai/v1/chat/completions" "$customsd_pid"
admin_port[enforcing]=$enforce_admin_port
measure enforcing "http://127.0.0.1:$enforce_port/openai/v1/chat/completions" "$enforce_pid"
if [[ -n $COMPARE_BUILD ]]; then
  admin_port[compare]=$compare_admin_port
  measure compare "http://127.0.0.1:$compare_port/openai/v1/chat/completions" "$compare_pid"
fi
if [[ ${PARTS:-0} == 1 ]]; then
  admin_port[trail]=$trail_admin_port
  measure trail "http://127.0.0.1:$trail_port/openai/v1/chat/completions" "$trail_pid"
fi

if [[ ${PROFILE:-0} == 1 ]]; then
  if ! command -v perf >/dev/null; then
    echo "run.sh: PROFILE=1 needs perf (apt-get install linux-perf)" >&2
    exit 2
  fi
  wrk -t1 -c"$CONNECTIONS" -d"$((DURATION + 2))s" -s "$tmp/post.lua" \
    "http://127.0.0.1:$enforce_port/openai/v1/chat/completions" >"$tmp/wrk.profile" &
  wrk_pid=$!
  sleep 1
  perf record -q --call-graph dwarf,16384 -F 500 -p "$enforce_pid" -o "$tmp/perf.data" -- sleep "$DURATION" 2>"$tmp/perf.record.log" || {
    echo "run.sh: perf record failed:" >&2
    cat "$tmp/perf.record.log" >&2
    exit 2
  }
  wait "$wrk_pid" || true
  profiled=$(awk '/requests in/ {print $1}' "$tmp/wrk.profile")
  printf '
Profile of the enforcing customsd (perf record --call-graph dwarf -F 500 -p PID, %ss of wrk -c%s, %s requests)
' \
    "$DURATION" "$CONNECTIONS" "$profiled"
  # awk, not head: a reader that stops early would end perf with SIGPIPE, and
  # pipefail the script. --no-inline: resolving inlined frames (addr2line) took
  # minutes per report.
  report() { perf report -i "$tmp/perf.data" --no-inline --stdio "$@" 2>/dev/null | grep -E '^ +[0-9]' || true; }
  if [[ -n ${PROFILE_OUT:-} ]]; then cp "$tmp/perf.data" "$PROFILE_OUT"; fi
  echo "by thread (share of the process's samples):"
  report --no-children --sort comm -g none | awk 'NR <= 12'
  echo "by function, self (top 30):"
  report --no-children --sort comm,symbol -g none | awk 'NR <= 30'
  echo "by function, inclusive (top 40):"
  report --children --sort symbol -g none | awk 'NR <= 40'
fi

stream_probe() {  # port path
  timeout 70 "$build/bench/proxy/stream_client" --port "$1" --path "$2" --requests "$STREAM_REQUESTS" --max-seconds 60
}
stream_direct=$(stream_probe "$upstream_port" /v1/chat/completions)
stream_nginx=$(stream_probe "$nginx_port" /stream/v1/chat/completions)
stream_customsd=$(stream_probe "$customsd_port" /openai/v1/chat/completions)
stream_enforcing=$(stream_probe "$enforce_port" /openai/v1/chat/completions)
metrics_enforcing=$(curl -s --max-time 5 "http://127.0.0.1:$enforce_admin_port/metrics")
field() { sed -n "s/.*\b$2=\([0-9.]*\).*/\1/p" <<<"$1"; }

printf '\nNon-streamed chat completion (wrk, %s connections, %ss)\n' "$CONNECTIONS" "$DURATION"
printf '%-10s %12s %10s %10s %18s\n' "path" "requests/s" "p50 us" "p99 us" "server CPU us/req"
paths="direct nginx customsd enforcing"
if [[ -n $COMPARE_BUILD ]]; then paths="$paths compare"; fi
if [[ ${PARTS:-0} == 1 ]]; then paths="$paths trail"; fi
for n in $paths; do
  printf '%-10s %12s %10s %10s %18s\n' "$n" "${rps[$n]}" "${p50[$n]}" "${p99[$n]}" "${cpu[$n]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\ncustomsd / nginx: CPU per request %sx (goal <= 1.3), p99 %sx (goal <= 1.5), requests/s %sx\n' \
  "$(ratio "${cpu[customsd]}" "${cpu[nginx]}")" "$(ratio "${p99[customsd]}" "${p99[nginx]}")" \
  "$(ratio "${rps[customsd]}" "${rps[nginx]}")"
printf 'enforcing / nginx: CPU per request %sx (goal <= 2.5), p99 %sx (goal <= 2), requests/s %sx\n' \
  "$(ratio "${cpu[enforcing]}" "${cpu[nginx]}")" "$(ratio "${p99[enforcing]}" "${p99[nginx]}")" \
  "$(ratio "${rps[enforcing]}" "${rps[nginx]}")"
printf 'customsd (relay) CPU per request by thread, us: %s\n' "${threads[customsd]}"
printf 'enforcing CPU per request by thread, us: %s\n' "${threads[enforcing]}"
printf 'enforcing audit %s\n' "${audit_rates[enforcing]}"
if [[ -n $COMPARE_BUILD ]]; then
  printf 'compare (%s) / nginx: CPU per request %sx, p99 %sx; enforcing / compare: CPU %sx, p99 %sx\n' \
    "$COMPARE_BUILD" "$(ratio "${cpu[compare]}" "${cpu[nginx]}")" "$(ratio "${p99[compare]}" "${p99[nginx]}")" \
    "$(ratio "${cpu[enforcing]}" "${cpu[compare]}")" "$(ratio "${p99[enforcing]}" "${p99[compare]}")"
  printf 'compare CPU per request by thread, us: %s\n' "${threads[compare]}"
  printf 'compare audit %s\n' "${audit_rates[compare]}"
fi
if [[ ${PARTS:-0} == 1 ]]; then
  added() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f us (%.2fx nginx)", a - b, (a - b) / n }'; }
  printf 'parts: the trail without detectors costs %sx nginx, %s above the relay; the packs add %s above that\n' \
    "$(ratio "${cpu[trail]}" "${cpu[nginx]}")" "$(added "${cpu[trail]}" "${cpu[customsd]}" "${cpu[nginx]}")" \
    "$(added "${cpu[enforcing]}" "${cpu[trail]}" "${cpu[nginx]}")"
  printf 'trail CPU per request by thread, us: %s\n' "${threads[trail]}"
  printf 'trail audit %s\n' "${audit_rates[trail]}"
fi

printf '\nStreamed chat completion (%s requests, one after the other)\n' "$STREAM_REQUESTS"
printf '%-10s %8s %8s %12s %12s %14s %14s\n' "path" "events" "flushed" "TTFB p50 us" "TTFB p99 us" \
  "event p50 us" "event p99 us"
for n in direct nginx customsd enforcing; do
  line=stream_$n
  printf '%-10s %8s %8s %12s %12s %14s %14s\n' "$n" "$(field "${!line}" events)" "$(field "${!line}" flushed)" \
    "$(field "${!line}" ttfb_p50_us)" "$(field "${!line}" ttfb_p99_us)" \
    "$(field "${!line}" event_p50_us)" "$(field "${!line}" event_p99_us)"
done
added() { awk -v a="$(field "$2" "$1")" -v b="$(field "$stream_direct" "$1")" 'BEGIN { printf "%.1f", a - b }'; }
printf '\nadded per event: nginx p50 %s us, p99 %s us; customsd p50 %s us, p99 %s us (goal p99 < 100 us)\n' \
  "$(added event_p50_us "$stream_nginx")" "$(added event_p99_us "$stream_nginx")" \
  "$(added event_p50_us "$stream_customsd")" "$(added event_p99_us "$stream_customsd")"
printf 'added per event beyond the hold-back: enforcing p50 %s us, p99 %s us (goal p99 <= 200 us)\n' \
  "$(added event_p50_us "$stream_enforcing")" "$(added event_p99_us "$stream_enforcing")"
printf 'added TTFB p50: nginx %s us, customsd %s us, enforcing %s us\n' \
  "$(added ttfb_p50_us "$stream_nginx")" "$(added ttfb_p50_us "$stream_customsd")" \
  "$(added ttfb_p50_us "$stream_enforcing")"
# The hold-back as customsd measured it: holds, mean, and the bucket bound below
# which 99% of them ended.
awk '
  /^customs_hold_back_seconds_bucket/ {
    le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); n++; les[n] = le; cum[n] = $2 }
  /^customs_hold_back_seconds_sum/ { sum = $2 }
  /^customs_hold_back_seconds_count/ { count = $2 }
  END {
    if (count == 0) { print "hold-back (customs_hold_back_seconds): no text was held"; exit }
    for (i = 1; i <= n; i++) if (cum[i] >= 0.99 * count) { p99 = les[i]; break }
    printf "hold-back (customs_hold_back_seconds, enforcing): %d holds, mean %.1f us, p99 <= %s s\n",
      count, sum / count * 1e6, p99
  }' <<<"$metrics_enforcing"

failed=""
if (( STREAMS > 0 )); then
  slow_port=$(free_port)
  mem_port=$(free_port)
  mem_admin_port=$(free_port)
  "$build/tests/support/fake_provider" --address 127.0.0.1 --port "$slow_port" --event-interval-ms 600000 \
    >"$tmp/slow_provider.log" 2>&1 &
  slow_pid=$!
  pids+=("$slow_pid")
  wait_port "$slow_port" "$tmp/slow_provider.log"
  enforcing_config memory "$mem_port" "$mem_admin_port" "$slow_port" $((STREAMS + 100))
  "$build/daemon/customsd" --config "$tmp/memory/customsd.yaml" 2>"$tmp/memory/customsd.log" &
  mem_pid=$!
  pids+=("$mem_pid")
  wait_port "$mem_port" "$tmp/memory/customsd.log"
  held=$(timeout $((STREAMS_SECONDS + 30)) "$build/bench/proxy/hold_streams" --port "$mem_port" --pid "$mem_pid" \
    --streams "$STREAMS" --max-seconds "$STREAMS_SECONDS" --path /openai/v1/chat/completions) || true
  printf '\nConcurrent open streams through a fresh enforcing customsd (hold_streams)\n%s\n' \
    "${held:-hold_streams gave no result}"
  if [[ $(field "$held" open) == "$STREAMS" && $held != *error=* ]]; then
    rss=$(field "$held" rss_mib)
    before=$(field "$held" rss_before_mib)
    printf '%s open streams: RSS %s MiB (idle before: %s MiB, peak %s MiB), %s KiB per stream (goal: 10000 streams < 1024 MiB)\n' \
      "$STREAMS" "$rss" "$before" "$(field "$held" hwm_mib)" \
      "$(awk -v a="$rss" -v b="$before" -v n="$STREAMS" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')"
  else
    echo "run.sh: the memory phase failed: not every stream was open (see the line above); customsd's log:" >&2
    tail -5 "$tmp/memory/customsd.log" >&2
    failed="memory"
  fi
  kill "$mem_pid" "$slow_pid" 2>/dev/null || true
fi

# The enforcing customsd's audit trail: stop it (SIGTERM drains and closes the
# store), then verify the chain, MACs and checkpoint signatures.
refusals=$(awk '/^customs_audit_refusals_total/ { s += $2 } END { print s + 0 }' <<<"$metrics_enforcing")
committed=$(awk '/^customs_audit_records_committed_total/ { s += $2 } END { print s + 0 }' <<<"$metrics_enforcing")
kill -TERM "$enforce_pid"
wait "$enforce_pid" 2>/dev/null || true
if verify=$(timeout 120 "$build/tools/customsctl" audit verify --db "$tmp/enforce/audit.db" \
    --seed "$tmp/enforce/keys/sealing.seed" --signer "$tmp/enforce/keys/signing.pub" 2>&1); then
  verdict="verify passed"
else
  verdict="VERIFY FAILED"
  failed="$failed audit"
fi
if [[ $refusals != 0 ]]; then failed="$failed refusals"; fi
printf '\nAudit trail of the enforcing customsd: %s records committed before the stop, %s refusals; %s: %s\n' \
  "$committed" "$refusals" "$verdict" "$(tail -1 <<<"$verify")"
if [[ -n $failed ]]; then
  echo "run.sh: failed:$failed" >&2
  exit 1
fi
