#!/usr/bin/env bash
# The manual pages of docs/man/ against the built binaries and the config reader.
#
#   man_pages_test.sh SOURCE_DIR CUSTOMSD CUSTOMSCTL               check the pages
#   man_pages_test.sh SOURCE_DIR CUSTOMSD CUSTOMSCTL --self-test   break copies of
#       the pages in known ways and fail unless each break is reported
#
# 1. Every page renders without a warning (groff -man -ww).
# 2. customsd.8: every long option `customsd --help` prints is in the page, and
#    every option of its "options:" block (short forms too) in OPTIONS; its
#    signals in SIGNALS, its environment variables in ENVIRONMENT, its exit
#    codes in EXIT STATUS; and no option the page names is missing from --help.
# 3. customsctl.1: every command `customsctl --help` lists has a subsection
#    ("GROUP COMMAND") and no subsection names a command that does not exist;
#    every option of the usage of `customsctl GROUP COMMAND --help` is in that
#    subsection, every FILTERS option in the Filters subsection, every other
#    option of the help anywhere in the page; every option a subsection names is
#    in that command's help; the top-level options are in OPTIONS and the exit
#    codes in EXIT STATUS.
# 4. customsd.yaml.5: every top-level key of config/customsd.yaml and
#    config/edge.example.yaml is in TOP-LEVEL KEYS, and every key that
#    daemon/config.cpp reads is in the page.
# 5. customs-rules.5: every key of rules/schema.json is in the page, the
#    top-level ones in TOP-LEVEL KEYS.
# Pages are compared as rendered (plain text, no hyphenation, one very long
# line per paragraph), so "\-\-config" in the source is "--config" here.
# Exit codes: 0 ok, 1 a check failed, 2 usage error, 77 groff is not installed.
set -u

