#!/usr/bin/env bash
# Instructions per request of the enforcing customsd, by thread (not a test):
# the benchmark's enforcing customsd (every pack of rules/, a CN listener, a
# US route, an audit trail with content: full, one worker thread) runs under
# valgrind's callgrind; after a warm-up its counters are zeroed, wrk posts the
# benchmark's request on 4 connections for DURATION seconds, and the counts are dumped.
# Instruction counts do not move with the machine's load as CPU time does,
# so a change to the hot path can be judged in one run each before and after.
# System time (sockets, fsync) is not counted: bench/proxy/run.sh measures it.
#
#   bench/proxy/count.sh [BUILD_DIR]      # default build/release; DURATION=10 (s)
#   STREAM=1 bench/proxy/count.sh         # the same request streamed (6 SSE events back)
#   RULES=DIR bench/proxy/count.sh        # other packs than rules/ (say, one without detectors)
#   RELAY=1 bench/proxy/count.sh          # the plain relay: no rules, no audit trail
#
# Prints, per thread, instructions per request; OUT=DIR keeps the callgrind
# files (callgrind_annotate --inclusive=yes DIR/cg.PID.1-NN shows by function).
# Needs valgrind and wrk (CUSTOMS_WITH_BENCH=1 tools/scripts/install-deps.sh).
# Loopback only; every process it starts is stopped on exit. Bounded: startup
# under valgrind by 60 s, the load by DURATION + 3 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${1:-$root/build/release}
DURATION=${DURATION:-10}
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "count.sh: $tool is missing" >&2; exit 2; }
done
[[ -x $build/daemon/customsd ]] || { echo "count.sh: no $build/daemon/customsd" >&2; exit 2; }

# shellcheck source=bench/proxy/lib.sh
source "$root/bench/proxy/lib.sh"
bench_setup
out=${OUT:-$tmp/cg}
mkdir -p "$out"

upstream_port=$(free_port)
port=$(free_port)
admin_port=$(free_port)
"$build/tests/support/fake_provider" --address 127.0.0.1 --port "$upstream_port" >"$tmp/provider.log" 2>&1 &
pids+=($!)
wait_port "$upstream_port" "$tmp/provider.log"
"$build/tools/customsctl" keys gen --out "$tmp/keys" >/dev/null
enforce="rules: [\"${RULES:-$root/rules}\"]
audit:
  path: $tmp/audit.db
  auditor_keys: [$tmp/keys/auditor.pub]
  sealing_key: $tmp/keys/sealing.key
  signing_key: $tmp/keys/signing.key
  content: full
  on_failure: refuse
  commit_interval: 0ms"
[[ ${RELAY:-0} == 1 ]] && enforce=""
cat >"$tmp/customsd.yaml" <<EOC
version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: $port, default_source: {jurisdiction: CN}}
admin: {address: 127.0.0.1, port: $admin_port}
routes:
  - {prefix: /openai/, upstream: "http://127.0.0.1:$upstream_port", dialect: openai, jurisdiction: US}
$enforce
threads: 1
log: {level: warn, flows: false}
EOC
valgrind --tool=callgrind --separate-threads=yes --dump-instr=no --callgrind-out-file="$out/cg.%p" \
  "$build/daemon/customsd" --config "$tmp/customsd.yaml" 2>"$tmp/valgrind.log" &
vg=$!
pids+=("$vg")
wait_port "$port" "$tmp/valgrind.log" 60
stream=false
[[ ${STREAM:-0} == 1 ]] && stream=true
cat >"$tmp/post.lua" <<EOL
wrk.method = "POST"
wrk.body = '{"model":"bench","stream":$stream,"messages":[{"role":"user","content":"measure me"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
EOL
url="http://127.0.0.1:$port/openai/v1/chat/completions"
wrk -t1 -c4 -d3s -s "$tmp/post.lua" "$url" >/dev/null  # warm-up: pools, caches, the DFA
callgrind_control -z "$vg" >/dev/null 2>&1
timeout $((DURATION + 3)) wrk -t1 -c4 -d"${DURATION}s" -s "$tmp/post.lua" "$url" >"$tmp/wrk.txt"
callgrind_control -d "$vg" >/dev/null 2>&1
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
if grep -q 'Non-2xx\|Socket errors' "$tmp/wrk.txt"; then
  echo "count.sh: some requests failed:" >&2
  cat "$tmp/wrk.txt" >&2
  exit 1
fi
sleep 1
# Thread names: the dump after zeroing is part 1; the thread's name is read
# from the functions it ran.
printf 'bench/proxy/count.sh: %s requests (stream: %s) in %ss under callgrind (%s)\n' "$requests" "$stream" "$DURATION" "$build"
printf '%-16s %14s %12s\n' thread instructions "per request"
for f in "$out"/cg."$vg".1-*; do
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  [[ -n $total ]] && (( total / requests > 0 )) || continue
  name=other
  if grep -q 'server::start' "$f"; then name=worker
  elif grep -q 'wal_checkpoint' "$f"; then name=checkpointer
  elif grep -q 'store_impl::run()' "$f" || grep -q 'commit_batch' "$f"; then name=audit-writer
  fi
  printf '%-16s %14s %12s\n' "$name" "$total" "$((total / requests))"
done
