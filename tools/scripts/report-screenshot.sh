#!/usr/bin/env bash
# Renders the page of `customsctl audit report --format html` with headless
# Chromium and saves a screenshot, to check by eye that the page renders (its
# charts, tables and verification box). Not part of the test suite or CI.
#
#   report-screenshot.sh [options] OUT.png PAGE.html
#       a page made before
#   report-screenshot.sh [options] OUT.png -- REPORT-ARGS...
#       makes the page first: customsctl audit report --format html REPORT-ARGS
#       (e.g. -- --db audit.db --key auditor.key --by src,dst)
#   report-screenshot.sh [options] --demo OUT.png
#       makes a demo trail first (900 flows over two weeks, ten jurisdiction
#       pairs, two rule-set versions; the hidden test case "[.report-demo]" of
#       the test_tools_audit binary) and its page with the key
#
# Options:
#   --grey          also save OUT-grey.png, the page in greyscale (as printed
#                   without colour): series must still differ by their patterns
#   --width N       window width in CSS pixels (default 1280)
#   --height N      window height: how much of the page is captured (default 2000;
#                   the page of the demo trail is about 6000 high)
#   --build DIR     the build folder (default build/release): customsctl and,
#                   for --demo, the test binary are taken from it
#
# Needs chromium (Debian: apt-get install -y chromium). The page, and for --demo
# the trail and its keys, stay in a temporary folder that is removed at the end
# unless --keep DIR names a folder to keep them in.
# Exit codes: 0 ok, 1 rendering failed, 2 usage error.
set -euo pipefail

usage() {
  sed -n '2,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

width=1280
height=2000
grey=0
demo=0
keep=
build=build/release
while [ $# -gt 0 ]; do
  case "$1" in
    --grey) grey=1; shift ;;
    --demo) demo=1; shift ;;
    --width) width=${2:?--width needs a value}; shift 2 ;;
    --height) height=${2:?--height needs a value}; shift 2 ;;
    --build) build=${2:?--build needs a value}; shift 2 ;;
    --keep) keep=${2:?--keep needs a value}; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "report-screenshot.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
out=$1
shift
case "$out" in *.png) ;; *) echo "report-screenshot.sh: OUT must end in .png" >&2; exit 2 ;; esac

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "report-screenshot.sh: chromium is not installed (Debian: apt-get install -y chromium)" >&2
  exit 2
fi

work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

ctl="$build/tools/customsctl"
page="$work/report.html"
if [ "$demo" = 1 ]; then
  [ $# -eq 0 ] || usage
  tests="$build/tests/tools/test_tools_audit"
  [ -x "$tests" ] && [ -x "$ctl" ] || {
    echo "report-screenshot.sh: build $tests and $ctl first (cmake --build --preset release)" >&2
    exit 2
  }
  CUSTOMS_REPORT_DEMO_DIR="$work/demo" "$tests" "[.report-demo]" >/dev/null
  set +e
  "$ctl" audit report --db "$work/demo/audit.db" --key "$work/demo/keys/auditor.key" --format html >"$page"
  rc=$?
  set -e
  [ "$rc" -le 1 ] || exit 1
elif [ "${1:-}" = -- ]; then
  shift
  [ -x "$ctl" ] || { echo "report-screenshot.sh: build $ctl first" >&2; exit 2; }
  set +e
  "$ctl" audit report --format html "$@" >"$page"
  rc=$?
  set -e
  # 1: the page was made, and says the trail failed verification.
  [ "$rc" -le 1 ] || exit 1
elif [ $# -eq 1 ]; then
  cp -- "$1" "$page"
else
  usage
fi

shot() {  # shot PAGE PNG
  # Chromium writes its profile under HOME; a throwaway one keeps the user's.
  HOME="$work/home" "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --disable-extensions --user-data-dir="$work/profile" \
    --window-size="$width,$height" --screenshot="$2" "file://$1" >"$work/chromium.log" 2>&1 || {
    cat "$work/chromium.log" >&2
    return 1
  }
  [ -s "$2" ] || { echo "report-screenshot.sh: chromium wrote no screenshot" >&2; cat "$work/chromium.log" >&2; return 1; }
}

shot "$page" "$out"
echo "report-screenshot.sh: $out" >&2
if [ "$grey" = 1 ]; then
  # The same page with a greyscale filter over all of it.
  sed 's|</head>|<style>html { filter: grayscale(100%); }</style></head>|' "$page" >"$work/grey.html"
  shot "$work/grey.html" "${out%.png}-grey.png"
  echo "report-screenshot.sh: ${out%.png}-grey.png" >&2
fi
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp -r "$page" "$keep/"
  [ "$demo" = 0 ] || cp -r "$work/demo/." "$keep/"
  echo "report-screenshot.sh: page kept in $keep" >&2
fi
