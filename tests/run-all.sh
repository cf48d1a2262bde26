#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (no GPU needed):
# installs what is missing from the package registries, then formatting,
# lints, the whole Rust test suite (GPU tests on Mesa lavapipe) and the
# wasm32 build check of the crates that run in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step is stamped with the time since the start, so a slow CI run shows where it went.
log() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# --- system packages -------------------------------------------------------
need_pkgs=()
for p in mesa-vulkan-drivers libvulkan1; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# --- Rust toolchain pieces ---------------------------------------------------
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown

# GPU tests must find a real adapter: lavapipe is the CPU Vulkan driver.
# Its "XDG_RUNTIME_DIR is invalid" message is harmless; give it a valid dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
    export XDG_RUNTIME_DIR
    XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
fi
export AHMA_REQUIRE_GPU=1
# One build per clean clone: incremental caches would only take disk space
# (a full debug build with them is several GB more).
export CARGO_INCREMENTAL=0

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test (workspace; GPU tests on lavapipe)"
cargo test --workspace --locked

# The wasm32 build of the browser-side crates (gguf, chat, kernels, engine, web)
# is part of the browser tests: tests/web/run.sh builds the app with web/build.sh.
log "browser tests (Chromium, WebGPU on SwiftShader)"
bash tests/web/run.sh

log "all tests passed"
