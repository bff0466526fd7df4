# bash completion for customsctl and customsd                -*- shell-script -*-
#
# Installed as share/bash-completion/completions/customsctl (bash-completion
# loads it on the first <TAB> after customsctl; a link or copy named customsd
# in the same folder does the same for customsd), or sourced by hand:
#   source config/completion/customsctl.bash
# Works with or without the bash-completion package (it uses _filedir when
# that package is loaded, compgen otherwise).
#
# Commands and options are those of `customsctl <group> <command> --help`;
# tests/tools/completion_test.sh checks each one against the built binary's
# help, both ways.

# Options of each command (the FILTERS of audit show/export/report/volumes
# written out).
_customsctl_filters='--since --until --flow --action --src --dst --tenant --rule'
_customsctl_options() {
  case "$1" in
    "rules check") echo "--json --help" ;;
    "rules test") echo "--verbose --volume --help" ;;
    "rules explain") echo "--rules --from --to --direction --tenant --route --part --volume --json --file --help" ;;
    "keys gen") echo "--out --only --help" ;;
    "audit verify") echo "--db --seed --checkpoint --signer --all --help" ;;
    "audit checkpoint") echo "--db --help" ;;
    "audit show" | "audit export") echo "--db --key $_customsctl_filters --format --help" ;;
    "audit replay") echo "--db --key --rules --since --until --help" ;;
    "audit report") echo "--db --by --key $_customsctl_filters --format --help" ;;
    "audit volumes") echo "--db --key $_customsctl_filters --format --help" ;;
    "audit erase") echo "--db --flow --reason --keys --auditor-pub --sealing-key --signing-key --help" ;;
    "ca gen") echo "--out --name --days --help" ;;
    "proxy-user") echo "--help" ;;
  esac
}

_customsctl_commands() {
  case "$1" in
    rules) echo "check test explain" ;;
    keys) echo "gen" ;;
    audit) echo "verify checkpoint show export replay report volumes erase" ;;
    ca) echo "gen" ;;
  esac
}

# COMPREPLY: the words of $1 that start with $2.
_customsctl_words() {
  mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2")
}

# COMPREPLY: files (or folders with $2 = -d) that start with $1.
_customsctl_paths() {
  if declare -F _filedir >/dev/null 2>&1; then
    cur="$1" _filedir ${2+"$2"}
    return
  fi
  compopt -o filenames 2>/dev/null
  if [[ "${2-}" == -d ]]; then
    mapfile -t COMPREPLY < <(compgen -d -- "$1")
  else
    mapfile -t COMPREPLY < <(compgen -f -- "$1")
  fi
}

# --option=VALUE: with "=" in COMP_WORDBREAKS (bash's default), bash splits it
# into "--option" "=" "VALUE". Sets cur and prev as for "--option VALUE".
_customsctl_split_equals() {
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev=""
  ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD - 1]}"
  if [[ "$prev" == = && $COMP_CWORD -ge 2 && "${COMP_WORDS[COMP_CWORD - 2]}" == -* ]]; then
    prev="${COMP_WORDS[COMP_CWORD - 2]}"
  elif [[ "$cur" == = && "$prev" == -* ]]; then
    cur=""
  fi
}

_customsctl() {
  local cur prev
  _customsctl_split_equals
  COMPREPLY=()

  # customsctl <group> [<command>] [options] [--] [arguments]
  if ((COMP_CWORD == 1)); then
    if [[ "$cur" == -* ]]; then
      _customsctl_words "--help --version" "$cur"
    else
      _customsctl_words "rules keys audit ca proxy-user" "$cur"
    fi
    return
  fi
  local group="${COMP_WORDS[1]}" cmd
  if [[ "$group" == proxy-user ]]; then
    cmd=""
  elif ((COMP_CWORD == 2)); then
    if [[ "$cur" == -* ]]; then
      _customsctl_words "--help" "$cur"
    else
      _customsctl_words "$(_customsctl_commands "$group")" "$cur"
    fi
    return
  else
    cmd="${COMP_WORDS[2]}"
  fi
  local key="$group${cmd:+ $cmd}"

  # After --, only arguments.
  local i first=3
  [[ -z "$cmd" ]] && first=2
  for ((i = first; i < COMP_CWORD; i++)); do
    if [[ "${COMP_WORDS[i]}" == -- ]]; then
      [[ "$group" == rules && "$cmd" != explain ]] && _customsctl_paths "$cur"
      return
    fi
  done

  # The value of an option.
  case "$prev" in
    --db | --key | --seed | --checkpoint | --signer | --auditor-pub | --sealing-key | --signing-key | --file)
      _customsctl_paths "$cur"
      return ;;
    --rules)
      _customsctl_paths "$cur"
      return ;;
    --out | --keys)
      _customsctl_paths "$cur" -d
      return ;;
    --format)
      case "$cmd" in
        show) _customsctl_words "table jsonl csv" "$cur" ;;
        export) _customsctl_words "jsonl csv table" "$cur" ;;
        report) _customsctl_words "table csv json jsonl html" "$cur" ;;
        volumes) _customsctl_words "table csv json" "$cur" ;;
      esac
      return ;;
    --only)
      _customsctl_words "auditor sealing signing subject" "$cur"
      return ;;
    --direction)
      _customsctl_words "request response" "$cur"
      return ;;
    --action)
      _customsctl_words "allow tag redact block unscannable refused error" "$cur"
      return ;;
    --by)
      # A comma-separated list: complete its last item.
      local done_part="" last="$cur"
      if [[ "$cur" == *,* ]]; then
        done_part="${cur%,*},"
        last="${cur##*,}"
      fi
      local IFS=$' \t\n' w
      COMPREPLY=()
      for w in $(compgen -W "src dst tenant route model day month year" -- "$last"); do
        COMPREPLY+=("$done_part$w")
      done
      compopt -o nospace 2>/dev/null
      return ;;
    --since | --until | --flow | --src | --dst | --tenant | --rule | --from | --to | --route | --part | \
      --volume | --reason | --name | --days)
      return ;;  # free text: nothing to offer
  esac

  if [[ "$cur" == -* ]]; then
    _customsctl_words "$(_customsctl_options "$key")" "$cur"
    return
  fi
  case "$key" in
    "rules check" | "rules test") _customsctl_paths "$cur" ;;
  esac
}

_customsd() {
  local cur prev
  _customsctl_split_equals
  COMPREPLY=()
  case "$prev" in
    -c | --config)
      _customsctl_paths "$cur"
      return ;;
  esac
  if [[ "$cur" == -* ]]; then
    _customsctl_words "-c --config -t --check-config -V --version -h --help" "$cur"
  fi
}

complete -F _customsctl customsctl
complete -F _customsd customsd
