package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set. Rosetta's live heap stays small (tens of MB: batches are
// bounded, transactions are streamed), but with the default GOGC alone the
// heap grows to twice its live size between collections and a burst (a
// backlog drained at full speed) pushed rosetta dev past 400 MB of RSS in
// `make bench`. Near the limit the collector runs more often instead
// (bounded by the runtime to about half the CPU); GOMEMLIMIT overrides it,
// GOMEMLIMIT=off removes it.
const defaultMemoryLimit = 192 << 20

// defaultGCPercent is GOGC under Rosetta's own memory limit when GOGC is
// not set. The limit already bounds the heap, so the default GOGC of 100
// only made the collector run twice as often as it needs below it: in
// `make bench` (ins-100, 200k changes) GOGC 200 cut the sink's CPU per
// change by 13 % (background marking 15 % -> 7 % of its profile) and
// rosetta dev's by about 15 %, while its peak RSS into PostgreSQL stayed
// at 241-247 MB (the limit binds either way; docs/performance.md). It is
// not applied without the limit, where it would let the heap grow to three
// times its live size.
const defaultGCPercent = 200

func applyMemoryLimit(log *slog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return // the runtime read it at start
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	gogc, set := os.LookupEnv("GOGC")
	if !set {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent)
	}
	log.Debug("go memory limit", "bytes", defaultMemoryLimit, "gogc", gogc)
}
