#!/usr/bin/env bash
# End-to-end test of the .deb, the way a user installs it (run through `make deb-test`):
#
#  1. fresh install: `apt-get install ./libapache2-mod-oauth2-rs_*.deb` (Depends resolved by apt),
#     `a2enmod oauth2`, `a2enmod ssl`, a site with the seed configuration (TLS vhost with
#     SSLVerifyClient optional_no_ca, <Location> with AuthType oauth2, OAuth2TokenVerify jwk
#     "<RSA JWK, kid one>" type=mtls&mtls.policy=optional, Require valid-user), `apache2ctl -t`,
#     Apache on a free loopback port: valid token -> 200, invalid token -> 401 (and a stolen bound
#     token -> 401, no token -> 401); then `apt-get purge` and nothing may be left.
#  2. replacing the C module: `apt-get install libapache2-mod-oauth2` (Debian's package),
#     `a2enmod oauth2`, site enabled; then `apt-get install ./libapache2-mod-oauth2-rs_*.deb` must
#     replace it, keep oauth2 enabled and serve the same requests; purge, nothing left.
#
# Where:
#   (default)  a throw-away Debian 12 chroot (debootstrap, base cached in
#              /var/cache/mod-oauth2-rs-deb-test/), so the host's packages and Apache configuration
#              are not touched; it shares the host's network, hence the loopback port.
#   --host     on this host. Everything it changes is recorded first and restored afterwards:
#              packages it installed are purged, packages it removed (e.g. an installed
#              libapache2-mod-oauth2) are reinstalled, /etc/apache2/*-enabled and /var/lib/apache2
#              are put back. apache2, curl and openssl are installed if missing and left installed.
#              An interrupted run is restored at the start of the next one.
#
# Usage: packaging/test-deb.sh [--host] [path/to/libapache2-mod-oauth2-rs_*.deb]
# Needs root. Safe to run repeatedly; two runs at once wait for each other (flock).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
MODE=chroot
DEB=""
for a in "$@"; do
    case "$a" in
        --host) MODE=host ;;
        --chroot) MODE=chroot ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) DEB=$a ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    exec sudo "$0" "$@"
