#!/usr/bin/env bash
# Installs Debian's Chromium for the console's end-to-end test
# (web/e2e, driven by playwright-core). No browser is ever downloaded by a
# test tool: playwright-core is pointed at /usr/bin/chromium. Safe to run
# repeatedly: it only installs what is missing.
set -euo pipefail

if command -v chromium >/dev/null; then
  exit 0
fi
echo "ensure-browser: installing chromium (Debian package)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
