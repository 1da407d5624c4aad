# Shared helpers for the scripts in this folder (sourced, not run).

# Runs a command as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian/Ubuntu packages that are missing, with one apt-get update at most.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building the module needs: httpd headers, OpenSSL headers, a C compiler, pkg-config.
install_build_deps() {
    apt_install apache2 apache2-dev libssl-dev libcurl4-openssl-dev pkg-config gcc libc6-dev ca-certificates curl openssl
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is not installed: install a current Rust toolchain (https://rustup.rs, Rust >= 1.85), then re-run." >&2
        exit 1
    fi
}

# What the integration tests need besides the build: a real authorization server (node + npm),
# real cache servers.
install_test_deps() {
    apt_install redis-server memcached nginx
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
}

# base64url without padding, of stdin.
b64url() {
    base64 -w0 | tr '+/' '-_' | tr -d '='
}

# The fuzz targets named as arguments, or every one of fuzz/ (into the array `targets`).
fuzz_targets() {
    if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
}

# Unpacks what earlier campaigns kept for target $1 (scripts/fuzz-keep) into its local corpus.
unpack_kept_corpus() {
    mkdir -p "fuzz/corpus/$1"
    if [ -f "fuzz/kept/$1.tar.gz" ]; then
        tar -xzf "fuzz/kept/$1.tar.gz" -C "fuzz/corpus/$1" --skip-old-files
    fi
}
