# Shared pieces of the edge shell tests (sourced): certificates made with the
# openssl command, the fake provider and customsd as background processes,
# waits on their logs, and checks that say what failed.
#
# Expects: $build (the build folder), $work (a scratch folder).

customsd=$build/daemon/customsd
customsctl=$build/tools/customsctl
fake_provider=$build/tests/support/fake_provider
pids=()

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do
    [[ -f $f ]] && { echo "---- $f" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# A "public" CA and a server certificate for the given DNS names, signed by it:
#   make_public_ca; make_server_cert NAME DNS...
make_public_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$work/pub-ca.key" -out "$work/pub-ca.pem" -subj "/O=Customs tests/CN=Public test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
make_server_cert() {
  local name=$1
  shift
  local san="" d
  for d in "$@"; do san+="${san:+,}DNS:$d"; done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$name.key" \
    -out "$work/$name.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n' "$san" > "$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$work/pub-ca.pem" -CAkey "$work/pub-ca.key" -CAcreateserial \
    -days 2 -out "$work/$name.pem" -extfile "$work/$name.ext" 2>/dev/null
}

# start_fake NAME CERT_STEM ADDRESS [fake_provider options...]: starts a TLS fake
# provider, sets ${NAME}_port.
start_fake() {
  local name=$1 stem=$2 address=$3
  shift 3
  "$fake_provider" --address "$address" --port 0 --tls-cert "$work/$stem.pem" --tls-key "$work/$stem.key" "$@" \
    > "$work/$name.out" 2> "$work/$name.log" &
  pids+=($!)
  local i
  for i in $(seq 100); do
    if grep -q 'listening on' "$work/$name.out" 2>/dev/null; then
      printf -v "${name}_port" '%s' "$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$work/$name.out" | head -1)"
      return 0
    fi
    sleep 0.1
  done
  fail "$name did not start"
}

# start_customsd CONFIG: sets customsd_port (first listener) and admin_port.
start_customsd() {
  "$customsd" --config "$1" 2> "$work/customsd.log" &
  pids+=($!)
  local i
  for i in $(seq 200); do
    if grep -q 'event=admin_listening' "$work/customsd.log" 2>/dev/null; then
      customsd_port=$(grep 'event=listening' "$work/customsd.log" | head -1 | sed -n 's/.* port=\([0-9]*\).*/\1/p')
      admin_port=$(grep 'event=admin_listening' "$work/customsd.log" | sed -n 's/.* port=\([0-9]*\).*/\1/p')
      return 0
    fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then fail "customsd exited"; fi
    sleep 0.1
  done
  fail "customsd did not start"
}

# The audit trail config block and keys.
make_audit_keys() { "$customsctl" keys gen --out "$work/keys" > /dev/null; }
audit_yaml() {
  cat <<EOF
audit:
  path: $work/audit.db
  auditor_keys: [$work/keys/auditor.pub]
  sealing_key: $work/keys/sealing.key
  signing_key: $work/keys/signing.key
  content: full
EOF
}
verify_audit() {
  "$customsctl" audit verify --db "$work/audit.db" --seed "$work/keys/sealing.seed" \
    --signer "$work/keys/signing.pub" > "$work/verify.log" 2>&1 || fail "audit verify failed"
}
# audit_actions: the index action and route of every record, one "action route" per line.
audit_actions() {
  "$customsctl" audit export --db "$work/audit.db" --key "$work/keys/auditor.key" --format jsonl 2> /dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l); print(r.get("action",""), r.get("route",""))'
}
metric() { curl -s "http://127.0.0.1:$admin_port/metrics" | grep -F "$1 " | awk '{print $2}'; }

chat_body() {  # PROMPT STREAM(true|false)
  python3 -c 'import json,sys; print(json.dumps({"model":"gpt-test","stream":sys.argv[2]=="true","messages":[{"role":"user","content":sys.argv[1]}]}))' "$1" "$2"
}

# The cases both edge modes check, through whatever `curl` options are given
# (a proxy, or none for transparent interception):
# a blocked prompt gets 451 in the OpenAI error shape...
expect_blocked() {
  local code
  code=$(curl -sS -o "$work/blocked.json" -w '%{http_code}' "$@" https://api.openai.com/v1/chat/completions \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-test' \
    -d "$(chat_body 'My resident ID is 11010519491231002X, please check it.' false)") || fail "blocked: curl failed"
  [[ $code == 451 ]] || fail "blocked prompt: HTTP $code, expected 451: $(cat "$work/blocked.json")"
  grep -q '"customs_blocked"' "$work/blocked.json" || fail "blocked prompt: no customs_blocked code"
}
# ...a streamed answer arrives with the phone number (split across deltas) redacted...
expect_redacted_stream() {
  curl -sS -N "$@" https://api.openai.com/v1/chat/completions -H 'Content-Type: application/json' \
    -d "$(chat_body 'What is your number?' true)" > "$work/stream.txt" || fail "streamed request failed"
  local text
  text=$(python3 -c 'import json,sys
out=""
for line in open(sys.argv[1]):
    line=line.strip()
    if line.startswith("data: {"):
        for c in json.loads(line[6:]).get("choices",[]): out += c.get("delta",{}).get("content") or ""
print(out)' "$work/stream.txt")
  [[ $text == "Sure, call [REDACTED:pi.phone] any time." ]] || fail "stream text: '$text'"
  grep -q 'data: \[DONE\]' "$work/stream.txt" || fail "stream did not end normally"
}
# ...and a host outside the catalogue is tunnelled: curl checks tunnel.test's own certificate.
expect_tunnelled() {
  local code
  code=$(curl -sS -o "$work/site.json" -w '%{http_code}' "$@" --cacert "$work/pub-ca.pem" \
    https://tunnel.test/v1/chat/completions -H 'Content-Type: application/json' \
    -d "$(chat_body 'My resident ID is 11010519491231002X' false)") || fail "tunnel: curl failed"
  [[ $code == 200 ]] || fail "tunnel: HTTP $code"
}
