#!/usr/bin/env bash
# Builds the Debian package and takes it through its life on THIS machine:
# install, upgrade, remove, purge, each step checked. It installs software,
# creates and deletes the system user `customs` and writes /etc/customs and
# /var/lib/customs, so it is for a throwaway machine (CI) only: it runs as root
# and only when asked (CUSTOMS_PACKAGE_TEST=1 or --yes), and it refuses a
# machine that already has the package, the user or those folders.
#
#   CUSTOMS_PACKAGE_TEST=1 tools/scripts/package-test.sh     (or: ... --yes)
#
# 1. build: customsd, customsctl and the package files (release preset), cpack
# 2. lintian: any error fails (warnings and notes are printed)
# 3. install (dpkg -i): the user and group, the folders and their modes, the
#    files (binaries, rule packs, examples, compressed man pages, copyright,
#    changelog, the unit and its enable link), no conffile and no config in
#    /etc; then the operator's first steps from docs/operator-guide.md: keys
#    made as `customs`, the installed examples copied to /etc/customs pass
#    --check-config as `customs`, and customsd runs as `customs` with the
#    copied providers example (ports 0) and opens its audit trail
# 4. upgrade: dpkg -i of the same package under a bumped version (a repacked
#    copy); the operator's config, keys and trail untouched
# 5. remove (dpkg -r): binaries, data and unit gone; config, trail, user kept
# 6. purge (dpkg -P): user, group, /etc/customs and the enable link gone; the
#    non-empty /var/lib/customs kept (0700 root:root) with a message
# 7. install and purge with an empty /var/lib/customs: the folder goes too
# Systemd is not required (the maintainer scripts leave the service alone
# without it). Whatever the outcome, the package, the user and the test's
# folders are removed at the end. Exit status: 0 passed, 1 a check failed,
# 2 refused (not root, not asked, or the machine is not clean).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" != --yes && "${CUSTOMS_PACKAGE_TEST:-0}" != 1 ]]; then
  echo "package-test: installs and purges the customs package on this machine;" >&2
  echo "package-test: run it on a throwaway machine with CUSTOMS_PACKAGE_TEST=1 or --yes" >&2
  exit 2
fi
if [[ $(id -u) != 0 ]]; then
  echo "package-test: must run as root (dpkg -i, adduser)" >&2
  exit 2
fi
if dpkg-query -W -f='${Status}' customs 2>/dev/null | grep -qv 'not-installed'; then
  echo "package-test: the customs package is already on this machine ($(dpkg-query -W -f='${Status}' customs)); not touching it" >&2
  exit 2
fi
for path in /etc/customs /var/lib/customs; do
  if [[ -e $path ]]; then
    echo "package-test: $path exists already; not touching it" >&2
    exit 2
  fi
done
if getent passwd customs >/dev/null || getent group customs >/dev/null; then
  echo "package-test: a user or group customs exists already; not touching it" >&2
  exit 2
fi

start=$SECONDS
work=$(mktemp -d /tmp/customs-package-test.XXXXXX)
daemon_pid=""
step="setup"
cleanup() {
  local rc=$?
  if [[ -n $daemon_pid ]]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if dpkg-query -W -f='${Status}' customs 2>/dev/null | grep -qv 'not-installed'; then
    dpkg --purge customs >/dev/null 2>&1 || true
  fi
  # The trail the test made (the machine had no /var/lib/customs before).
  rm -rf /var/lib/customs /etc/customs "$work"
  if getent passwd customs >/dev/null; then deluser --system --quiet customs || true; fi
  if getent group customs >/dev/null; then delgroup --system --quiet customs || true; fi
  if ((rc == 0)); then
    echo "package-test: passed in $((SECONDS - start)) s"
  else
    echo "package-test: FAILED in step \"$step\" after $((SECONDS - start)) s" >&2
  fi
}
trap cleanup EXIT