if [ $# -lt 3 ] || [ $# -gt 4 ] || { [ $# -eq 4 ] && [ "$4" != --self-test ]; }; then
  echo "usage: $0 SOURCE_DIR CUSTOMSD CUSTOMSCTL [--self-test]" >&2
  exit 2
fi
src=$1
daemon=$2
ctl=$3
self_test=${4:-}

if ! command -v groff >/dev/null 2>&1; then
  echo "SKIP: groff is not installed (Debian: groff-base)" >&2
  exit 77
fi

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# has_word TEXT WORD: WORD stands alone in TEXT (not as part of a longer name).
has_word() { [[ "$1" =~ (^|[^A-Za-z0-9_-])"$2"([^A-Za-z0-9_-]|$) ]]; }
# in_list LIST WORD: WORD is one of the lines of LIST.
in_list() { [[ $'\n'"$1"$'\n' == *$'\n'"$2"$'\n'* ]]; }
# long_options TEXT: the long options of TEXT (repeats included) into the
# array OPTS. In bash, without a subshell: the check runs it some hundred times.
long_options() {
  local t=$1 re='--[a-z][a-z-]*'
  OPTS=()
  while [[ $t =~ $re ]]; do
    OPTS+=("${BASH_REMATCH[0]}")
    t=${t#*"${BASH_REMATCH[0]}"}
  done
}

# each_option FROM IN MESSAGE: every long option named in FROM is a word of IN;
# else fails with MESSAGE, its @ replaced by the option.
each_option() {
  local o
  long_options "$1"
  for o in "${OPTS[@]}"; do
    has_word "$2" "$o" || fail "${3//@/$o}"
  done
}

# render PAGE: the page as plain text: no bold or underline, no hyphenation,
# lines as long as the paragraph.
render() {
  groff -man -Tascii -P-c -P-b -P-u -P-o -rLL=2000n -rHY=0 "$1" 2>/dev/null
}
# section TEXT NAME: the body of the section (.SH, at column 0) NAME.
section() {
  awk -v name="$2" '$0 == name {f = 1; next} f && /^[^ ]/ {exit} f {print}' <<<"$1"
}
# subsection TEXT NAME: the body of the subsection (.SS, at column 3) NAME.
subsection() {
  awk -v name="   $2" '$0 == name {f = 1; next} f && /^([^ ]| [^ ]|  [^ ]|   [^ ])/ {exit} f {print}' <<<"$1"
}
# The usage lines of a help text: from "usage:" to the first line that is not
# indented, without a FILTERS block.
usage_of() {
  awk '/^usage:/ {u = 1; print; next} u && /^[ \t]/ {print; next} {u = 0}' <<<"$1"
}
filters_of() {
  awk '/^FILTERS:/ {f = 1; print; next} f && /^[ \t]/ {print; next} {f = 0}' <<<"$1"
}

# help_of NAME BINARY ARGS...: BINARY ARGS --help into HELP, run once per NAME
# (the self-test checks the pages many times against the same binaries).
declare -A help_cache=()
help_of() {
  local name=$1
  shift
  if [[ ! -v help_cache[$name] ]]; then
    help_cache[$name]=$("$@" --help 2>&1) || fail "'$name --help' failed"
  fi
  HELP=${help_cache[$name]}
}

# check_pages DIR: every check on the pages in DIR; failures counted in $failures.
check_pages() {
  local dir=$1 page warnings text help o s c g line cmd sect sub_help usage filters all filters_sect
  for page in customsd.8 customsctl.1 customsd.yaml.5 customs-rules.5; do
    [ -f "$dir/$page" ] || fail "$page: missing"
  done

  # ---- 1. rendering warnings
  for page in "$dir"/*.[1-9]; do
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
    [ -z "$warnings" ] || fail "$(basename "$page"): groff warns: $warnings"
  done

  # ---- 2. customsd.8
  text=$(render "$dir/customsd.8")
  help_of customsd "$daemon"
  help=$HELP
  long_options "$help"
  for o in "${OPTS[@]}"; do
    has_word "$text" "$o" || fail "customsd.8: $o (in customsd --help) is not in the page"
  done
  sect=$(section "$text" OPTIONS)
  for o in $(awk '/^options:/ {f = 1; next} f && /^  -/ {print} f && !/^ / {f = 0}' <<<"$help" |
             grep -oE -- '(^| )--?[A-Za-z][a-z-]*' | tr -d ' ' | LC_ALL=C sort -u); do
    has_word "$sect" "$o" || fail "customsd.8: $o (in customsd --help) is not in OPTIONS"
  done
  long_options "$text"
  for o in "${OPTS[@]}"; do
    has_word "$help" "$o" || fail "customsd.8: names $o, which customsd --help does not print"
  done
  sect=$(section "$text" SIGNALS)
  for s in $(grep -oE 'SIG[A-Z]+' <<<"$help" | sort -u); do
    has_word "$sect" "$s" || fail "customsd.8: $s (in customsd --help) is not in SIGNALS"
  done
  sect=$(section "$text" ENVIRONMENT)
  for s in $(grep -E '^environment:' <<<"$help" | grep -oE '[A-Z][A-Z0-9]*_[A-Z0-9_]+' | sort -u); do
    has_word "$sect" "$s" || fail "customsd.8: $s (in customsd --help) is not in ENVIRONMENT"
  done
  check_exit_codes customsd.8 "$text" "$help"

  # ---- 3. customsctl.1
  text=$(render "$dir/customsctl.1")
  help_of customsctl "$ctl"
  help=$HELP
  local commands=""
  while read -r g c _; do
    if [[ "$c" =~ ^[a-z][a-z|-]*$ ]]; then
      for cmd in ${c//|/ }; do commands+="$g $cmd"$'\n'; done
    else
      commands+="$g"$'\n'
    fi
  done < <(grep -E '^  [a-z]' <<<"$help" | grep -vE '^  customsctl ')
  [ "$(grep -c . <<<"$commands")" -ge 10 ] || fail "customsctl --help: found only [${commands//$'\n'/ }]"
  all=""
  filters_sect=$(subsection "$text" Filters)
  while read -r cmd; do
    [ -n "$cmd" ] || continue
    # shellcheck disable=SC2086 # "GROUP COMMAND" are two words
    help_of "customsctl $cmd" "$ctl" $cmd
    sub_help=$HELP
    sect=$(subsection "$text" "$cmd")
    if [ -z "$sect" ]; then
      fail "customsctl.1: no subsection \"$cmd\""
      continue
    fi
    usage=$(usage_of "$sub_help")
    filters=$(filters_of "$sub_help")
    each_option "$usage" "$sect" "customsctl.1: @ (usage of customsctl $cmd) is not in subsection \"$cmd\""
    each_option "$filters" "$filters_sect" "customsctl.1: @ (FILTERS of customsctl $cmd) is not in subsection \"Filters\""
    each_option "$sub_help" "$text" "customsctl.1: @ (in customsctl $cmd --help) is not in the page"
    each_option "$sect" "$sub_help" "customsctl.1: subsection \"$cmd\" names @, which customsctl $cmd --help does not print"
    all+="$sub_help"$'\n'
  done <<<"$commands"
  long_options "$filters_sect"
  for o in "${OPTS[@]}"; do
    has_word "$all" "$o" || fail "customsctl.1: subsection \"Filters\" names $o, which no command's --help prints"
  done
  # Every subsection of COMMANDS but Filters is a command.
  while IFS= read -r line; do
    line=${line#   }
    [ "$line" = Filters ] || in_list "$commands" "$line" ||
      fail "customsctl.1: subsection \"$line\" is not a command of customsctl --help"
  done < <(section "$text" COMMANDS | grep -E '^   [^ ]')
  sect=$(section "$text" OPTIONS)
  # The top-level options: the lines "  --version" and "  customsctl ... --help".
  long_options "$(grep -E '^  (--|customsctl )' <<<"$help")"
  for o in "${OPTS[@]}"; do
    has_word "$sect" "$o" || fail "customsctl.1: $o (in customsctl --help) is not in OPTIONS"
  done
  check_exit_codes customsctl.1 "$text" "$help"

  # ---- 4. customsd.yaml.5
  text=$(render "$dir/customsd.yaml.5")
  sect=$(section "$text" "TOP-LEVEL KEYS")
  for c in "$src/config/customsd.yaml" "$src/config/edge.example.yaml"; do
    for s in $(grep -oE '^[a-z_]+:' "$c" | tr -d ':' | sort -u); do
      has_word "$sect" "$s" || fail "customsd.yaml.5: top-level key $s (in ${c#"$src"/}) is not in TOP-LEVEL KEYS"
    done
  done
  # The keys the reader knows: walker fields {"key", required, ...} and the
  # size/count/time fields of limits.
  local keys
  keys=$(grep -oE '\{"[a-z_]+", (true|false),|(size|count|time)\("[a-z_]+",' "$src/daemon/config.cpp" |
         grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
  [ "$(grep -c . <<<"$keys")" -ge 50 ] || fail "daemon/config.cpp: found only [${keys//$'\n'/ }]"
  for s in $keys; do
    has_word "$text" "$s" || fail "customsd.yaml.5: key $s (read by daemon/config.cpp) is not in the page"
  done

  # ---- 5. customs-rules.5
  text=$(render "$dir/customs-rules.5")
  if command -v python3 >/dev/null 2>&1; then
    keys=$(python3 - "$src/rules/schema.json" <<'EOF'
import json, sys
keys = set()
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                keys.update(v)
            walk(v)
    elif isinstance(node, list):
        for x in node:
            walk(x)
walk(json.load(open(sys.argv[1])))
print("\n".join(sorted(keys)))
EOF
    ) || fail "rules/schema.json: cannot read its keys"
    [ "$(grep -c . <<<"$keys")" -ge 50 ] || fail "rules/schema.json: found only [${keys//$'\n'/ }]"
    for s in $keys; do
      has_word "$text" "$s" || fail "customs-rules.5: key $s (in rules/schema.json) is not in the page"
    done
    sect=$(section "$text" "TOP-LEVEL KEYS")
    for s in $(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["properties"]))' \
               "$src/rules/schema.json"); do
      has_word "$sect" "$s" || fail "customs-rules.5: top-level key $s (in rules/schema.json) is not in TOP-LEVEL KEYS"
    done
  else
    echo "note: python3 not found: the keys of rules/schema.json were not checked" >&2
  fi
}

# check_exit_codes PAGE TEXT HELP: each code of HELP's "exit codes:" line is a
# tag of EXIT STATUS, and EXIT STATUS has no other.
check_exit_codes() {
  local page=$1 text=$2 help=$3 want got
  want=$(grep -iE '^exit codes:' <<<"$help" | grep -oE '(^|, |: )[0-9]+ ' | grep -oE '[0-9]+' | sort -u)
  got=$(section "$text" "EXIT STATUS" | grep -oE '^       [0-9]+( |$)' | tr -d ' ' | sort -u)
  [ -n "$want" ] || fail "$page: no exit codes found in --help"
  [ "$want" = "$got" ] || fail "$page: EXIT STATUS lists [${got//$'\n'/ }], --help [${want//$'\n'/ }]"
}

if [ "$self_test" != --self-test ]; then
  check_pages "$src/docs/man"
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  exit 0
fi

# ---- self-test: each break of a copy of the pages must be reported.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check_pages "$src/docs/man" 2>/dev/null
[ "$failures" -eq 0 ] || { echo "FAIL: the unbroken pages do not pass" >&2; exit 1; }
broken=0
# break NAME PAGE SED-SCRIPT: apply the script to a copy of PAGE; the check must fail.
break_page() {
  local name=$1 page=$2 script=$3
  rm -rf "$tmp/man"
  cp -r "$src/docs/man" "$tmp/man"
  sed -i -e "$script" "$tmp/man/$page"
  if cmp -s "$src/docs/man/$page" "$tmp/man/$page"; then
    echo "FAIL: self-test '$name': the sed script changed nothing" >&2
    broken=$((broken + 1))
    return
  fi
  failures=0
  check_pages "$tmp/man" 2>"$tmp/report"
  if [ "$failures" -eq 0 ]; then
    echo "FAIL: self-test '$name' was not reported" >&2
    broken=$((broken + 1))
  else
    echo "ok: $name: $(head -n 1 "$tmp/report")"
  fi
}
break_page "customsd.8 without --check-config" customsd.8 's/\\-\\-check\\-config//g'
break_page "customsd.8 with an unknown option" customsd.8 's/^Print the version and exit\.$/& See \\fB\\-\\-verbose\\fR./'
break_page "customsd.8 without SIGHUP" customsd.8 '/^\.B SIGHUP$/d'
break_page "customsd.8 without WATCHDOG_USEC" customsd.8 '/^\.B WATCHDOG_USEC$/d'
break_page "customsctl.1 without --signer" customsctl.1 's/\\-\\-signer//g'
break_page "customsctl.1 without --json in rules check" customsctl.1 '/^\.SS "rules check"$/,/^\.SS/s/\\-\\-json//'
break_page "customsctl.1 without --since in Filters" customsctl.1 '/^\.SS "Filters"$/,/^\.SS/s/\\-\\-since//'
break_page "customsctl.1 without the ca gen subsection" customsctl.1 's/^\.SS "ca gen"$/.SS "ca make"/'
break_page "customsctl.1 without exit code 2" customsctl.1 '/^\.SH EXIT STATUS$/,/^\.SH/s/^\.B 2$/.B two/'
break_page "customsctl.1 with a groff warning" customsctl.1 's/^\.SH EXAMPLES$/.XX\n&/'
break_page "customsd.yaml.5 without drain_timeout" customsd.yaml.5 's/drain_timeout/drain_time/g'
break_page "customsd.yaml.5 without upstream_mark" customsd.yaml.5 's/upstream_mark/upstream_marker/g'
break_page "customs-rules.5 without check_table" customs-rules.5 's/check_table/check_digits_table/g'
break_page "customs-rules.5 without volumes in TOP-LEVEL KEYS" customs-rules.5 '/^\.SH TOP-LEVEL KEYS$/,/^\.SH/{/^\.B volumes$/d}'
if [ "$broken" -ne 0 ]; then
  echo "$broken break(s) not reported" >&2
  exit 1
fi
exit 0
