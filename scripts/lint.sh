#!/usr/bin/env bash
# The standard checkers, all of them run even when one fails, so one CI run
# shows every finding: gofmt, go vet, staticcheck, go mod tidy (the module
# must build without go.work, as a Docker build copying go.mod does), and
# Redocly's lint of the OpenAPI contract. Versions are pinned here.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
STATICCHECK_VERSION=v0.8.2
REDOCLY_VERSION=2.77.0

failed=()
step() {
  local name=$1
  shift
  echo "lint: $name" >&2
  if ! "$@"; then
    failed+=("$name")
  fi
}

gofmt_clean() {
  local out
  out=$(gofmt -l $(git ls-files '*.go'))
  [ -z "$out" ] || { echo "gofmt would change:" >&2; echo "$out" >&2; return 1; }
}

step gofmt gofmt_clean
step "go vet" go vet ./...
step staticcheck go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...
step "go mod tidy" env GOWORK=off go mod tidy -diff
# deploy/ is a module of its own (its test checks the deployment files).
step "go vet (deploy)" bash -c 'cd deploy && GOWORK=off go vet ./...'
step "go mod tidy (deploy)" bash -c 'cd deploy && GOWORK=off go mod tidy -diff'
command -v npx >/dev/null || ./scripts/ensure-web-deps.sh >&2
if command -v npx >/dev/null; then
  step redocly npx --yes "@redocly/cli@$REDOCLY_VERSION" lint --format=stylish contracts/openapi.yaml
else
  echo "lint: npx not found; scripts/ensure-web-deps.sh installs Node.js and npm" >&2
  failed+=(redocly)
fi

if ((${#failed[@]})); then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: clean" >&2
