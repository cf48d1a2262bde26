#!/usr/bin/env bash
# Builds the browser app into dist/: static files with relative URLs only, so the
# folder works from any static host under any sub-path (e.g. GitHub Pages /repo/).
# Needs the wasm32 target and wasm-bindgen-cli of the exact version in Cargo.lock
# (tests/web/run.sh installs both). Usage: bash web/build.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=web
flags=(--profile web)
if [ "${1:-}" = "--dev" ]; then profile=debug; flags=(); fi

want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    echo "web/build.sh: needs wasm-bindgen-cli $want (found: ${have:-none})." >&2
    echo "  install: cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi

cargo build --locked --target wasm32-unknown-unknown -p ahma-web "${flags[@]}"
rm -rf dist
mkdir -p dist
wasm-bindgen --target web --no-typescript --out-dir dist --out-name ahma_web \
    "target/wasm32-unknown-unknown/$profile/ahma_web.wasm"
cp index.html dist/
cp web/worker.js web/style.css web/catalog.json web/icon.svg dist/
# The service worker's cache is named after the build, so a new build replaces the old shell.
build_id=$(cat dist/index.html dist/ahma_web.js dist/ahma_web_bg.wasm dist/worker.js dist/style.css dist/icon.svg | sha256sum | cut -c1-16)
sed "s/__BUILD_ID__/$build_id/" web/sw.js > dist/sw.js
echo "built dist/ ($(du -sh dist | cut -f1), wasm $(du -h dist/ahma_web_bg.wasm | cut -f1), build $build_id)"
