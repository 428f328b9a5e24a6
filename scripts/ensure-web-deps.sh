#!/usr/bin/env bash
# Installs what building the web console needs: Node.js with npm, and the
# console's npm packages exactly as web/package-lock.json pins them
# (`npm ci`, skipped when node_modules already matches the lockfile). Safe to
# run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/../web"

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  echo "ensure-web-deps: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "ensure-web-deps: Node.js 20 or newer is needed to build the console (found $(node --version))" >&2
  exit 1
fi

# npm ci writes node_modules/.package-lock.json; when it equals the
# committed lockfile's packages, the install is current.
stamp=node_modules/.rosetta-lock-stamp
if [ -f "$stamp" ] && cmp -s "$stamp" package-lock.json; then
  exit 0
fi
echo "ensure-web-deps: npm ci in web/" >&2
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
