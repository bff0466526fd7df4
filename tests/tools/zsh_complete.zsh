#!/usr/bin/env zsh
# zsh_complete.zsh FPATH_DIR LINE: the candidates zsh's completion offers for
# LINE<TAB>, one per line, sorted. Runs an interactive zsh on a pseudo-terminal
# (zsh/zpty) with FPATH_DIR first on $fpath and compinit, and records what the
# completion functions pass to compadd. $ZCOMPDUMP names compinit's dump file
# (reused between calls: compinit alone takes a second or more).
# Exit codes: 0 ok, 1 zsh did not finish the completion, 77 no zsh/zpty.
zmodload zsh/zpty 2>/dev/null || exit 77
dir=$1 line=$2
zpty z zsh -f -i || exit 1
zpty -w z "PS1= PS2= RPS1=; unsetopt zle_bracketed_paste 2>/dev/null; fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -d ${(q)${ZCOMPDUMP:-/dev/null}}"
# Candidates are printed with a marker that the echoed input does not contain.
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a __hits; builtin compadd -A __hits "$@"; local r=$?
  local h; for h in $__hits; do print -r -- "MA""TCH:$h"; done
  return r
}'
zpty -w z '_capture_done() { print -r -- "END""OFCOMPLETION"; exit }; comppostfuncs=(_capture_done)'
zpty -w z "bindkey '^I' complete-word"
zpty -w z "$line"$'\t'
out=""
if ! zpty -r z out '*ENDOFCOMPLETION*'; then
  print -u2 "zsh did not finish completing: $line"
  exit 1
fi
zpty -d z
print -r -- ${out//$'\r'/} | sed -n 's/^.*MATCH:\(.*\)$/\1/p' | LC_ALL=C sort -u
