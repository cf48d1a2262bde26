#!/usr/bin/env bash
# Builds the app and serves dist/ on localhost (with Range requests), printing the URL.
# Usage: bash web/serve.sh [--port N]   (default 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
port=8080
if [ "${1:-}" = "--port" ]; then port="$2"; fi
bash web/build.sh
exec node web/serve.mjs --root dist --port "$port"
