#!/usr/bin/env bash
# Browser tests of the web app: Debian's Chromium driven by playwright-core (no bundled browser),
# WebGPU on SwiftShader, pages served by web/serve.mjs from localhost.
# Installs what is missing on a fresh Debian machine, builds dist/ with web/build.sh, then runs
# every tests/web/*.test.mjs with node's test runner. Any failure (a missing WebGPU adapter
# included) exits non-zero; nothing is skipped.
#
#   bash tests/web/run.sh [node --test options / test files]
#   AHMA_WEB_SKIP_BUILD=1   use the existing dist/ (for quick reruns)
#   AHMA_WEB_SLOWMO=2       double every timeout (slow machines)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Stamped with the time since this script started.
log() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- system packages -------------------------------------------------------
CHROMIUM="${AHMA_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    log "installing chromium"
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm"
    apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "error: Node.js >= 20 is needed for the browser tests (found $(node --version))" >&2
    exit 1
fi

# --- Rust → WASM toolchain ------------------------------------------------------
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
wb_want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
if [ -z "$wb_want" ]; then
    echo "error: no wasm-bindgen in Cargo.lock" >&2
    exit 1
fi
wb_have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$wb_have" != "$wb_want" ]; then
    log "installing wasm-bindgen-cli $wb_want (found: ${wb_have:-none})"
    # --locked fails for this version (a locked dependency is gone from the registry).
    # Unoptimized: builds in about a minute instead of two and a half, and still turns the
    # app's wasm into byte-identical output in seconds. --force: cargo skips a version it has
    # on record even when its binaries are gone from PATH.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 cargo install --force wasm-bindgen-cli --version "$wb_want"
fi

# --- test dependencies ------------------------------------------------------------
log "npm ci (tests/web: playwright-core)"
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)

# --- the app ---------------------------------------------------------------------------
if [ "${AHMA_WEB_SKIP_BUILD:-0}" != 1 ] || [ ! -f dist/index.html ]; then
    log "bash web/build.sh"
    bash web/build.sh
fi
if [ ! -f dist/index.html ]; then
    echo "error: web/build.sh did not produce dist/index.html" >&2
    exit 1
fi

# --- the tests ------------------------------------------------------------------------
rm -rf tests/web/artifacts
mkdir -p tests/web/artifacts
log "node --test tests/web (Chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}'), WebGPU on SwiftShader)"
files=()
for a in "$@"; do
    case "$a" in *.mjs) files+=("$a") ;; esac
done
((${#files[@]})) || files=(tests/web/*.test.mjs)
opts=()
for a in "$@"; do
    case "$a" in *.mjs) ;; *) opts+=("$a") ;; esac
done
node --test --test-concurrency=1 "${opts[@]}" "${files[@]}"
echo "browser tests passed; screenshots in tests/web/artifacts/"