fi
if [ -z "$DEB" ]; then
    shopt -s nullglob
    debs=("$TOP"/target/debian/libapache2-mod-oauth2-rs_*.deb)
    shopt -u nullglob
    [ ${#debs[@]} -eq 1 ] || { echo "test-deb: expected one target/debian/libapache2-mod-oauth2-rs_*.deb; run make deb" >&2; exit 1; }
    DEB=${debs[0]}
fi
DEB=$(readlink -f "$DEB")
DEBNAME=$(basename "$DEB")
PKG=libapache2-mod-oauth2-rs
CPKG=libapache2-mod-oauth2
SITE=oauth2-deb-test
DATA=/srv/oauth2-deb-test           # keys, document root, Apache instance (inside ROOT)
CACHE=/var/cache/mod-oauth2-rs-deb-test
STATE=/var/lib/mod-oauth2-rs-deb-test   # host mode: what to restore
export LANG=C LC_ALL=C DEBIAN_FRONTEND=noninteractive

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9

WORK=$(mktemp -d /tmp/mod-oauth2-rs-deb-test.XXXXXX)
ROOT=""          # the chroot; empty in host mode
PASSED=0
LOG=$WORK/log

say() { printf '\n== %s\n' "$*"; }
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
die() { echo "  FAIL: $*" >&2; exit 1; }
# check DESCRIPTION COMMAND...: the command must succeed.
check() { local what=$1; shift; if "$@" >>"$LOG" 2>&1; then ok "$what"; else die "$what"; fi; }
# run COMMAND...: in the chroot, or on the host.
run() {
    if [ -n "$ROOT" ]; then
        chroot "$ROOT" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
    else
        "$@"
    fi
}
# Shows the last lines of a long command's output only when it fails.
quiet() { if ! "$@" >"$WORK/cmd.out" 2>&1 </dev/null; then tail -40 "$WORK/cmd.out" >&2; return 1; fi; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
installed() { run dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
known() { run dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qv 'not-installed'; }

host_apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "test-deb: installing on the host: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Apache instance on a loopback port. It runs the installed configuration (a copy of
# /etc/apache2, so that what a2enmod/a2ensite did is what runs) with ports.conf emptied: the
# site brings its own `Listen 127.0.0.1:PORT`, and nothing binds 80 or 443.
# ---------------------------------------------------------------------------------------------
INST=$DATA/instance
server_start() {
    rm -rf "$ROOT$INST"
    mkdir -p "$ROOT$INST/run/lock" "$ROOT$INST/log"
    cp -a "$ROOT/etc/apache2" "$ROOT$INST/conf"
    : > "$ROOT$INST/conf/ports.conf"
    run env APACHE_CONFDIR="$INST/conf" APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data \
        APACHE_PID_FILE="$INST/run/apache2.pid" APACHE_RUN_DIR="$INST/run" \
        APACHE_LOCK_DIR="$INST/run/lock" APACHE_LOG_DIR="$INST/log" \
        /usr/sbin/apache2 -d "$INST/conf" -k start >>"$LOG" 2>&1 || { cat "$ROOT$INST/log/error.log" >&2 || true; die "apache2 -k start"; }
    for _ in $(seq 100); do
        curl -s -o /dev/null --cacert "$WORK/server.crt" "https://127.0.0.1:$PORT/" && break
        sleep 0.1
    done
    [ -f "$ROOT$INST/run/apache2.pid" ] || { cat "$ROOT$INST/log/error.log" >&2 || true; die "Apache did not start"; }
    ok "Apache started on 127.0.0.1:$PORT (pid $(cat "$ROOT$INST/run/apache2.pid"))"
}
server_stop() {
    local pidf=$ROOT$INST/run/apache2.pid pid
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidf"
}
free_port() {
    local p
    for p in $(seq 18443 18543); do
        if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then echo "$p"; return 0; fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Keys, certificates, tokens (openssl CLI, as scripts/run-example does) and the site.
# ---------------------------------------------------------------------------------------------
make_keys() {
    local W=$WORK
    selfsigned() { # name CN [extension]
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$2" \
            -keyout "$W/$1.key" -out "$W/$1.crt" ${3:+-addext "$3"} 2>/dev/null
    }
    selfsigned server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
    selfsigned client "deb-test client"
    selfsigned other "another client"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/issuer.key" 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/attacker.key" 2>/dev/null
    local n thumb now header payload
    n=$(openssl rsa -in "$W/issuer.key" -noout -modulus 2>/dev/null | cut -d= -f2 | perl -ne 'chomp; print pack("H*", $_)' | b64url)
    JWK="{\\\"kty\\\":\\\"RSA\\\",\\\"kid\\\":\\\"one\\\",\\\"use\\\":\\\"sig\\\",\\\"n\\\":\\\"$n\\\",\\\"e\\\":\\\"AQAB\\\"}"
    # RS256 access token bound to client.crt (RFC 8705 cnf["x5t#S256"]).
    thumb=$(openssl x509 -in "$W/client.crt" -outform DER | openssl dgst -sha256 -binary | b64url)
    now=$(date +%s)
    header=$(printf '{"alg":"RS256","kid":"one","typ":"at+jwt"}' | b64url)
    payload=$(printf '{"sub":"alice","iat":%d,"exp":%d,"cnf":{"x5t#S256":"%s"}}' "$now" $((now + 3600)) "$thumb" | b64url)
    GOOD="$header.$payload.$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$W/issuer.key" -binary | b64url)"
    # The same claims signed with another key: an invalid token.
    BAD="$header.$payload.$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$W/attacker.key" -binary | b64url)"
}
write_site() {
    mkdir -p "$ROOT$DATA/www/api"
    cp "$WORK/server.crt" "$WORK/server.key" "$ROOT$DATA/"
    chmod 600 "$ROOT$DATA/server.key"
    echo "hello from behind mod_oauth2" > "$ROOT$DATA/www/api/hello.txt"
    cat > "$ROOT/etc/apache2/sites-available/$SITE.conf" <<EOF
# Written by packaging/test-deb.sh (removed when it ends).
Listen 127.0.0.1:$PORT
<VirtualHost 127.0.0.1:$PORT>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile $DATA/server.crt
    SSLCertificateKeyFile $DATA/server.key
    SSLVerifyClient optional_no_ca
    DocumentRoot $DATA/www
    <Directory $DATA/www>
        Require all granted
    </Directory>
    <Location /api/>
        AuthType oauth2
        OAuth2TokenVerify jwk "$JWK" type=mtls&mtls.policy=optional
        Require valid-user
    </Location>
</VirtualHost>
EOF
}
# request EXPECTED_CODE DESCRIPTION [curl args...]
request() {
    local want=$1 what=$2 code
    shift 2
    code=$(curl -sS -o "$WORK/body" -w '%{http_code}' --cacert "$WORK/server.crt" "$@" \
        "https://127.0.0.1:$PORT/api/hello.txt" 2>>"$LOG" || true)
    if [ "$code" = "$want" ]; then ok "$what -> $code"; else
        tail -5 "$ROOT$INST/log/error.log" >&2 || true
        die "$what -> $code, expected $want"
    fi
}
http_checks() {
    server_start
    request 200 "valid token, with the client certificate it is bound to" \
        --cert "$WORK/client.crt" --key "$WORK/client.key" -H "Authorization: Bearer $GOOD"
    check "the backend's response came through" grep -qx "hello from behind mod_oauth2" "$WORK/body"
    request 401 "invalid token (signed by another key)" \
        --cert "$WORK/client.crt" --key "$WORK/client.key" -H "Authorization: Bearer $BAD"
    request 401 "valid token presented with another client certificate" \
        --cert "$WORK/other.crt" --key "$WORK/other.key" -H "Authorization: Bearer $GOOD"
    request 401 "no token" --cert "$WORK/client.crt" --key "$WORK/client.key"
    server_stop
}

# ---------------------------------------------------------------------------------------------
# The package checks.
# ---------------------------------------------------------------------------------------------
apt_install_deb() { # as a user: from the directory that holds the .deb
    if [ -n "$ROOT" ]; then
        mkdir -p "$ROOT/tmp/pkg"
        cp "$DEB" "$ROOT/tmp/pkg/"
        quiet run sh -c "cd /tmp/pkg && apt-get install -y ./$DEBNAME"
    else
        quiet sh -c "cd '$(dirname "$DEB")' && apt-get install -y './$DEBNAME'"
    fi
    grep -E "^(Setting up|Removing|Unpacking|The following|  |$PKG: |behind |one\))" "$WORK/cmd.out" | sed 's/^/    | /'
}
check_files_installed() {
    local f
    for f in /usr/lib/apache2/modules/mod_oauth2.so /etc/apache2/mods-available/oauth2.load \
        /etc/apache2/mods-available/oauth2.conf /usr/share/doc/$PKG/copyright \
        /usr/share/doc/$PKG/changelog.Debian.gz /usr/share/doc/$PKG/README.md.gz; do
        check "$f is installed by $PKG" sh -c "[ -f '$ROOT$f' ] && chroot '${ROOT:-/}' dpkg -S '$f' | grep -q '^$PKG: '"
    done
}
check_gone() {
    check "dpkg -L $PKG lists nothing" sh -c "! chroot '${ROOT:-/}' dpkg -L $PKG 2>/dev/null | grep -q ."
    check "dpkg knows nothing of $PKG (purged)" sh -c "! chroot '${ROOT:-/}' dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -qv not-installed"
    check "no /usr/lib/apache2/modules/mod_oauth2.so" test ! -e "$ROOT/usr/lib/apache2/modules/mod_oauth2.so"
    check "no /etc/apache2/mods-*/oauth2.*" sh -c "! ls '$ROOT'/etc/apache2/mods-*/oauth2.* 2>/dev/null | grep -q ."
    check "no oauth2 state in /var/lib/apache2" sh -c "! find '$ROOT/var/lib/apache2' -name oauth2 | grep -q ."
}

phase_fresh_install() {
    say "1. fresh install: apt-get install ./$DEBNAME"
    apt_install_deb
    check "$PKG is installed" installed "$PKG"
    echo "  Depends: $(run dpkg-query -W -f='${Depends}' $PKG)"
    check_files_installed
    echo "  module state after install (a2query -m oauth2): $(run a2query -m oauth2 2>&1 || true)"
    check "a2enmod oauth2" run a2enmod oauth2
    check "a2enmod ssl" run a2enmod ssl
    write_site
    check "a2ensite $SITE" run a2ensite "$SITE"
    check "apache2ctl -t" run apache2ctl -t
    http_checks
    check "a2dissite $SITE" run a2dissite "$SITE"
    say "1. apt-get purge $PKG"
    check "apt-get purge -y $PKG" quiet run apt-get purge -y "$PKG"
    check_gone
}

phase_replace_c_module() {
    say "2. over Debian's C module: apt-get install $CPKG; a2enmod oauth2"
    check "apt-get install -y $CPKG" quiet run apt-get install -y "$CPKG"
    check "a2enmod oauth2" run a2enmod oauth2
    check "the C module provides mod_oauth2.so" sh -c "chroot '${ROOT:-/}' dpkg -S /usr/lib/apache2/modules/mod_oauth2.so | grep -q '^$CPKG: '"
    check "a2ensite $SITE (the site now runs on the C module)" run a2ensite "$SITE"
    if run apache2ctl -t >>"$LOG" 2>&1; then
        echo "  (apache2ctl -t accepts the seed configuration with the C module too)"
    else
        echo "  (apache2ctl -t does not accept the seed configuration with the C module; not needed here)"
    fi
    say "2. apt-get install ./$DEBNAME over $CPKG"
    apt_install_deb
    check "the postinst points at the C package's leftover state" grep -q "left its configuration state" "$WORK/cmd.out"
    check "$PKG is installed" installed "$PKG"
    check "$CPKG is no longer installed" sh -c "! chroot '${ROOT:-/}' dpkg-query -W -f='\${Status}' $CPKG 2>/dev/null | grep -q 'install ok installed'"
    echo "  $CPKG status now: $(run dpkg-query -W -f='${Status}' $CPKG 2>/dev/null || echo 'unknown to dpkg')"
    check_files_installed
    dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./etc/apache2/mods-available/oauth2.load > "$WORK/oauth2.load"
    check "oauth2.load is this package's" cmp "$WORK/oauth2.load" "$ROOT/etc/apache2/mods-available/oauth2.load"
    check "oauth2 is still enabled, without running a2enmod again" run a2query -m oauth2
    check "a2enmod oauth2 still works" run a2enmod oauth2
    check "apache2ctl -t" run apache2ctl -t
    http_checks
    say "2. apt-get purge $CPKG (its leftover state) while $PKG is installed"
    check "apt-get purge -y $CPKG" quiet run apt-get purge -y "$CPKG"
    check "$PKG is still installed" installed "$PKG"
    if run a2query -m oauth2 >>"$LOG" 2>&1; then
        echo "  oauth2 is still enabled"
    else
        echo "  the C package's postrm disabled oauth2, as packaging/README.md says; a2enmod oauth2 again:"
    fi
    check "a2enmod oauth2" run a2enmod oauth2
    check "apache2ctl -t" run apache2ctl -t
    http_checks
    check "a2dissite $SITE" run a2dissite "$SITE"
    say "2. apt-get purge $PKG"
    check "apt-get purge -y $PKG" quiet run apt-get purge -y "$PKG"
    if [ -n "$ROOT" ]; then # on the host, host_restore purges exactly what the test installed
        check "apt-get autoremove --purge (the C module's libraries)" quiet run apt-get autoremove -y --purge
    fi
    check_gone
    check "dpkg knows nothing of $CPKG" sh -c "! chroot '${ROOT:-/}' dpkg-query -W -f='\${Status}' $CPKG 2>/dev/null | grep -qv not-installed"
}

# ---------------------------------------------------------------------------------------------
# Chroot mode.
# ---------------------------------------------------------------------------------------------
BASE=$CACHE/bookworm
mounts_under() { awk -v r="$1/" 'index($2 "/", r) == 1 { print $2 }' /proc/mounts | sort -r; }
make_base() {
    [ -f "$BASE/.complete" ] && return 0
    host_apt_install debootstrap
    local mirror security
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${mirror%/debian}/debian-security
    say "building the Debian 12 base chroot in $BASE (once; about a minute)"
    for m in $(mounts_under "$BASE.tmp"); do umount "$m"; done
    rm -rf --one-file-system "$BASE.tmp"
    quiet debootstrap --variant=minbase bookworm "$BASE.tmp" "$mirror"
    # Packages must not start services in the chroot: it shares the host's network.
    printf '#!/bin/sh\nexit 101\n' > "$BASE.tmp/usr/sbin/policy-rc.d"
    chmod 755 "$BASE.tmp/usr/sbin/policy-rc.d"
    cat > "$BASE.tmp/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
    cp /etc/resolv.conf "$BASE.tmp/etc/resolv.conf"
    mount -t proc proc "$BASE.tmp/proc"
    local rc=0
    (
        ROOT=$BASE.tmp
        quiet run apt-get update &&
            quiet run apt-get install -y --no-install-recommends apache2 ca-certificates &&
            run apt-get clean
    ) || rc=$?
    umount "$BASE.tmp/proc"
    [ $rc = 0 ] || die "could not install apache2 in the base chroot"
    touch "$BASE.tmp/.complete"
    mv "$BASE.tmp" "$BASE"
}
# Runs hold the lock, so any other work directory was left by a run that was killed: stop its
# Apache, unmount its /proc, delete it.
reap_stale_runs() {
    local d pidf pid m
    for d in /tmp/mod-oauth2-rs-deb-test.*; do
        [ -d "$d" ] && [ "$d" != "$WORK" ] || continue
        echo "test-deb: cleaning up $d (left by an interrupted run)"
        for pidf in "$d/root$INST/run/apache2.pid" "$INST/run/apache2.pid"; do
            [ -f "$pidf" ] || continue
            pid=$(cat "$pidf")
            # Only if that pid is still an apache2 (a stale pid file may name another process now).
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = apache2 ]; then kill -TERM "$pid"; sleep 1; fi
        done
        for m in $(mounts_under "$d"); do umount "$m" || umount -l "$m"; done
        [ -z "$(mounts_under "$d")" ] && rm -rf --one-file-system "$d"
    done
    return 0
}
chroot_setup() {
    make_base
    ROOT=$WORK/root
    cp -a "$BASE" "$ROOT"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    mount -t proc proc "$ROOT/proc"
    quiet run apt-get update || die "apt-get update in the chroot"
    echo "chroot: $ROOT (Debian $(cat "$ROOT/etc/debian_version"), $(run dpkg-query -W -f='${Package} ${Version}' apache2))"
}
chroot_cleanup() {
    server_stop
    local m
    for m in $(mounts_under "$WORK"); do umount "$m" || umount -l "$m"; done
    if [ -n "$(mounts_under "$WORK")" ]; then
        echo "test-deb: $WORK still has mounts; not removing it" >&2
        return 1
    fi
    rm -rf --one-file-system "$WORK"
}

# ---------------------------------------------------------------------------------------------
# Host mode: record, then restore.
# ---------------------------------------------------------------------------------------------
APACHE_STATE_PATHS="etc/apache2/mods-enabled etc/apache2/conf-enabled etc/apache2/sites-enabled var/lib/apache2"
host_snapshot() {
    mkdir -p "$STATE"
    dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package} ${Version}\n' | awk '$1 == "ii" { print $2, $3 }' > "$STATE/packages"
    dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 != "ii" && $1 != "un" { print $2 }' > "$STATE/other-known"
    apt-mark showauto > "$STATE/auto"
    # shellcheck disable=SC2086
    tar -C / -cpf "$STATE/apache.tar" $APACHE_STATE_PATHS $(cd / && ls etc/apache2/mods-available/oauth2.* 2>/dev/null)
    touch "$STATE/complete"
}
host_restore() {
    [ -f "$STATE/complete" ] || { rm -rf "$STATE"; return 0; }
    server_stop
    say "restoring the host"
    rm -f "/etc/apache2/sites-enabled/$SITE.conf" "/etc/apache2/sites-available/$SITE.conf"
    rm -rf "$DATA"
    local now_ii purge=() reinstall=() p v
    now_ii=$(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 == "ii" { print $2 }')
    for p in $now_ii; do
        grep -q "^$p " "$STATE/packages" || purge+=("$p")
    done
    # Packages left in config-files state by the test (e.g. the replaced C module).
    for p in $(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 != "ii" && $1 != "un" { print $2 }'); do
        grep -qx "$p" "$STATE/other-known" || purge+=("$p")
    done
    if [ ${#purge[@]} -gt 0 ]; then
        echo "  purging what the test installed: ${purge[*]}"
        apt-get purge -y -qq "${purge[@]}" >/dev/null </dev/null
    fi
    while read -r p v; do
        grep -qx -- "$p" <<<"$now_ii" || reinstall+=("$p=$v")
    done < "$STATE/packages"
    if [ ${#reinstall[@]} -gt 0 ]; then
        echo "  reinstalling what the test removed: ${reinstall[*]}"
        apt-get install -y -qq --no-install-recommends "${reinstall[@]}" >/dev/null </dev/null
        for p in "${reinstall[@]}"; do
            grep -qx "${p%%=*}" "$STATE/auto" && apt-mark auto "${p%%=*}" >/dev/null
        done
    fi
    # shellcheck disable=SC2086
    (cd / && rm -rf $APACHE_STATE_PATHS)
    tar -C / -xpf "$STATE/apache.tar"
    rm -rf "$STATE"
    echo "  host restored"
}
host_setup() {
    if [ -d "$STATE" ]; then
        echo "test-deb: an earlier --host run did not finish; restoring first"
        host_restore
    fi
    host_apt_install apache2 curl openssl ca-certificates
    host_snapshot
    if known "$PKG"; then
        echo "  $PKG is installed on this host; the test purges it and puts it back afterwards"
    fi
    if installed "$CPKG"; then
        echo "  $CPKG is installed on this host; the test removes it and puts it back afterwards"
    fi
    # A clean start: neither package (both are restored at the end).
    for p in "$PKG" "$CPKG"; do
        if known "$p"; then quiet apt-get purge -y "$p"; fi
    done
    rm -rf "$DATA"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$MODE" = host ]; then
        host_restore
        rm -rf "$WORK"
    else
        chroot_cleanup
    fi
    if [ $rc = 0 ]; then
        echo
        echo "test-deb ($MODE): $PASSED passed, 0 failed"
    else
        echo
        echo "test-deb ($MODE): $PASSED passed, 1 failed (log: see above)" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host_apt_install curl openssl
echo "test-deb: $DEB ($MODE)"
PORT=$(free_port) || die "no free loopback port in 18443-18543"
make_keys
reap_stale_runs
if [ "$MODE" = host ]; then host_setup; else chroot_setup; fi
phase_fresh_install
phase_replace_c_module
