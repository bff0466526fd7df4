#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang-14, ASan + UBSan) and runs
# each for a bounded time over its seed corpus, then prints executions and
# coverage per target. A crash, leak, timeout or out-of-memory fails the run;
# the log then holds the sanitizer report and the input in base64, and how to
# keep it as a regression seed (tests/fuzz/README.md).
#
# Usage: tools/scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 20); TARGET defaults to every tests/fuzz target.
# Environment: FUZZ_RUNS caps the executions per target (default: no cap);
# FUZZ_TIMEOUT is the seconds one input may take (default 30); FUZZ_SEED fixes
# libFuzzer's random seed (default: a new one each run); FUZZ_ARGS adds
# libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
shift || true

bash tools/scripts/install-deps.sh
cmake --preset fuzz >/dev/null
build_start=$SECONDS
cmake --build --preset fuzz
echo "fuzz: build took $((SECONDS - build_start)) s"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

out=build/fuzz/fuzz-runs
mkdir -p "$out"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
failed=()
rows=()
for t in "${targets[@]}"; do
  bin=build/fuzz/tests/fuzz/$t
  seeds=tests/fuzz/corpus/$t
  if [[ ! -x $bin || ! -d $seeds ]]; then
    echo "fuzz: no target $t (binary $bin, seeds $seeds)" >&2
    failed+=("$t")
    continue
  fi
  # The first folder is where libFuzzer writes the inputs it finds: a scratch
  # folder (kept between local runs, so coverage accumulates), never the seeds.
  work=$out/$t/corpus
  artifacts=$out/$t/artifacts/
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  # The RSS bound is 4 GiB: under ASan freed memory stays in quarantine and the
  # allocator's caches, so a fast YAML target (fuzz_catalogue, ~1,600 inputs/s)
  # passed 2 GiB of RSS in 20 s with no leak reported (LeakSanitizer checks
  # every input whose allocations and frees do not balance).
  args=(-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-30}" -rss_limit_mb=4096
        -print_final_stats=1 -artifact_prefix="$artifacts")
  if [[ -n ${FUZZ_RUNS:-} ]]; then args+=(-runs="$FUZZ_RUNS"); fi
  if [[ -n ${FUZZ_SEED:-} ]]; then args+=(-seed="$FUZZ_SEED"); fi
  # tests/fuzz/dict/NAME.dict serves every target named fuzz_NAME*.
  for d in tests/fuzz/dict/*.dict; do
    if [[ $t == fuzz_$(basename "$d" .dict)* ]]; then
      args+=(-dict="$d")
      break
    fi
  done
  # shellcheck disable=SC2206
  if [[ -n ${FUZZ_ARGS:-} ]]; then args+=($FUZZ_ARGS); fi
  log=$out/$t/log
  echo "fuzz: $t for ${seconds} s"
  status=0
  # A hard deadline besides libFuzzer's own: once, a target that hit the RSS
  # bound did not exit (its out-of-memory handler hung), which would hold CI.
  timeout -k 10 $((seconds + 120)) "$bin" "${args[@]}" "$work" "$seeds" >"$log" 2>&1 || status=$?
  # The last status line ("#N ... cov: C ft: F corp: U/S ...") and the final stats.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  execs=$(sed -nE 's/^stat::number_of_executed_units: +([0-9]+)/\1/p' "$log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: +([0-9]+)/\1/p' "$log" | tail -n 1)
  rss=$(sed -nE 's/^stat::peak_rss_mb: +([0-9]+)/\1/p' "$log" | tail -n 1)
  result=ok
  if ((status != 0)); then
    result="FAILED ($status)"
    failed+=("$t")
    echo "fuzz: $t FAILED; the end of its log:" >&2
    tail -n 80 "$log" >&2
    for a in "$artifacts"*; do
      [[ -f $a ]] || continue
      name=$(basename "$a")
      echo "fuzz: $t saved the input $name ($(stat -c %s "$a") bytes); keep it as a regression seed with:" >&2
      echo "  base64 -d > tests/fuzz/corpus/$t/regress-<what-it-shows> <<'B64'" >&2
      echo "  $(base64 -w 0 "$a")" >&2
      echo "  B64" >&2
    done
  fi
  rows+=("$(printf '%-24s %6s %12s %9s %7s %8s %7s %7s  %s' "$t" "$seconds" "${execs:--}" "${rate:--}" \
            "${cov:--}" "${ft:--}" "${corp:--}" "${rss:--}" "$result")")
done

printf '\n%-24s %6s %12s %9s %7s %8s %7s %7s  %s\n' target seconds execs exec/s cov ft corpus rss_mb result
for r in "${rows[@]}"; do echo "$r"; done
if ((${#failed[@]} > 0)); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
