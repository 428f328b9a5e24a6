#!/usr/bin/env bash
# Builds the web console into web/dist/console (embedded into the binary
# by the Go package web): installs its npm packages, type-checks, bundles
# with Vite and fails when the JavaScript is over its size budget
# (web/scripts/check-bundle.mjs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/ensure-web-deps.sh"
cd "$root/web"
npm run --silent build