fail() {
  echo "package-test: FAIL ($step): $*" >&2
  exit 1
}
begin() {
  step=$1
  echo "package-test: [$((SECONDS - start)) s] $step" >&2
}
# run LOG CMD...: runs CMD with its output in LOG; on failure prints LOG and fails.
run() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$* failed"
  fi
}
# dpkg_run LOG ARGS...: dpkg ARGS with its output in LOG, waiting (up to 10 minutes) while
# another apt or dpkg holds the dpkg lock.
dpkg_run() {
  local log=$1 i
  shift
  for i in $(seq 120); do
    if dpkg "$@" >"$log" 2>&1; then
      # What the maintainer scripts told the operator.
      sed -n 's/^customs: /package-test:   | /p' "$log" >&2
      return 0
    fi
    grep -q 'lock.*locked by another process\|could not get lock' "$log" || break
    if ((i == 1)); then echo "package-test: waiting for the dpkg lock" >&2; fi
    sleep 5
  done
  cat "$log" >&2
  fail "dpkg $* failed"
}
# mode_owner PATH: "MODE USER:GROUP" of PATH.
mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() {
  local got
  got=$(mode_owner "$1") || fail "$1 is missing"
  [[ $got == "$2" ]] || fail "$1 is $got, expected $2"
}
expect_file() { [[ -f $1 ]] || fail "$1 is missing"; }
expect_gone() { [[ ! -e $1 && ! -L $1 ]] || fail "$1 is still there"; }
expect_in() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "no \"$2\" in the output above"; }; }
pkg_status() { dpkg-query -W -f='${Status} ${Version}' customs 2>/dev/null || echo not-installed; }
unit_dir() {
  local d
  for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -f $d/customsd.service ]]; then
      echo "$d"
      return
    fi
  done
  return 1
}
wants_link=/etc/systemd/system/multi-user.target.wants/customsd.service

# ---- 1. build ----------------------------------------------------------------
begin "build"
CUSTOMS_WITH_PACKAGE_TEST=1 bash tools/scripts/install-deps.sh
run "$work/configure.log" cmake --preset release
run "$work/build.log" cmake --build --preset release --target customsd customsctl customs_package_files
(cd build/release && cpack) >"$work/cpack.log" 2>&1 || {
  cat "$work/cpack.log" >&2
  fail "cpack failed"
}
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' "$work/cpack.log")
[[ -n $deb && -f $deb ]] || {
  cat "$work/cpack.log" >&2
  fail "cpack named no .deb"
}
version=$(dpkg-deb -f "$deb" Version)
echo "package-test: built $deb ($version)" >&2

# ---- 2. lintian ----------------------------------------------------------------
begin "lintian"
if ! lintian --fail-on error --display-info --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log" >&2
  fail "lintian reports errors"
fi
if [[ -s $work/lintian.log ]]; then
  sed 's/^/package-test: lintian: /' "$work/lintian.log" >&2
fi

# ---- 3. install ------------------------------------------------------------------
begin "install"
dpkg_run "$work/install.log" -i "$deb"
[[ $(pkg_status) == "install ok installed $version" ]] || fail "dpkg says: $(pkg_status)"
expect_in "$work/install.log" "no /etc/customs/customsd.yaml yet"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd customs) || fail "no user customs"
((uid < 1000)) || fail "customs is not a system user (uid $uid)"
[[ $(getent group customs | cut -d: -f3) == "$gid" ]] || fail "the primary group of customs is not the group customs"
[[ $home == /var/lib/customs ]] || fail "the home of customs is $home"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "customs has a login shell ($shell)"
expect_mode /var/lib/customs "750 customs:customs"
expect_mode /etc/customs "750 root:customs"
[[ -z $(ls -A /etc/customs) ]] || fail "the package put files in /etc/customs: $(ls -A /etc/customs)"
[[ -z $(dpkg-query -W -f='${Conffiles}' customs) ]] || fail "the package has conffiles: $(dpkg-query -W -f='${Conffiles}' customs)"
for f in /usr/bin/customsd /usr/bin/customsctl; do
  [[ -x $f ]] || fail "$f is missing or not executable"
