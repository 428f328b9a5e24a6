#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian/Ubuntu
# machine: PostgreSQL server binaries (for initdb-based tests and the demo),
# redis-server, psql, curl, and the Go modules. Safe to run repeatedly: it
# only installs what is missing.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
# DuckDB (cgo) links its prebuilt library against the C++ runtime.
command -v g++ >/dev/null || need+=(g++)
command -v go >/dev/null || need+=(golang-go)

if ((${#need[@]})); then
  echo "ensure-deps: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root; the tests and the demo run it as the
# postgres user, which the postgresql package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

# go.mod asks for a newer Go than some distributions ship; the go command
# fetches the right toolchain by itself when GOTOOLCHAIN allows it.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
go mod download

# The web console: Node.js, npm and web/'s packages from its lockfile.
"$(dirname "$0")/ensure-web-deps.sh"
