# Shared by bench/proxy/run.sh and bench/proxy/count.sh (sourced, not run):
# a temp dir and the processes to stop on exit, a free loopback port, and a
# wait for a port to listen.

# Sets tmp (a fresh temp dir) and pids (processes to stop); on exit, stops
# them and removes tmp.
bench_setup() {
  tmp=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# PORT [LOG] [SECONDS]: waits until something listens on 127.0.0.1:PORT, at
# most SECONDS (20: loading every pack takes a few seconds); else prints the
# end of LOG and exits 2.
wait_port() {
  local tries=$((${3:-20} * 20))
  for _ in $(seq "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "${0##*/}: nothing listens on port $1" >&2
  if [[ -n ${2:-} ]]; then tail -20 "$2" >&2; fi
  exit 2
}
