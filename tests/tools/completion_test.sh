#!/usr/bin/env bash
# The shell completions of config/completion/ against the built binaries.
#
#   completion_test.sh SOURCE_DIR customsctl PATH   (the built customsctl)
#   completion_test.sh SOURCE_DIR customsd PATH     (the built customsd)
#
# customsctl:
# 1. Sources the bash completion and completes sample command lines
#    (customsctl au<TAB>, customsctl audit <TAB>, customsctl audit verify --<TAB>,
#    option values, file names).
# 2. Consistency, both ways, for every group, command and option: each one the
#    bash completion offers appears in the corresponding --help of the built
#    binary, and each one the usage lines of --help name is offered.
# 3. The zsh completion offers, per command, the same options as the bash one
#    (read from its _customsctl_<group>_<command> functions), and, when zsh is
#    installed, parses and loads under compinit.
# customsd: the same for customsd's options (sample lines, --help both ways,
# zsh's _customsd against bash).
# Exit codes: 0 ok, 1 a check failed, 2 usage error.
set -u

if [ $# -ne 3 ] || { [ "$2" != customsctl ] && [ "$2" != customsd ]; }; then
  echo "usage: $0 SOURCE_DIR customsctl|customsd PATH" >&2
  exit 2
fi
src=$1
mode=$2
ctl=$3
daemon=$3
bash_file=$src/config/completion/customsctl.bash
zsh_file=$src/config/completion/_customsctl

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# shellcheck source=../../config/completion/customsctl.bash
source "$bash_file" || { echo "cannot source $bash_file" >&2; exit 1; }

# complete LINE: the candidates for the last word of LINE (a trailing space
# starts an empty word), sorted, one per line. Words are split on blanks and
# around "=", as bash does with its default COMP_WORDBREAKS for these lines
# (none holds quotes).
complete_line() {
  local line=$1 fn
  read -r -a COMP_WORDS <<<"${line//=/ = }"
  [[ "$line" == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE=$line
  COMP_POINT=${#line}
  fn=$(complete -p "${COMP_WORDS[0]}" 2>/dev/null)
  fn=${fn#*-F }
  fn=${fn%% *}
  [ -n "$fn" ] || { echo "no completion for ${COMP_WORDS[0]}"; return; }
  COMPREPLY=()
  "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | LC_ALL=C sort
}

expect() {
  local line=$1 want got
  want=$(printf '%s\n' "${@:2}" | sed '/^$/d' | LC_ALL=C sort)
  got=$(complete_line "$line")
  if [ "$got" != "$want" ]; then
    fail "'$line<TAB>': got [${got//$'\n'/ }], expected [${want//$'\n'/ }]"
  fi
}

# zsh_line LINE: what zsh's completion (config/completion/_customsctl) offers
# for LINE<TAB>, sorted, one per line (tests/tools/zsh_complete.zsh).
zsh_ok=0
if command -v zsh >/dev/null 2>&1 && zsh -fc 'zmodload zsh/zpty' 2>/dev/null; then
  zsh_ok=1
fi
zsh_line() {
  ZCOMPDUMP=$tmp/zcompdump timeout 30 zsh -f "$src/tests/tools/zsh_complete.zsh" "$tmp/fpath" "$1" ||
    fail "zsh: completing '$1' failed"
}
zexpect() {
  [ "$zsh_ok" = 1 ] || return 0
  local line=$1 want got
  want=$(printf '%s\n' "${@:2}" | sed '/^$/d' | LC_ALL=C sort)
  got=$(zsh_line "$line")
  if [ "$got" != "$want" ]; then
    fail "zsh: '$line<TAB>': got [${got//$'\n'/ }], expected [${want//$'\n'/ }]"
  fi
}

# has_word TEXT WORD: WORD stands alone in TEXT (not as part of a longer name).
has_word() { [[ "$1" =~ (^|[^A-Za-z0-9_-])"$2"([^A-Za-z0-9_-]|$) ]]; }
# in_list LIST WORD: WORD is one of the lines of LIST.
in_list() { [[ $'\n'"$1"$'\n' == *$'\n'"$2"$'\n'* ]]; }
# The usage lines of a help text: from "usage:" to the first line that is not
# indented, and the FILTERS block when the usage names FILTERS.
usage_of() {
  awk '/^usage:/ {u = 1; print; next}
       u && /^[ \t]/ {print; next}
       {u = 0}
       /^FILTERS:/ {f = 1; print; next}
       f && /^[ \t]/ {print; next}
       {f = 0}' <<<"$1"
}

# ---- 1. sample command lines
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/keys" "$tmp/rules"
: >"$tmp/trail.db"
: >"$tmp/customsd.yaml"
mkdir -p "$tmp/fpath"
cp "$zsh_file" "$tmp/fpath/_customsctl"

if [ "$mode" = customsd ]; then
expect "customsd --c" --check-config --config
expect "customsd -" -c --config -t --check-config -V --version -h --help
expect "customsd --config $tmp/cu" "$tmp/customsd.yaml"
expect "customsd --config=$tmp/cu" "$tmp/customsd.yaml"
expect "customsd -c $tmp/cu" "$tmp/customsd.yaml"

daemon_help=$("$daemon" --help 2>&1) || fail "'customsd --help' failed"
daemon_offered=$(complete_line "customsd -")
for o in $daemon_offered; do
  has_word "$daemon_help" "$o" || fail "customsd: $o is offered but not in its --help"
done
for o in $(awk '/^options:/ {f = 1; next} f && /^  -/ {print} f && !/^ / {f = 0}' <<<"$daemon_help" |
           grep -oE -- '(^| )--?[A-Za-z][a-z-]*' | tr -d ' ' | sort -u); do
  in_list "$daemon_offered" "$o" || fail "customsd: $o is in its --help but not offered"
done
zsh_daemon=$(awk '/^_customsd\(\)/ {f = 1; next} f && /^}/ {exit} f {print}' "$zsh_file" |
             grep -oE -- "[{,]-[A-Za-z][+=]?|--[a-z][a-z-]*" | tr -d '{,+=' | LC_ALL=C sort -u)
[ "$zsh_daemon" = "$(LC_ALL=C sort -u <<<"$daemon_offered")" ] ||
  fail "zsh _customsd offers [$(echo $zsh_daemon)], bash offers [$(echo $daemon_offered)]"
zexpect "customsd --c" --check-config --config
zexpect "customsd -" $daemon_offered
zexpect "customsd --config $tmp/cu" customsd.yaml
else
expect "customsctl au" audit
expect "customsctl " audit ca keys proxy-user rules
expect "customsctl --" --help --version
expect "customsctl audit " checkpoint erase export replay report show verify volumes
expect "customsctl audit v" verify volumes
expect "customsctl audit verify --" --all --checkpoint --db --help --seed --signer
expect "customsctl audit verify --s" --seed --signer
expect "customsctl rules " check explain test
expect "customsctl rules check --" --help --json
expect "customsctl keys gen --only s" sealing signing subject
expect "customsctl audit show --format " csv jsonl table
expect "customsctl audit report --format " csv html json jsonl table
expect "customsctl audit report --by src,d" src,day src,dst
expect "customsctl audit show --action re" redact refused
expect "customsctl rules explain --direction " request response
expect "customsctl audit verify --db $tmp/tr" "$tmp/trail.db"
expect "customsctl audit verify --db=$tmp/tr" "$tmp/trail.db"
expect "customsctl audit report --format=j" json jsonl
expect "customsctl keys gen --out $tmp/k" "$tmp/keys"
expect "customsctl rules check $tmp/r" "$tmp/rules"
expect "customsctl rules check -- $tmp/r" "$tmp/rules"
expect "customsctl audit show --since "
expect "customsctl proxy-user --" --help

zexpect "customsctl au" audit
zexpect "customsctl " audit ca keys proxy-user rules
zexpect "customsctl --" --help --version
zexpect "customsctl audit " checkpoint erase export replay report show verify volumes
zexpect "customsctl audit verify --" --all --checkpoint --db --help --seed --signer
zexpect "customsctl keys gen --only s" sealing signing subject
zexpect "customsctl audit show --format " csv jsonl table
zexpect "customsctl audit report --format " csv html json jsonl table
zexpect "customsctl audit report --by src,d" day dst
zexpect "customsctl rules explain --direction " request response
zexpect "customsctl audit verify --db $tmp/tr" trail.db
zexpect "customsctl audit verify --db=$tmp/tr" trail.db
zexpect "customsctl audit report --format=j" json jsonl

# ---- 2. consistency with --help, both ways
top_help=$("$ctl" --help 2>&1)
groups=$(complete_line "customsctl ")
for g in $groups; do
  has_word "$top_help" "$g" || fail "group $g: not in 'customsctl --help'"
done
# Every "  group command|command ..." line of the top help is offered.
while read -r g c _; do
  [ -n "$g" ] || continue
  case "$g" in -*|customsctl) continue ;; esac
  in_list "$groups" "$g" || fail "group $g of 'customsctl --help' is not offered"
  [[ "$c" =~ ^[a-z][a-z|-]*$ ]] || continue  # proxy-user NAME TENANT: no command
  for cmd in ${c//|/ }; do
    in_list "$(complete_line "customsctl $g ")" "$cmd" ||
      fail "command '$g $cmd' of 'customsctl --help' is not offered"
  done
done < <(grep -E '^  [a-z-]+ ' <<<"$top_help")

checked=0
for g in $groups; do
  if [ "$g" = proxy-user ]; then
    commands="-"
  else
    commands=$(complete_line "customsctl $g ")
    group_help=$("$ctl" "$g" --help 2>&1) || fail "'customsctl $g --help' failed"
    for c in $commands; do
      has_word "$group_help" "$c" || fail "command '$g $c': not in 'customsctl $g --help'"
    done
  fi
  for c in $commands; do
    [ "$c" = - ] && c=""
    help=$("$ctl" $g $c --help 2>&1) || fail "'customsctl $g $c --help' exited $?"
    offered=$(complete_line "customsctl $g${c:+ $c} --")
    [ -n "$offered" ] || fail "'customsctl $g $c --<TAB>' offers nothing"
    for o in $offered; do
      # --help is every command's, documented once in the top help.
      [ "$o" = --help ] && ! has_word "$help" "$o" && has_word "$top_help" "<command> --help" && continue
      has_word "$help" "$o" || fail "'customsctl $g $c': $o is offered but not in its --help"
      checked=$((checked + 1))
    done
    for o in $(usage_of "$help" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
      in_list "$offered" "$o" || fail "'customsctl $g $c': $o is in its usage but not offered"
    done
  done
done

# ---- 3. zsh: same options per command as bash
for g in $groups; do
  if [ "$g" = proxy-user ]; then commands="-"; else commands=$(complete_line "customsctl $g "); fi
  for c in $commands; do
    [ "$c" = - ] && c=""
    fn="_customsctl_${g//-/_}${c:+_${c//-/_}}"
    body=$(awk -v fn="$fn" '$0 ~ "^" fn "\\(\\)" {f = 1; next} f && /^}/ {exit} f {print}' "$zsh_file")
    if [ -z "$body" ]; then
      fail "zsh: no function $fn"
      continue
    fi
    zsh_opts=$(grep -oE -- "--[a-z][a-z-]*" <<<"$body" | LC_ALL=C sort -u)
    bash_opts=$(complete_line "customsctl $g${c:+ $c} --")
    [ "$zsh_opts" = "$bash_opts" ] ||
      fail "zsh $fn offers [$(echo $zsh_opts)], bash offers [$(echo $bash_opts)]"
    zexpect "customsctl $g${c:+ $c} --" $bash_opts
  done
done

if command -v zsh >/dev/null 2>&1; then
  zsh -n "$zsh_file" || fail "zsh -n $zsh_file"
  out=$(ZDOTDIR=$tmp zsh -f -c "fpath=($tmp/fpath \$fpath); autoload -Uz compinit; compinit -u -d $tmp/zcompdump;
          print -r -- \${_comps[customsctl]} \${_comps[customsd]}" 2>&1)
  [ "$out" = "_customsctl _customsctl" ] || fail "zsh compinit does not bind _customsctl to customsctl and customsd: $out"
else
  echo "zsh is not installed: the zsh file was only compared with the bash one" >&2
fi
[ "$zsh_ok" = 1 ] || echo "no zsh with zsh/zpty: zsh's completion was not run" >&2
fi  # mode

if [ "$failures" -ne 0 ]; then
  echo "$failures completion check(s) failed" >&2
  exit 1
fi
if [ "$mode" = customsd ]; then
  echo "completion: ok (customsd)"
else
  echo "completion: ok ($checked customsctl options checked against --help)"
fi
