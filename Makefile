# Rosetta. `make demo` shows it working; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN ?= auto
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build web deps test test-deploy test-faults test-fidelity demo bench bench-guard bench-console lint fmt vet clean

all: build

deps:
	@./scripts/ensure-deps.sh

# The web console (web/, Vite + React) is built first and embedded into
# bin/rosetta; a plain `go build ./...` without it still compiles and the
# binary then says at / how to build the console.
build: web
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/rosetta ./services/rosetta
	$(GO) build -o bin/duckquery ./scripts/duckquery

web:
	@./scripts/build-web.sh

# Every test, against real PostgreSQL, Redis and NATS servers the tests start
# themselves. Prints one closing line: "N passed, N failed, N skipped".
# The checkers of `make lint` run first; their failure fails the run, after
# the tests still ran. deploy/ is a module of its own, outside go.work (its
# Kubernetes and BuildKit dependencies would otherwise raise the versions of
# Rosetta's own in workspace builds), so its check of the deployment files
# runs after the root packages, into the same summary.
test: deps
	@lint=0; ./scripts/lint.sh || lint=1; \
	set -o pipefail; { $(GO) test $(TEST_FLAGS) -json ./...; (cd deploy && GOWORK=off $(GO) test -count=1 -json ./...); } | \
	  $(GO) run ./scripts/testsummary; rc=$$?; \
	if [ $$lint -ne 0 ]; then echo "make lint failed: see its findings above the tests"; fi; \
	exit $$(( rc != 0 || lint != 0 ))

# The deployment files (deploy/) against the binary: Dockerfile, compose,
# Kubernetes manifests. Also part of `make test`.
test-deploy:
	cd deploy && GOWORK=off $(GO) test -count=1 -v ./...

# The fault suite (real processes killed, stopped and restarted, links stalled;
# docs/guarantees.md, docs/faults.md)
# and the type-fidelity suite also run under `make test`; these run them alone.
test-faults: deps
	$(GO) test -count=1 -timeout 15m -v ./faults/

test-fidelity: deps
	$(GO) test -count=1 -timeout 15m -v ./fidelity/

demo: deps build
	@./scripts/demo.sh

# Throughput, latency and memory against the machine's own ceilings, in one
# run (docs/performance.md): a table on stdout and bench/results/latest.json.
# Last, the console's overview first render in Chromium (bench-console).
# BENCH_SCALE=100000 for a quick run; BENCH_FLAGS for more (-workloads,
# -latency-duration, -pprof DIR, -console-runs, -console-pipelines).
bench: deps build bench-guard
	@./scripts/ensure-browser.sh
	$(GO) run ./bench/cmd/rosetta-bench $(BENCH_FLAGS)

# Tombstone collection at scale (docs/delivery.md): 1,000,000 keys inserted
# and deleted through a sink runner into PostgreSQL, tombstones kept <= 1 %.
bench-guard: deps
	$(GO) test -run '^$$' -bench BenchmarkTombstoneChurn1M -benchtime 1x -timeout 60m ./services/sink/drivers/postgres/

# The console phase alone: time to first render of the overview with 50
# paused pipelines, in Chromium on loopback, against the 1 s target.
bench-console: deps build
	@./scripts/ensure-browser.sh
	$(GO) run ./bench/cmd/rosetta-bench -workloads= -latency-duration 0 -out bench/results/console.json $(BENCH_FLAGS)

vet:
	$(GO) vet ./...
	cd deploy && GOWORK=off $(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# gofmt, go vet, staticcheck, go mod tidy and Redocly's OpenAPI lint
# (scripts/lint.sh); make test runs it too.
lint:
	@./scripts/lint.sh

clean:
	rm -rf bin .rosetta/demo web/dist/console