done
[[ $(/usr/bin/customsd --version 2>&1) == *"${version%-*}"* ]] || fail "/usr/bin/customsd --version does not say ${version%-*}"
compgen -G '/usr/share/customs/rules/*.yaml' >/dev/null || fail "no rule packs in /usr/share/customs/rules"
compgen -G '/usr/share/customs/providers/*.yaml' >/dev/null || fail "no provider catalogue in /usr/share/customs/providers"
examples=/usr/share/customs/examples
expect_file $examples/providers.example.yaml
expect_file $examples/edge.example.yaml
expect_gone $examples/customsd.yaml
grep -q '^rules: \[/usr/share/customs/rules/\]' $examples/providers.example.yaml ||
  fail "providers.example.yaml does not name /usr/share/customs/rules/"
! grep -nE '^[^#]*\.\./' $examples/*.yaml || fail "an installed example names a path relative to /usr/share/customs/examples"
doc=/usr/share/doc/customs
head -1 $doc/copyright | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
  fail "$doc/copyright is not in the DEP-5 format"
gzip -t $doc/changelog.Debian.gz || fail "$doc/changelog.Debian.gz is not gzip"
zcat $doc/changelog.Debian.gz | head -1 | grep -qF "customs ($version)" || fail "the changelog's entry is not for $version"
for page in man1/customsctl.1 man5/customsd.yaml.5 man5/customs-rules.5 man8/customsd.8; do
  gzip -t "/usr/share/man/$page.gz" || fail "/usr/share/man/$page.gz is missing or not gzip"
  expect_gone "/usr/share/man/$page"
done
expect_file $doc/operator-guide.md
expect_file /usr/share/bash-completion/completions/customsctl
udir=$(unit_dir) || fail "no customsd.service in /usr/lib/systemd/system or /lib/systemd/system"
grep -q '^ConditionPathExists=/etc/customs/customsd.yaml$' "$udir/customsd.service" || fail "the unit has no ConditionPathExists"
[[ -L $wants_link ]] || fail "customsd.service is not enabled ($wants_link)"

begin "install: the operator's first steps"
run "$work/keys.log" runuser -u customs -- /usr/bin/customsctl keys gen --out /var/lib/customs/keys
expect_file /var/lib/customs/keys/signing.key
run "$work/ca.log" /usr/bin/customsctl ca gen --out /etc/customs/ca
chown customs: /etc/customs/ca/ca.key
install -m 0640 -g customs $examples/providers.example.yaml /etc/customs/customsd.yaml
install -m 0640 -g customs $examples/edge.example.yaml /etc/customs/edge.yaml
for c in /etc/customs/customsd.yaml /etc/customs/edge.yaml; do
  run "$work/check.log" runuser -u customs -- /usr/bin/customsd --config "$c" --check-config
done
# customsd as the service runs it, on ports the kernel picks (this machine may
# use 8080 and 9090 for something else): it must open its audit trail.
sed -e 's/^\(    port: \)8080$/\10/' -e 's/^admin: {address: 127.0.0.1, port: 9090}$/admin: {address: 127.0.0.1, port: 0}/' \
  /etc/customs/customsd.yaml >/etc/customs/run-test.yaml
if ! grep -q 'port: 0}$' /etc/customs/run-test.yaml || ! grep -q '^    port: 0$' /etc/customs/run-test.yaml; then
  fail "could not move the example's ports to 0 (the example changed?)"
fi
chgrp customs /etc/customs/run-test.yaml
chmod 0640 /etc/customs/run-test.yaml
# setpriv execs customsd (runuser would stay its parent and take the SIGTERM).
setpriv --reuid=customs --regid=customs --init-groups -- \
  /usr/bin/customsd --config /etc/customs/run-test.yaml >"$work/customsd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  grep -q 'event=admin_listening' "$work/customsd.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'event=admin_listening' "$work/customsd.log" || {
  cat "$work/customsd.log" >&2
  fail "customsd did not start with the installed example config"
}
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
((rc == 0)) || {
  cat "$work/customsd.log" >&2
  fail "customsd exited $rc on SIGTERM"
}
expect_file /var/lib/customs/audit.db
[[ $(stat -c %U /var/lib/customs/audit.db) == customs ]] || fail "the audit trail is not owned by customs"
rm /etc/customs/run-test.yaml
config_sum=$(sha256sum /etc/customs/customsd.yaml)
trail_files=$(cd /var/lib/customs && find . | sort)

# ---- 4. upgrade --------------------------------------------------------------------
begin "upgrade"
# The same files under a bumped Debian revision: dpkg runs the upgrade path
# (prerm upgrade, postinst configure OLD-VERSION).
new_version="${version%-*}-$((${version##*-} + 1))"
run "$work/repack.log" dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: $new_version/" "$work/repack/DEBIAN/control"
run "$work/repack.log" dpkg-deb -b --root-owner-group "$work/repack" "$work/customs_upgrade.deb"
dpkg_run "$work/upgrade.log" -i "$work/customs_upgrade.deb"
[[ $(pkg_status) == "install ok installed $new_version" ]] || fail "dpkg says: $(pkg_status)"
[[ $(getent passwd customs | cut -d: -f3) == "$uid" ]] || fail "the upgrade changed the uid of customs"
[[ $(sha256sum /etc/customs/customsd.yaml) == "$config_sum" ]] || fail "the upgrade changed /etc/customs/customsd.yaml"
[[ $(cd /var/lib/customs && find . | sort) == "$trail_files" ]] || fail "the upgrade changed /var/lib/customs"
expect_mode /var/lib/customs "750 customs:customs"
expect_mode /etc/customs "750 root:customs"
[[ -x /usr/bin/customsd && -L $wants_link ]] || fail "the binaries or the enable link are missing after the upgrade"

# ---- 5. remove ----------------------------------------------------------------------
begin "remove"
dpkg_run "$work/remove.log" -r customs
[[ $(pkg_status) == "deinstall ok config-files $new_version" ]] || fail "dpkg says: $(pkg_status)"
for f in /usr/bin/customsd /usr/bin/customsctl /usr/share/customs "$udir/customsd.service" /usr/share/man/man8/customsd.8.gz; do
  expect_gone "$f"
done
[[ $(sha256sum /etc/customs/customsd.yaml 2>/dev/null) == "$config_sum" ]] || fail "the removal changed or removed the config"
expect_file /etc/customs/ca/ca.key
expect_file /var/lib/customs/audit.db
getent passwd customs >/dev/null || fail "the removal removed the user customs"

# ---- 6. purge --------------------------------------------------------------------------
begin "purge"
dpkg_run "$work/purge.log" -P customs
[[ $(pkg_status) == *not-installed* ]] || fail "dpkg says: $(pkg_status)"
! getent passwd customs >/dev/null || fail "the purge left the user customs"
! getent group customs >/dev/null || fail "the purge left the group customs"
expect_gone /etc/customs
expect_gone "$wants_link"
expect_file /var/lib/customs/audit.db
expect_file /var/lib/customs/keys/signing.key
expect_mode /var/lib/customs "700 root:root"
[[ $(cd /var/lib/customs && find . | sort) == "$trail_files" ]] || fail "the purge changed the trail's files"
expect_in "$work/purge.log" "/var/lib/customs was kept"
expect_in "$work/purge.log" "compliance"

# ---- 7. purge with an empty state folder ----------------------------------------------------
begin "install and purge with nothing in /var/lib/customs"
mv /var/lib/customs "$work/kept-trail"
dpkg_run "$work/install2.log" -i "$deb"
getent passwd customs >/dev/null || fail "no user customs"
expect_mode /var/lib/customs "750 customs:customs"
dpkg_run "$work/purge2.log" -P customs
expect_gone /var/lib/customs
expect_gone /etc/customs
! getent passwd customs >/dev/null || fail "the purge left the user customs"
! grep -q "was kept" "$work/purge2.log" || fail "the purge says it kept an empty /var/lib/customs"

step="done"
